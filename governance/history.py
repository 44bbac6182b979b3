"""Stage and alias history: written by the services that move versions, read for "what was
where at a given instant, and who approved it"."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Prefetch, Q, QuerySet

from governance import content
from governance.models import PromotionRequest, Review, StageHistory
from registry.models import ModelVersion, RegisteredModel


def stages_moved(
    *,
    versions: Iterable[ModelVersion],
    stage: str,
    at: datetime,
    user: User | None,
    promotion_request: PromotionRequest | None = None,
) -> None:
    """Close the open stage rows of `versions` and open one in `stage` (none: no new row).
    Runs in the mover's transaction, after the versions' rows were locked."""
    versions = list(versions)
    StageHistory.objects.filter(
        version__in=versions, kind=StageHistory.Kind.STAGE, ended_at__isnull=True
    ).update(ended_at=at, ended_by=user)
    if stage != ModelVersion.Stage.NONE:
        StageHistory.objects.bulk_create(
            StageHistory(
                registered_model_id=v.registered_model_id,
                version=v,
                kind=StageHistory.Kind.STAGE,
                name=stage,
                started_at=at,
                started_by=user,
                promotion_request=promotion_request,
                content_digest=_digest(v, stage),
            )
            for v in versions
        )


def alias_moved(
    *,
    registered_model: RegisteredModel,
    name: str,
    version: ModelVersion | None,
    at: datetime,
    user: User | None,
    promotion_request: PromotionRequest | None = None,
) -> None:
    StageHistory.objects.filter(
        registered_model=registered_model,
        kind=StageHistory.Kind.ALIAS,
        name=name,
        ended_at__isnull=True,
    ).update(ended_at=at, ended_by=user)
    if version is not None:
        StageHistory.objects.create(
            registered_model=registered_model,
            version=version,
            kind=StageHistory.Kind.ALIAS,
            name=name,
            started_at=at,
            started_by=user,
            promotion_request=promotion_request,
            content_digest=content.digest(version),
        )


def placement_imported(
    *, registered_model: RegisteredModel, kind: str, name: str, version: ModelVersion
) -> int:
    """Mark the open placement of `version` in stage or alias `name` as imported from MLflow:
    it records where MLflow had the version, not an approval. Called by the importer right
    after its move, in the move's transaction; returns how many rows it marked (0 or 1)."""
    return StageHistory.objects.filter(
        registered_model=registered_model,
        version=version,
        kind=kind,
        name=name,
        ended_at__isnull=True,
    ).update(origin=StageHistory.Origin.MLFLOW_IMPORT)


def _digest(version: ModelVersion, stage: str) -> str:
    # Archiving needs no digest: nothing is served from the archive without a new request.
    return "" if stage == ModelVersion.Stage.ARCHIVED else content.digest(version)


# Where _rows puts each request's approving reviews (a list on the request).
_APPROVALS = "approvals"


def _rows(registered_model: RegisteredModel) -> QuerySet[StageHistory]:
    reviews = Review.objects.filter(decision=Review.Decision.APPROVE).select_related("reviewer")
    return (
        StageHistory.objects.filter(registered_model=registered_model)
        .select_related("version", "started_by", "ended_by", "promotion_request")
        .prefetch_related(
            Prefetch("promotion_request__reviews", queryset=reviews, to_attr=_APPROVALS)
        )
    )


def _approvals(promotion_request: PromotionRequest) -> list[Review]:
    approvals: list[Review] = getattr(promotion_request, _APPROVALS)
    return approvals


def describe(row: StageHistory) -> dict[str, Any]:
    promotion_request = row.promotion_request
    return {
        "kind": row.kind,
        "name": row.name,
        "version": row.version.version,
        "started_at": row.started_at,
        "started_by": row.started_by.username if row.started_by else None,
        "ended_at": row.ended_at,
        "ended_by": row.ended_by.username if row.ended_by else None,
        "promotion_request": promotion_request.pk if promotion_request else None,
        "content_digest": row.content_digest,
        # "mlflow_import": copied from MLflow by the importer, not approved in Modelgate.
        "origin": row.origin,
        "approved_by": [
            {"user": r.reviewer.username if r.reviewer else None, "at": r.created_at}
            for r in _approvals(promotion_request)
        ]
        if promotion_request
        else [],
    }


def at_instant(registered_model: RegisteredModel, at: datetime) -> dict[str, Any]:
    """Which versions held each stage and alias at `at`, and who put and approved them there.
    Three queries, however long the history."""
    rows = (
        _rows(registered_model)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=at), started_at__lte=at)
        .order_by("kind", "name", "pk")
    )
    out: dict[str, Any] = {"at": at, "stages": {}, "aliases": {}}
    for row in rows:
        if row.kind == StageHistory.Kind.STAGE:
            out["stages"].setdefault(row.name, []).append(describe(row))
        else:
            out["aliases"][row.name] = describe(row)
    return out


def timeline(
    registered_model: RegisteredModel,
    *,
    kind: str | None = None,
    name: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The newest `limit` placements, newest first."""
    rows = _rows(registered_model)
    if kind:
        rows = rows.filter(kind=kind)
    if name:
        rows = rows.filter(name=name)
    return [describe(r) for r in rows.order_by("-started_at", "-pk")[:limit]]
