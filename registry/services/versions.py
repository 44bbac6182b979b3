"""Model versions: create (atomic numbering, idempotent), update, tags, metrics, stages,
soft delete, restore, purge."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import Conflict, ValidationFailed
from core.permissions import Perm
from registry import signals, validation
from registry.governed import governor
from registry.models import (
    Alias,
    EvaluationResult,
    ModelVersion,
    ModelVersionMetric,
    ModelVersionTag,
    RegisteredModel,
    TrainingRun,
)
from registry.services.artifacts import blobs_release
from registry.services.common import (
    UNSET,
    apply_changes,
    require_admin,
    tag_upsert,
    version_locked,
)
from registry.services.lineage import linkable
from registry.services.registered_models import _refuse_if_serving

MAX_IDEMPOTENCY_KEY = 255


def _fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _check_training_run(actor: Actor, training_run: TrainingRun | None) -> None:
    """A version may link only a training run its author can see (the gate's lineage rule) or
    recorded: otherwise linking would be a way to read another model's run and what it was
    trained on. Answered like a run that does not exist."""
    if (
        training_run is not None
        and training_run is not UNSET
        and not linkable(actor, TrainingRun.objects.filter(pk=training_run.pk)).exists()
    ):
        raise ValidationFailed(
            f"Object with run_id={training_run.run_id} does not exist.", field="training_run"
        )


def _check_example(signature: dict[str, Any] | None, example: Any) -> None:
    if signature is None or example is None:
        return
    rows = example if isinstance(example, list) else [example]
    errors = validation.rows_check(signature["inputs"], rows)
    if errors:
        raise ValidationFailed(
            f"The input example does not match the signature: {errors[0]['message']}",
            field="input_example",
            extra={"errors": errors},
        )


@transaction.atomic
def version_create(
    *,
    actor: Actor,
    registered_model: RegisteredModel,
    description: str = "",
    source: str = "",
    run_id: str = "",
    run_link: str = "",
    flavor: str = "",
    params: dict[str, Any] | None = None,
    metrics: Any = None,
    signature: dict[str, Any] | None = None,
    input_example: Any = None,
    pip_requirements: list[str] | None = None,
    python_version: str = "",
    tags: dict[str, str] | None = None,
    training_run: TrainingRun | None = None,
    status: str = ModelVersion.Status.READY,
    idempotency_key: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Register the next version of `registered_model`; returns (version, created).

    Numbers are allocated under a row lock on the registered model, so concurrent creates
    queue and get 1, 2, 3… without gaps or collisions. With an idempotency key, a retry of
    the same request returns the version it created (created=False) instead of a second one;
    the same key with a different request is refused.
    """
    permissions.require(actor.user, Perm.CHANGE, registered_model)
    clean = {
        "description": validation.text(description, field="description"),
        "source": validation.text(source, field="source", max_length=1000),
        "run_id": validation.text(run_id, field="run_id", max_length=256),
        "run_link": validation.text(run_link, field="run_link", max_length=1000),
        "flavor": validation.text(flavor, field="flavor", max_length=64),
        "params": validation.params(params or {}),
        "signature": (clean_signature := validation.signature(signature)),
        "input_example": (example := validation.bounded_json(input_example, field="input_example")),
        "pip_requirements": validation.requirements(pip_requirements or []),
        "python_version": validation.text(python_version, field="python_version", max_length=32),
    }
    metric_values = validation.metrics(metrics if metrics is not None else {})
    tags = validation.tags(tags or {})
    _check_training_run(actor, training_run)
    if status not in (ModelVersion.Status.READY, ModelVersion.Status.PENDING_REGISTRATION):
        raise ValidationFailed(
            "A new version is 'ready' or 'pending_registration'.", field="status"
        )
    _check_example(clean_signature, example)
    if idempotency_key is not None and (
        not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
        or validation.has_control_chars(idempotency_key)
    ):
        raise ValidationFailed(
            f"Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY} printable characters.",
            code="invalid_idempotency_key",
        )
    fingerprint = _fingerprint(
        {
            **clean,
            "metrics": [m.__dict__ for m in metric_values],
            "tags": tags,
            "status": status,
            "training_run": training_run.pk if training_run else None,
        }
    )

    # The lock serialises version creation per model; it is also what makes the idempotency
    # lookup below safe: a concurrent retry waits here, then finds the committed version.
    locked = RegisteredModel.objects.select_for_update().get(pk=registered_model.pk)
    if idempotency_key is not None:
        existing = ModelVersion.objects.filter(
            registered_model=locked, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            if existing.idempotency_fingerprint != fingerprint:
                raise Conflict(
                    "This Idempotency-Key was already used for a different request.",
                    code="idempotency_key_reused",
                )
            return existing, False
    now = timezone.now()
    locked.last_version_number += 1
    locked.updated_at = now
    locked.save(update_fields=["last_version_number", "updated_at"])
    creator = acting_user(actor)
    version = ModelVersion.objects.create(
        registered_model=locked,
        version=locked.last_version_number,
        status=status,
        training_run=training_run,
        created_by=creator,
        created_at=now,
        updated_at=now,
        idempotency_key=idempotency_key,
        idempotency_fingerprint=fingerprint if idempotency_key else "",
        **clean,
    )
    ModelVersionMetric.objects.bulk_create(
        ModelVersionMetric(
            version=version, name=m.name, value=m.value, dataset=m.dataset, split=m.split
        )
        for m in metric_values
    )
    ModelVersionTag.objects.bulk_create(
        ModelVersionTag(version=version, key=k, value=v) for k, v in tags.items()
    )
    audit.record(
        actor=actor,
        action="version.created",
        target=version,
        registered_model=locked,
        details={
            "version": version.version,
            "source": version.source,
            "run_id": version.run_id,
            "status": status,
        },
    )
    signals.version_created.send(sender=ModelVersion, version=version, actor=actor)
    return version, True


@transaction.atomic
def version_update(
    *,
    actor: Actor,
    version: ModelVersion,
    description: str = UNSET,
    run_link: str = UNSET,
    flavor: str = UNSET,
    status: str = UNSET,
    status_message: str = UNSET,
    signature: dict[str, Any] | None = UNSET,
    input_example: Any = UNSET,
    pip_requirements: list[str] = UNSET,
    python_version: str = UNSET,
    training_run: TrainingRun | None = UNSET,
) -> ModelVersion:
    """Edit a version's metadata. What the model is (signature, example, requirements,
    flavor, training run) may change only while the version is not sealed (governance.content:
    an open request, a serving stage or a protected alias); the description may always."""
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    version = version_locked(version)
    changes: dict[str, Any] = {
        "description": description
        if description is UNSET
        else validation.text(description, field="description"),
        "run_link": run_link
        if run_link is UNSET
        else validation.text(run_link, field="run_link", max_length=1000),
        "flavor": flavor
        if flavor is UNSET
        else validation.text(flavor, field="flavor", max_length=64),
        "status": status,
        "status_message": status_message
        if status_message is UNSET
        else validation.text(status_message, field="status_message", max_length=1000),
        "signature": signature if signature is UNSET else validation.signature(signature),
        "input_example": input_example
        if input_example is UNSET
        else validation.bounded_json(input_example, field="input_example"),
        "pip_requirements": pip_requirements
        if pip_requirements is UNSET
        else validation.requirements(pip_requirements),
        "python_version": python_version
        if python_version is UNSET
        else validation.text(python_version, field="python_version", max_length=32),
        "training_run": training_run,
    }
    _check_training_run(actor, training_run)
    if status is not UNSET and status not in ModelVersion.Status.values:
        raise ValidationFailed(
            f"Status must be one of {', '.join(ModelVersion.Status.values)}.", field="status"
        )
    sealed = [
        f
        for f, v in changes.items()
        if v is not UNSET and f in governor().sealed_fields and v != getattr(version, f)
    ]
    if sealed:
        governor().require_unsealed(version, ", ".join(sealed))
    _check_example(
        version.signature if signature is UNSET else changes["signature"],
        version.input_example if input_example is UNSET else changes["input_example"],
    )
    diff = apply_changes(version, changes)
    if diff:
        version.updated_at = timezone.now()
        version.save(update_fields=[*diff, "updated_at"])
        for big in ("description", "signature", "input_example"):
            if big in diff:
                diff[big] = {"changed": True}
        audit.record(
            actor=actor,
            action="version.updated",
            target=version,
            registered_model=version.registered_model,
            details={"changes": diff},
        )
    return version


@transaction.atomic
def version_tag_set(*, actor: Actor, version: ModelVersion, key: str, value: str) -> None:
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    changed, previous = tag_upsert(version.tags, key=key, value=value)
    if not changed:
        return
    audit.record(
        actor=actor,
        action="version.tag_set",
        target=version,
        registered_model=version.registered_model,
        details={"key": key, "from": previous, "to": value},
    )


@transaction.atomic
def version_tag_delete(*, actor: Actor, version: ModelVersion, key: str) -> None:
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    deleted, _ = ModelVersionTag.objects.filter(version=version, key=key).delete()
    if deleted:
        audit.record(
            actor=actor,
            action="version.tag_deleted",
            target=version,
            registered_model=version.registered_model,
            details={"key": key},
        )


@transaction.atomic
def version_metrics_log(*, actor: Actor, version: ModelVersion, metrics: Any) -> None:
    """Add or overwrite metrics (per name, dataset and split) on a version that is not
    sealed: metrics are what approvers judge."""
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    values = validation.metrics(metrics)
    version = version_locked(version)
    governor().require_unsealed(version, "metrics")
    changed = {}
    for m in values:
        row, created = ModelVersionMetric.objects.update_or_create(
            version=version,
            name=m.name,
            dataset=m.dataset,
            split=m.split,
            defaults={"value": m.value},
        )
        changed[str(row)] = m.value
    audit.record(
        actor=actor,
        action="version.metrics_logged",
        target=version,
        registered_model=version.registered_model,
        details={"metrics": changed},
    )


@transaction.atomic
def version_evaluations_log(
    *, actor: Actor, version: ModelVersion, evaluations: Any
) -> list[EvaluationResult]:
    """Add or replace structured evaluation results (per name, dataset and split) on a version
    that is not sealed: like metrics, they are what approvers judge. What the version holds
    afterwards stays within validation.VERSION_BUDGET (checked under the version's lock)."""
    permissions.require(actor.user, Perm.CHANGE, version.registered_model)
    values = validation.evaluations(evaluations)
    version = version_locked(version)
    governor().require_unsealed(version, "evaluations")
    replaced = {(e.name, e.dataset, e.split) for e in values}
    kept = [
        (kind, data)
        for name, dataset, split, kind, data in EvaluationResult.objects.filter(
            version=version
        ).values_list("name", "dataset", "split", "kind", "data")
        if (name, dataset, split) not in replaced
    ]
    validation.evaluations_within_budget([*kept, *((e.kind, e.data) for e in values)])
    rows = []
    for e in values:
        row, _ = EvaluationResult.objects.update_or_create(
            version=version,
            name=e.name,
            dataset=e.dataset,
            split=e.split,
            defaults={"kind": e.kind, "data": e.data},
        )
        rows.append(row)
    audit.record(
        actor=actor,
        action="version.evaluations_logged",
        target=version,
        registered_model=version.registered_model,
        details={"evaluations": {str(row): row.kind for row in rows}},
    )
    return rows


@transaction.atomic
def version_stage_set(
    *, actor: Actor, version: ModelVersion, stage: str, archive_existing: bool = False
) -> ModelVersion:
    """Move a version to another stage directly.

    Archiving or clearing the stage needs `change`: taking a model out of service is never
    blocked. Staging and production go through promotion requests unless the model's policy
    needs no approval for that stage; then holders of `request_promotion` may move directly.
    """
    if stage not in ModelVersion.Stage.values:
        raise ValidationFailed(
            f"Stage must be one of {', '.join(ModelVersion.Stage.values)}.", field="stage"
        )
    registered_model = version.registered_model
    promoting = stage in (ModelVersion.Stage.STAGING, ModelVersion.Stage.PRODUCTION)
    permissions.require(
        actor.user, Perm.REQUEST_PROMOTION if promoting else Perm.CHANGE, registered_model
    )
    RegisteredModel.objects.select_for_update().get(pk=registered_model.pk)
    if promoting:
        # Judged under the model's and the version's row locks, as a request is: a change to
        # the version (which takes its lock) waits until the move commits, and is then sealed.
        governor().require_direct_stage(actor, version_locked(version), stage)
    return stage_move(actor=actor, version=version, stage=stage, archive_existing=archive_existing)


def stage_move(
    *,
    actor: Actor,
    version: ModelVersion,
    stage: str,
    archive_existing: bool,
    promotion_request: Any = None,
) -> ModelVersion:
    """The move itself, for callers that checked permission and policy and hold the model's
    row lock (so two concurrent moves to production queue rather than both succeed). With
    `archive_existing`, versions already in the target stage are archived."""
    registered_model = version.registered_model
    version = version_locked(version)
    if version.is_deleted:
        raise Conflict("A deleted version cannot change stage.", code="version_deleted")
    if version.status != ModelVersion.Status.READY and stage in ModelVersion.PROMOTION_STAGES:
        raise Conflict(
            f"Version {version.version} is {version.status}; only ready versions "
            "can be staged or promoted.",
            code="version_not_ready",
        )
    previous = version.stage
    archived: list[ModelVersion] = []
    now = timezone.now()
    user = acting_user(actor)
    if archive_existing and stage in (ModelVersion.Stage.STAGING, ModelVersion.Stage.PRODUCTION):
        archived = list(
            ModelVersion.objects.select_for_update()
            .filter(
                registered_model=registered_model,
                stage=stage,
                deleted_at__isnull=True,
            )
            .exclude(pk=version.pk)
        )
        ModelVersion.objects.filter(pk__in=[v.pk for v in archived]).update(
            stage=ModelVersion.Stage.ARCHIVED, stage_changed_at=now, updated_at=now
        )
        governor().stages_moved(
            versions=archived,
            stage=ModelVersion.Stage.ARCHIVED,
            at=now,
            user=user,
            promotion_request=promotion_request,
        )
    if previous != stage or archived:
        version.stage, version.stage_changed_at, version.updated_at = stage, now, now
        version.save(update_fields=["stage", "stage_changed_at", "updated_at"])
        if previous != stage:
            governor().stages_moved(
                versions=[version],
                stage=stage,
                at=now,
                user=user,
                promotion_request=promotion_request,
            )
        audit.record(
            actor=actor,
            action="version.stage_changed",
            target=version,
            registered_model=registered_model,
            details={
                "from": previous,
                "to": stage,
                "archived_versions": [v.version for v in archived],
                "promotion_request": promotion_request.pk if promotion_request else None,
            },
        )
    return version


@transaction.atomic
def version_delete(*, actor: Actor, version: ModelVersion) -> ModelVersion:
    """Soft delete. Refused while the version is staged, in production or deployed; aliases
    that pointed at it are removed (and recorded)."""
    permissions.require(actor.user, Perm.DELETE, version.registered_model)
    version = version_locked(version)
    _refuse_if_serving([version], f"version {version.version}")
    aliases = list(Alias.objects.filter(version=version).values_list("name", flat=True))
    Alias.objects.filter(version=version).delete()
    now = timezone.now()
    for name in aliases:
        governor().alias_moved(
            registered_model=version.registered_model,
            name=name,
            version=None,
            at=now,
            user=acting_user(actor),
        )
    version.deleted_at = now
    version.deleted_by = acting_user(actor)
    version.save(update_fields=["deleted_at", "deleted_by"])
    audit.record(
        actor=actor,
        action="version.deleted",
        target=version,
        registered_model=version.registered_model,
        details={"removed_aliases": aliases},
    )
    return version


@transaction.atomic
def version_restore(*, actor: Actor, version: ModelVersion) -> ModelVersion:
    require_admin(actor, "restore a deleted version")
    updated = ModelVersion.objects.filter(pk=version.pk, deleted_at__isnull=False).update(
        deleted_at=None, deleted_by=None
    )
    version.refresh_from_db()
    if updated:
        audit.record(
            actor=actor,
            action="version.restored",
            target=version,
            registered_model=version.registered_model,
            details={},
        )
    return version


@transaction.atomic
def version_purge(*, actor: Actor, version: ModelVersion) -> None:
    """Remove a soft-deleted version for good. Its number is never given out again."""
    require_admin(actor, "purge a version")
    version = version_locked(version)
    if not version.is_deleted:
        raise Conflict("Delete the version before purging it.", code="not_deleted")
    if version.deployments.exists():
        raise Conflict("This version has deployment records; they keep it.", code="version_in_use")
    keys = list(version.artifacts.values_list("storage_key", flat=True))
    audit.record(
        actor=actor,
        action="version.purged",
        target=version,
        registered_model=version.registered_model,
        details={"version": version.version},
    )
    version.delete()
    blobs_release(keys)
