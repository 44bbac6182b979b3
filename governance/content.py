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
import operator
from functools import reduce
from typing import Any

from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Cast

from core.compiled import CompiledQuery
from core.errors import Conflict
from core.models import AuditEvent
from core.refusals import gate_refusal
from governance import card_source, policies
from governance.models import PromotionRequest
from registry.models import Alias, Artifact, Deployment, ModelVersion, RegisteredModel
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


# The readiness check that puts a version's card under its digest (and its authors among the
# version's contributors).
CARD_CHECK = "card_approved"


def _card_part(version: ModelVersion) -> dict[str, Any] | None:
    if CARD_CHECK not in policies.policy_for(version.registered_model).required_checks:
        return None
    card = card_source.state(version)
    if card is None:
        return {"revision": None, "approved": False}
    return {"revision": card.revision, "approved": card.status == "approved"}


def document(version: ModelVersion) -> dict[str, Any]:
    """The canonical content the digest is computed over, read from the database (not from
    the possibly stale instance): five small queries."""
    fields = ModelVersion.objects.filter(pk=version.pk).values(*SEALED_FIELDS).get()
    files = sorted(version.artifacts.filter(derived=False).values_list("filename", "sha256"))
    metrics = sorted(version.metrics.values_list("name", "dataset", "split", "value"))
    evaluations = sorted(
        [
            list(row)
            for row in version.evaluations.values_list("name", "dataset", "split", "kind", "data")
        ],
        key=lambda row: row[:3],
    )
    return {
        **fields,
        "files": [list(f) for f in files],
        "metrics": [list(m) for m in metrics],
        "card": _card_part(version),
        # Only when there are any: versions recorded before structured evaluations existed
        # keep the digest their approvals were given on.
        **({"evaluations": evaluations} if evaluations else {}),
    }


def digest(version: ModelVersion) -> str:
    text = json.dumps(
        document(version), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


# Audit events whose actor supplied content under the digest: creating the version, logging
# its metrics or evaluations, or changing covered metadata (an update's details name the
# changed fields).
_CONTENT_EVENTS = Q(
    action__in=("version.created", "version.metrics_logged", "version.evaluations_logged")
) | Q(action="version.updated", details__changes__has_any_keys=SEALED_FIELDS)


def _card_counts() -> Q:
    """Registered models whose policy in force requires an approved card (the rule
    _card_part reads through policies.policy_for), as a filter."""
    return policies.models_whose_policy_requires(CARD_CHECK)


def _supplied(version: int | OuterRef) -> list[QuerySet[Any]]:
    """Every record of someone supplying content under the digest of `version` (a pk, or a
    reference to the version of the enclosing query's row), one query per kind, each with a
    `supplier` column: its author, the uploaders of its primary files and the administrators
    who trusted one (vouching supplies too), whoever changed its covered metadata or logged
    its metrics, and (when the policy requires the card) the card's authors. The one
    definition of a contributor: `contributors` lists them for a version, `barred` asks the
    same rows about one user for many requests."""
    key = str(version) if isinstance(version, int) else Cast(version, CharField())
    # django-stubs accepts an int or an OuterRef for these lookups, but not a union of both.
    primary = Artifact.objects.filter(version=version, derived=False)  # type: ignore[misc]
    authored = ModelVersion.objects.filter(pk=version)  # type: ignore[misc]
    return [
        authored.values(supplier=F("created_by")),
        primary.values(supplier=F("created_by")),
        primary.values(supplier=F("trusted_by")),
        AuditEvent.objects.filter(target_type="registry.modelversion", target_id=key)
        .filter(_CONTENT_EVENTS)
        .values(supplier=F("actor")),
        card_source.authors(version, RegisteredModel.objects.filter(_card_counts())),
    ]


def contributors(version: ModelVersion) -> set[int]:
    """Ids of everyone who supplied content under the version's digest since it was created
    (see _supplied). They may not approve its promotions. One query."""
    parts = [
        rows.filter(supplier__isnull=False).order_by().values_list("supplier", flat=True)
        for rows in _supplied(version.pk)
    ]
    return set(parts[0].union(*parts[1:]))


# --- Separation of duties: who may not decide a promotion request -------------------------


def barred_reviewers(promotion_request: PromotionRequest) -> set[int]:
    """Who may not decide this request: the requester and everyone who supplied content of
    the version."""
    barred = contributors(promotion_request.version)
    if promotion_request.requested_by_id is not None:
        barred.add(promotion_request.requested_by_id)
    return barred


def barred(user_id: int | None) -> Q:
    """The same rule asked the other way round, as a filter on promotion requests: those the
    user may not decide (requested them, or supplied content of their version). A fixed
    number of subqueries, however many requests."""
    if user_id is None:
        return Q(pk__in=[])  # nobody in particular: barred from nothing
    return Q(requested_by=user_id) | reduce(
        operator.or_,
        (Q(Exists(rows.filter(supplier=user_id))) for rows in _supplied(OuterRef("version"))),
    )


def _seal_facts(scope: str, pk: int) -> QuerySet[Any]:
    """The four facts that can seal versions, as (kind, value) rows in one round trip: their
    serving stages, open requests, aliases and active deployments. `scope` is "version" (that
    version) or "model" (every live version of that model)."""
    versions = (
        ModelVersion.objects.filter(pk=pk)
        if scope == "version"
        else ModelVersion.objects.filter(registered_model=pk, deleted_at__isnull=True)
    )

    def facts(kind: str, rows: QuerySet[Any], value: Any) -> QuerySet[Any]:
        pairs: QuerySet[Any] = (
            rows.order_by()
            .annotate(seal_kind=Value(kind, output_field=CharField()), seal_value=value)
            .values_list("seal_kind", "seal_value")
        )
        return pairs

    return facts(
        "stage",
        versions.filter(stage__in=[ModelVersion.Stage.STAGING, ModelVersion.Stage.PRODUCTION]),
        F("stage"),
    ).union(
        facts(
            "request",
            PromotionRequest.objects.filter(version__in=versions, status__in=PromotionRequest.OPEN),
            Cast("pk", CharField()),
        ),
        facts("alias", Alias.objects.filter(version__in=versions), F("name")),
        facts(
            "env",
            Deployment.objects.filter(version__in=versions, status=Deployment.Status.ACTIVE),
            F("environment"),
        ),
        all=True,
    )


# Every write to a version's content asks, twice for an upload (before the bytes and under
# the row lock): compiled once per scope.
_SEAL_FACTS: CompiledQuery[Any] = CompiledQuery(_seal_facts)


def _sealed_by(scope: str, pk: int, registered_model: RegisteredModel) -> list[str]:
    """Why content of a version (or of a model's live versions) cannot change now: one query
    for the facts, and the policy in force to decide which aliases are protected."""
    found: dict[str, set[str]] = {kind: set() for kind in ("stage", "request", "alias", "env")}
    for kind, value in _SEAL_FACTS.rows(scope, pk=pk):
        found[kind].add(value)
    reasons = []
    if found["stage"]:
        reasons.append(f"it is in {' and '.join(sorted(found['stage']))}")
    if found["request"]:
        reasons.append(
            "promotion request "
            + ", ".join(f"#{pk}" for pk in sorted(found["request"], key=int))
            + " is open"
        )
    policy = policies.policy_for(registered_model)
    protected = sorted(name for name in found["alias"] if policies.is_protected(policy, name))
    if protected:
        reasons.append("it holds the protected alias " + ", ".join(f"'{a}'" for a in protected))
    serving = sorted(env for env in found["env"] if is_production_environment(env))
    if serving:
        reasons.append(
            "it serves in production environment " + ", ".join(f"'{env}'" for env in serving)
        )
    return reasons


def seals(version: ModelVersion) -> list[str]:
    """What keeps the version's content from changing now (empty: nothing)."""
    return _sealed_by("version", version.pk, version.registered_model)


def model_seals(registered_model: RegisteredModel) -> list[str]:
    """The same for every live version of a model: renaming a model one of whose versions is
    sealed is an administrator's decision."""
    return _sealed_by("model", registered_model.pk, registered_model)


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
