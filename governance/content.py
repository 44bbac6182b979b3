"""What a version *is*, for the gate: its content digest, who supplied that content, and
what seals it.

The digest is a SHA-256 over a canonical JSON document of everything an approver judges:
the primary files (name and sha256; files derived by Modelgate's own jobs are left out),
signature, input example, params, metrics, source, run id, requirements, flavor, Python
version, training run and, when the model's policy
requires an approved card, the card's revision and whether it is approved. A promotion
request records it when opened, each review records the one its reviewer saw, and an
approval counts only while that is still the version's digest.

A version is *sealed* while it has an open promotion request, is in staging or production,
holds a protected alias or serves in a production environment: the content under the
digest cannot change then (409 ``version_sealed``, naming the seal). Its card keeps its own
review under the same policy; approving another card revision changes the digest and so
voids promotion approvals given on the old one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.apps import apps
from django.db.models import QuerySet

from core.errors import Conflict
from core.models import AuditEvent
from core.refusals import gate_refusal
from governance import policies
from governance.models import PromotionRequest
from registry.models import Alias, Deployment, ModelVersion, RegisteredModel
from registry.services.lineage import is_production_environment

# Fields of a version under the digest: what approvers judge, and what the model needs to
# run (requirements, flavor, Python version, its training run). Sealing freezes the same.
SEALED_FIELDS = (
    "signature",
    "input_example",
    "params",
    "source",
    "run_id",
    "pip_requirements",
    "flavor",
    "python_version",
    "training_run",
)


def _card_part(version: ModelVersion) -> dict[str, Any] | None:
    if "card_approved" not in policies.policy_for(version.registered_model).required_checks:
        return None
    card = (
        apps.get_model("cards", "ModelCard")
        .objects.filter(version=version)
        .values("revision", "status")
        .first()
    )
    if card is None:
        return {"revision": None, "approved": False}
    return {"revision": card["revision"], "approved": card["status"] == "approved"}


def document(version: ModelVersion) -> dict[str, Any]:
    """The canonical content the digest is computed over, read from the database (not from
    the possibly stale instance): four small queries."""
    fields = ModelVersion.objects.filter(pk=version.pk).values(*SEALED_FIELDS).get()
    files = sorted(version.artifacts.filter(derived=False).values_list("filename", "sha256"))
    metrics = sorted(version.metrics.values_list("name", "dataset", "split", "value"))
    return {
        **fields,
        "files": [list(f) for f in files],
        "metrics": [list(m) for m in metrics],
        "card": _card_part(version),
    }


def digest(version: ModelVersion) -> str:
    text = json.dumps(
        document(version), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


# Audit actions whose actor supplied content under the digest (the version's metadata: its
# details say which fields changed; metrics always count).
_CONTENT_ACTIONS = ("version.created", "version.updated", "version.metrics_logged")


def contributors(version: ModelVersion) -> set[int]:
    """Ids of everyone who supplied content under the version's digest since it was created:
    its author, the uploaders of its primary files and the administrators who trusted one,
    whoever changed its covered metadata or logged its metrics, and (when the policy requires
    the card) the card's authors. They may not approve its promotions. Four queries."""
    found: set[int] = set()
    if version.created_by_id is not None:
        found.add(version.created_by_id)
    for uploader, truster in version.artifacts.filter(derived=False).values_list(
        "created_by_id", "trusted_by_id"
    ):
        found.update(u for u in (uploader, truster) if u is not None)  # vouching supplies too
    for action, actor_id, details in AuditEvent.objects.filter(
        target_type="registry.modelversion",
        target_id=str(version.pk),
        action__in=_CONTENT_ACTIONS,
        actor__isnull=False,
    ).values_list("action", "actor_id", "details"):
        changes = (details or {}).get("changes") or {}
        if action != "version.updated" or any(f in changes for f in SEALED_FIELDS):
            found.add(actor_id)
    if _card_part(version) is not None:
        found.update(
            apps.get_model("cards", "CardRevision")
            .objects.filter(card__version=version, author__isnull=False)
            .values_list("author_id", flat=True)
        )
    return found


def _sealed_by(versions: QuerySet[ModelVersion], registered_model: RegisteredModel) -> list[str]:
    """Why content of these versions (of one model) cannot change now; four queries."""
    reasons = []
    stages = sorted(
        set(
            versions.filter(
                stage__in=[ModelVersion.Stage.STAGING, ModelVersion.Stage.PRODUCTION]
            ).values_list("stage", flat=True)
        )
    )
    if stages:
        reasons.append(f"it is in {' and '.join(stages)}")
    open_requests = list(
        PromotionRequest.objects.filter(
            version__in=versions, status__in=PromotionRequest.OPEN
        ).values_list("pk", flat=True)
    )
    if open_requests:
        reasons.append(
            "promotion request " + ", ".join(f"#{pk}" for pk in open_requests) + " is open"
        )
    policy = policies.policy_for(registered_model)
    protected = sorted(
        name
        for name in Alias.objects.filter(version__in=versions).values_list("name", flat=True)
        if policies.is_protected(policy, name)
    )
    if protected:
        reasons.append("it holds the protected alias " + ", ".join(f"'{a}'" for a in protected))
    serving = sorted(
        {
            env
            for env in Deployment.objects.filter(
                version__in=versions, status=Deployment.Status.ACTIVE
            ).values_list("environment", flat=True)
            if is_production_environment(env)
        }
    )
    if serving:
        reasons.append(
            "it serves in production environment " + ", ".join(f"'{env}'" for env in serving)
        )
    return reasons


def seals(version: ModelVersion) -> list[str]:
    """What keeps the version's content from changing now (empty: nothing)."""
    return _sealed_by(ModelVersion.objects.filter(pk=version.pk), version.registered_model)


def model_seals(registered_model: RegisteredModel) -> list[str]:
    """The same for every live version of a model: renaming a model one of whose versions is
    sealed is an administrator's decision."""
    return _sealed_by(
        ModelVersion.objects.filter(registered_model=registered_model, deleted_at__isnull=True),
        registered_model,
    )


def require_unsealed(version: ModelVersion, what: str) -> None:
    """Refuse (409 version_sealed, audited as a gate refusal) a change of `what` to a sealed
    version. Call it with the version's row locked, so a request cannot open in between."""
    reasons = seals(version)
    if reasons:
        raise gate_refusal(
            Conflict(
                f"Version {version.version} is sealed ({'; '.join(reasons)}): its {what} cannot "
                "change. Register a new version instead.",
                code="version_sealed",
                extra={"sealed_by": reasons},
            ),
            version.registered_model,
            f"change {what}",
        )
