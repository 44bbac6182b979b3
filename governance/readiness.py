"""Readiness checks: named functions computed live whenever a promotion request is shown,
approved or applied. A policy lists which ones must pass; the others are shown as advice.

Add a check with the `check` decorator: it receives the candidate version, the version that
holds the target now (or None) and the candidate's `Facts` (what the checks read from the
database, loaded for many versions at once by `facts_for`), and returns a Result. Checks
decide from the facts and read nothing more, so `evaluate_many` answers a page of requests
in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count

from governance import card_source
from registry.models import Artifact, ModelVersion, PackagingJob
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


@dataclass(frozen=True)
class Facts:
    """What the checks know of one version: its stored files (name and sha256, those with a
    digest), how many metric values it records, each file's clearance (jobs.
    artifacts_clearance), the newest finished job of each kind other than inspection, and its
    card's state."""

    files: list[tuple[str, str]]
    metric_count: int
    clearance: list[tuple[Any, str]]
    newest_jobs: dict[str, tuple[str, dict[str, Any]]]
    card: card_source.CardState | None


def facts_for(versions: list[ModelVersion]) -> dict[int, Facts]:
    """Facts for each version, by pk, in five queries however many versions."""
    pks = [v.pk for v in versions]
    files: dict[int, list[Artifact]] = {pk: [] for pk in pks}
    for artifact in Artifact.objects.filter(version__in=pks).order_by("filename", "pk"):
        files[artifact.version_id].append(artifact)
    counts = dict(
        ModelVersion.objects.filter(pk__in=pks).annotate(n=Count("metrics")).values_list("pk", "n")
    )
    newest: dict[int, dict[str, tuple[str, dict[str, Any]]]] = {pk: {} for pk in pks}
    for version_id, kind, status, result in (
        PackagingJob.objects.filter(version__in=pks)
        .exclude(kind=PackagingJob.Kind.INSPECT)
        .exclude(status__in=("queued", "running", "cancelled"))
        .order_by("-created_at", "-pk")
        .values_list("version_id", "kind", "status", "result")
    ):
        newest[version_id].setdefault(kind, (status, result))
    clearance = jobs.artifacts_clearance_many(files)
    cards = card_source.states(versions)
    return {
        pk: Facts(
            files=[(a.filename, a.sha256) for a in files[pk] if a.sha256],
            metric_count=counts.get(pk, 0),
            clearance=clearance[pk],
            newest_jobs=newest[pk],
            card=cards.get(pk),
        )
        for pk in pks
    }


CheckFn = Callable[[ModelVersion, ModelVersion | None, Facts], Result]
CHECKS: dict[str, tuple[str, CheckFn]] = {}


def check(name: str, title: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        CHECKS[name] = (title, fn)
        return fn

    return register


def evaluate(
    version: ModelVersion, current: ModelVersion | None, required: list[str]
) -> list[Outcome]:
    return evaluate_many([(version, current, required)])[0]


def evaluate_many(
    cases: list[tuple[ModelVersion, ModelVersion | None, list[str]]],
) -> list[list[Outcome]]:
    """evaluate for each (version, current holder, required checks), reading the facts of all
    the versions at once. A required check this release does not have (a policy row from
    another release, or edited in the database) cannot decide, so it fails (closed)."""
    facts = facts_for(list({version.pk: version for version, _, _ in cases}.values()))
    outcomes = []
    for version, current, stored in cases:
        required = stored_names(stored)
        outcomes.append(
            [
                *(
                    _outcome(name, title, fn(version, current, facts[version.pk]), name in required)
                    for name, (title, fn) in CHECKS.items()
                ),
                *(_unknown(name) for name in dict.fromkeys(required) if name not in CHECKS),
            ]
        )
    return outcomes


def stored_names(stored: Any) -> list[str]:
    """A policy's stored list of names (checks, card sections) as text, whatever the row
    holds: a list is what policies.validate lets in; a row edited into another shape stands
    as one name, its repr, which no check or section has (so it fails closed and shows)."""
    return [str(n) for n in stored] if isinstance(stored, list) else [repr(stored)]


def _unknown(name: str) -> Outcome:
    return Outcome(
        name,
        name,
        True,
        False,
        f"The policy requires a check named {name!r}, which this release does not have; it "
        "cannot pass. An administrator must remove it from the policy.",
        {},
    )


def _outcome(name: str, title: str, result: Result, required: bool) -> Outcome:
    return Outcome(name, title, required, result.passed, result.message, result.details)


@check("artifact", "Artifact stored with its SHA-256")
def _artifact(version: ModelVersion, current: ModelVersion | None, facts: Facts) -> Result:
    files = facts.files
    if not files:
        return Result(False, "The version has no stored artifact.")
    return Result(
        True,
        f"{len(files)} artifact(s) stored.",
        {"artifacts": [{"filename": f, "sha256": s} for f, s in files]},
    )


@check("signature", "Signature present")
def _signature(version: ModelVersion, current: ModelVersion | None, facts: Facts) -> Result:
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
def _compatible(version: ModelVersion, current: ModelVersion | None, facts: Facts) -> Result:
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
def _metrics(version: ModelVersion, current: ModelVersion | None, facts: Facts) -> Result:
    count = facts.metric_count
    if not count:
        return Result(False, "The version has no recorded metrics.")
    return Result(True, f"{count} metric value(s) recorded.")


@check("packaging", "Every file inspected and cleared; the latest packaging jobs succeeded")
def _packaging(version: ModelVersion, current: ModelVersion | None, facts: Facts) -> Result:
    """Fails closed: every file, uploaded or derived, needs a completed inspection with the
    verdict safe (or an administrator's audited trust); a pending, cancelled or failed
    inspection blocks, naming the file. Also fails while the newest job of some other kind
    failed (a later success of the same kind clears an old failure). Passing, it names the
    skops types conversion had to trust, for the approvers to see."""
    uncleared = [f"{a.filename} ({reason})" for a, reason in facts.clearance if reason]
    newest = facts.newest_jobs
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
def _card(version: ModelVersion, current: ModelVersion | None, facts: Facts) -> Result:
    card = facts.card
    status = card.status if card is not None else None
    if status != "approved":
        return Result(
            False, "The model card is " + (status.replace("_", " ") if status else "missing") + "."
        )
    return Result(True, "The model card is approved.")
