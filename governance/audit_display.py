"""How the audit log page words an event: a human label for every action, details as names
and plain text (never a Python repr or an internal id), and objects named by what people
call them. The stored event is untouched (the chain hashes it as recorded); this is only how
the page shows it. Exports keep the raw JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core import permissions
from core.models import AuditEvent
from core.numbers import significant
from registry.models import CodeRef, Dataset, LogicalFeature, PackagingJob

# The first part of an action names what it happened to.
_NOUNS = {
    "registered_model": "Model",
    "version": "Version",
    "artifact": "File",
    "alias": "Alias",
    "card": "Model card",
    "promotion": "Promotion",
    "deployment": "Deployment",
    "job": "Packaging job",
    "access": "Access",
    "policy": "Policy",
    "webhook": "Webhook",
    "token": "API token",
    "user": "User",
    "group": "Group",
    "role": "Role",
    "sso_mapping": "SSO group mapping",
    "training_run": "Training run",
    "feature_source": "Feature source",
    "feature": "Feature",
    "dataset": "Dataset",
    "code_ref": "Code reference",
}
# Actions a noun and a verb would word badly.
_ACTIONS = {
    "gate.refused": "Refused by the gate",
    "auth.login_failed": "Sign-in failed",
    "auth.login_refused": "Sign-in refused",
    "auth.locked_out": "Locked out after failed sign-ins",
    "auth.token_rejected": "API token rejected",
    "auth.sso_failed": "Single sign-on failed",
    "mlflow.imported": "Imported from MLflow",
    "promotion.approvals_voided": "Promotion approvals voided (content changed)",
    "version.metrics_logged": "Version metrics recorded",
    "version.stage_changed": "Version moved to another stage",
    "user.sso_linked": "User linked to single sign-on",
    "user.sso_roles_changed": "User roles changed by single sign-on",
    "user.access_changed": "User roles or status changed",
    "role.synced": "Role permissions synchronised",
    "webhook.delivery_replayed": "Webhook delivery sent again",
    "training_run.datasets_linked": "Training run datasets linked",
}
_KEYS = {
    "sha256": "SHA-256",
    "content_digest": "content digest",
    "run_id": "run id",
    "code_ref": "code",
    "promotion_request": "request",
    "archived_versions": "archived versions",
    "replaced_version": "replaced version",
    "risk_tier": "risk tier",
    "required_checks": "required checks",
}
_JOB_KINDS = dict(PackagingJob.Kind.choices)
_DIGESTS = {"sha256", "content_digest", "digest", "input_digest"}
_HIDDEN = {"review"}  # internal row ids with no page of their own
_MAX_TEXT = 160


def action_label(action: str) -> str:
    """ "Promotion requested" for promotion.requested; every action gets one."""
    if action in _ACTIONS:
        return _ACTIONS[action]
    noun, _, verb = action.partition(".")
    words = _NOUNS.get(noun, noun.replace("_", " ").capitalize())
    return f"{words} {verb.replace('_', ' ')}".strip() if verb else words


@dataclass(frozen=True)
class Shown:
    label: str
    object: str
    details: list[tuple[str, str]]


class _Names:
    """Names of the records events refer to by id, read for a whole page at once."""

    def __init__(self, events: Iterable[AuditEvent]) -> None:
        features: set[int] = set()
        datasets: set[int] = set()
        code_refs: set[int] = set()
        for event in events:
            details = event.details if isinstance(event.details, dict) else {}
            features.update(i for i in _ids(details.get("features")))
            code_refs.update(i for i in _ids(details.get("code_ref")))
            links = details.get("datasets")
            for link in links if isinstance(links, list) else []:
                if isinstance(link, list) and link and _id(link[0]):
                    datasets.add(link[0])
        self.features = dict(
            LogicalFeature.objects.filter(pk__in=features).values_list("pk", "name")
        )
        self.code_refs = {c.pk: str(c) for c in CodeRef.objects.filter(pk__in=code_refs)}
        self.datasets = {d.pk: str(d) for d in Dataset.objects.filter(pk__in=datasets)}


def _id(value: Any) -> bool:
    """A row id as events record one: an integer (not a bool) a database column can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _ids(value: Any) -> list[int]:
    if _id(value):
        return [value]
    if isinstance(value, list):
        return [v for v in value if _id(v)]
    return []


def shown(events: list[AuditEvent]) -> list[Shown]:
    """The page's wording of each event (three queries for the page, whatever it holds)."""
    names = _Names(events)
    return [
        Shown(
            label=action_label(event.action),
            object=_object(event),
            details=_details(event.details if isinstance(event.details, dict) else {}, names),
        )
        for event in events
    ]


def _object(event: AuditEvent) -> str:
    details = event.details if isinstance(event.details, dict) else {}
    model = event.registered_model_name
    if event.target_type == "registry.deployment" and _id(details.get("version")):
        where = details.get("environment", "")
        return f"{model} v{details['version']} → {where}".strip()
    if event.target_type == "registry.alias" and isinstance(details.get("name"), str):
        return f"{model} @{details['name']}"
    if event.target_type == "registry.packagingjob" and _id(details.get("version")):
        # The label recorded the job's status at the time ("… (queued)"), which reads wrong
        # beside a "finished" event: the page names the job by what and where instead.
        kind = _JOB_KINDS.get(str(details.get("kind")), "Packaging")
        return f"{model} v{details['version']}: {kind} job #{event.target_id}"
    return event.target_label or model or ""


def _details(details: dict[str, Any], names: _Names) -> list[tuple[str, str]]:
    out = []
    for key, value in details.items():
        if key in _HIDDEN:
            continue
        text = _value(key, value, names)
        if len(text) > _MAX_TEXT:
            text = text[: _MAX_TEXT - 1] + "…"
        out.append((_KEYS.get(key, key.replace("_", " ")), text))
    return out


def _value(key: str, value: Any, names: _Names) -> str:
    if key == "features":
        return ", ".join(names.features.get(i, f"feature {i}") for i in _ids(value)) or "none"
    if key == "code_ref" and _ids(value):
        return ", ".join(names.code_refs.get(i, f"code {i}") for i in _ids(value))
    if key == "datasets" and isinstance(value, list):
        return ", ".join(_dataset(link, names) for link in value) or "none"
    if key in ("promotion_request", "review", "request") and _ids(value):
        return ", ".join(f"#{i}" for i in _ids(value))
    if key in _DIGESTS and isinstance(value, str) and len(value) > 16:
        return value.removeprefix("sha256:")[:12] + "…"
    if key in ("from", "to", "version", "replaced_version") and _id(value):
        return f"v{value}"
    if key == "archived_versions" and isinstance(value, list):
        return ", ".join(f"v{v}" for v in _ids(value)) or "none"
    return _plain(value)


def _dataset(link: Any, names: _Names) -> str:
    if isinstance(link, list) and link and _id(link[0]):
        role = f" ({link[1]})" if len(link) > 1 and link[1] else ""
        return names.datasets.get(link[0], f"dataset {link[0]}") + role
    return _plain(link)


def _plain(value: Any, depth: int = 0) -> str:
    """A value as a person reads it: lists joined, changes as from → to, no reprs; nested
    past a few levels, an ellipsis."""
    if depth > 4:
        return "…"
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return significant(value)
    if isinstance(value, list):
        return ", ".join(_plain(v, depth + 1) for v in value) or "none"
    if isinstance(value, dict):
        if set(value) == {"from", "to"}:
            return f"{_plain(value['from'], depth + 1)} → {_plain(value['to'], depth + 1)}"
        return "; ".join(
            f"{str(k).replace('_', ' ')}: {_plain(v, depth + 1)}" for k, v in value.items()
        )
    if isinstance(value, str):
        return permissions.label(value)
    return str(value)
