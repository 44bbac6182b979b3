"""Readiness checks: named functions computed live whenever a promotion request is shown,
approved or applied. A policy lists which ones must pass; the others are shown as advice.

Add a check with the `check` decorator: it receives the candidate version and the version
that holds the target now (or None), and returns a Result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from governance import card_source
from registry.models import ModelVersion, PackagingJob
from registry.services import jobs


@dataclass(frozen=True)
class Result:
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    name: str
    title: str
    required: bool
    passed: bool
    message: str
    details: dict[str, Any]

    @property
    def blocking(self) -> bool:
        return self.required and not self.passed


CheckFn = Callable[[ModelVersion, ModelVersion | None], Result]
CHECKS: dict[str, tuple[str, CheckFn]] = {}


def check(name: str, title: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        CHECKS[name] = (title, fn)
        return fn

    return register


def evaluate(
    version: ModelVersion, current: ModelVersion | None, required: list[str]
) -> list[Outcome]:
    outcomes = []
    for name, (title, fn) in CHECKS.items():
        result = fn(version, current)
        outcomes.append(
            Outcome(name, title, name in required, result.passed, result.message, result.details)
        )
    return outcomes


@check("artifact", "Artifact stored with its SHA-256")
def _artifact(version: ModelVersion, current: ModelVersion | None) -> Result:
    files = list(version.artifacts.exclude(sha256="").values_list("filename", "sha256"))
    if not files:
        return Result(False, "The version has no stored artifact.")
    return Result(
        True,
        f"{len(files)} artifact(s) stored.",
        {"artifacts": [{"filename": f, "sha256": s} for f, s in files]},
    )


@check("signature", "Signature present")
def _signature(version: ModelVersion, current: ModelVersion | None) -> Result:
    if not version.signature:
        return Result(False, "The version declares no input/output signature.")
    return Result(True, "The version declares its inputs and outputs.")


def _specs(signature: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    inputs = (signature or {}).get("inputs") or []
    return {str(spec.get("name", i)): spec for i, spec in enumerate(inputs)}


def schema_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Input columns (or tensors) removed, added, retyped or reshaped between two signatures."""
    before, after = _specs(old), _specs(new)
    changed = []
    for name in before.keys() & after.keys():
        a, b = before[name], after[name]
        for attr in ("type", "shape", "dtype"):
            if a.get(attr) != b.get(attr):
                changed.append(
                    {"name": name, "field": attr, "from": a.get(attr), "to": b.get(attr)}
                )
    added = sorted(after.keys() - before.keys())
    return {
        "removed": sorted(before.keys() - after.keys()),
        "added": added,
        "added_required": [n for n in added if after[n].get("required", True)],
        "changed": sorted(changed, key=lambda c: (c["name"], c["field"])),
    }


@check("signature_compatible", "Inputs compatible with the version it replaces")
def _compatible(version: ModelVersion, current: ModelVersion | None) -> Result:
    if current is None:
        return Result(True, "Nothing holds the target yet.")
    if current.pk == version.pk:
        return Result(True, "This version already holds the target.")
    if not current.signature:
        return Result(True, f"Version {current.version} declares no signature to compare with.")
    diff = schema_diff(current.signature, version.signature)
    if not version.signature:
        return Result(
            False, f"Version {current.version} declares a signature; this one does not.", diff
        )
    breaking = [f"removed {n}" for n in diff["removed"]]
    breaking += [f"{c['name']} {c['field']} {c['from']} → {c['to']}" for c in diff["changed"]]
    breaking += [f"new required input {n}" for n in diff["added_required"]]
    if breaking:
        return Result(
            False, f"Callers of version {current.version} would break: {'; '.join(breaking)}.", diff
        )
    return Result(True, f"Every input of version {current.version} is still accepted.", diff)


@check("metrics", "Metrics recorded")
def _metrics(version: ModelVersion, current: ModelVersion | None) -> Result:
    count = version.metrics.count()
    if not count:
        return Result(False, "The version has no recorded metrics.")
    return Result(True, f"{count} metric value(s) recorded.")


@check("packaging", "Every file inspected and cleared; the latest packaging jobs succeeded")
def _packaging(version: ModelVersion, current: ModelVersion | None) -> Result:
    """Fails closed: every file, uploaded or derived, needs a completed inspection with the
    verdict safe (or an administrator's audited trust); a pending, cancelled or failed
    inspection blocks, naming the file. Also fails while the newest job of some other kind
    failed (a later success of the same kind clears an old failure). Passing, it names the
    skops types conversion had to trust, for the approvers to see."""
    uncleared = [
        f"{a.filename} ({reason})" for a, reason in jobs.artifacts_clearance(version) if reason
    ]
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for kind, status, result in (
        PackagingJob.objects.filter(version=version)
        .exclude(kind=PackagingJob.Kind.INSPECT)
        .exclude(status__in=("queued", "running", "cancelled"))
        .order_by("-created_at", "-pk")
        .values_list("kind", "status", "result")
    ):
        newest.setdefault(kind, (status, result))
    failed = sorted(kind for kind, (status, _) in newest.items() if status == "failed")
    problems = ([f"file(s) not cleared: {'; '.join(uncleared)}"] if uncleared else []) + (
        [f"failed packaging job(s): {', '.join(failed)}"] if failed else []
    )
    if problems:
        return Result(
            False,
            "; ".join(problems).capitalize() + ".",
            {"uncleared": uncleared, "failed_jobs": failed},
        )
    trusted = (newest.get("convert_onnx", ("", {}))[1] or {}).get("trusted_types") or []
    return Result(
        True,
        "Every file was inspected and cleared and no packaging job has "
        "failed."
        + (f" Conversion trusted these skops types: {', '.join(trusted)}." if trusted else ""),
    )


@check("card_approved", "Model card approved for this version")
def _card(version: ModelVersion, current: ModelVersion | None) -> Result:
    card = card_source.state(version)
    status = card.status if card is not None else None
    if status != "approved":
        return Result(
            False, "The model card is " + (status.replace("_", " ") if status else "missing") + "."
        )
    return Result(True, "The model card is approved.")
