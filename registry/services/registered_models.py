"""Registered models: create, update, tags, soft delete, restore, purge."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import Conflict, Forbidden, ValidationFailed
from core.permissions import Perm
from core.refusals import gate_refusal
from registry import validation
from registry.governed import governor
from registry.models import Deployment, ModelVersion, RegisteredModel, RegisteredModelTag
from registry.services.artifacts import blobs_release
from registry.services.common import (
    UNSET,
    apply_changes,
    insert_or_conflict,
    require_admin,
    tag_upsert,
)

# What the creator of a registered model may do with it. Approving promotions is deliberately
# left out: nobody approves their own work by default.
CREATOR_GRANTS = (Perm.VIEW, Perm.CHANGE, Perm.DELETE, Perm.REQUEST_PROMOTION, Perm.MANAGE_ACCESS)


def _risk_tier(value: str) -> str:
    if value not in RegisteredModel.RiskTier.values:
        choices = ", ".join(RegisteredModel.RiskTier.values)
        raise ValidationFailed(f"Risk tier must be one of {choices}.", field="risk_tier")
    return value


def _tags_replace(registered_model: RegisteredModel, tags: dict[str, str]) -> None:
    RegisteredModelTag.objects.filter(registered_model=registered_model).delete()
    RegisteredModelTag.objects.bulk_create(
        RegisteredModelTag(registered_model=registered_model, key=k, value=v)
        for k, v in tags.items()
    )


@transaction.atomic
def registered_model_create(
    *,
    actor: Actor,
    name: str,
    description: str = "",
    owner: User | None = None,
    team: Group | None = None,
    risk_tier: str = RegisteredModel.RiskTier.MEDIUM,
    tags: dict[str, str] | None = None,
) -> RegisteredModel:
    """Create a registered model owned by `owner` (default: the actor); the creator receives
    every per-model permission except approving promotions."""
    permissions.require_global(actor.user, "add_registeredmodel", "create registered models")
    name = validation.name(name)
    description = validation.text(description, field="description")
    risk_tier = _risk_tier(risk_tier)
    tags = validation.tags(tags or {})
    existing = RegisteredModel.objects.filter(name=name).first()
    if existing is not None:
        hint = (
            " A deleted model holds this name; an administrator can restore or purge it."
            if existing.is_deleted
            else ""
        )
        raise Conflict(
            f"A registered model named '{name}' already exists.{hint}",
            code="registered_model_exists",
            field="name",
        )
    now = timezone.now()
    creator = acting_user(actor)
    owner = owner or creator
    registered_model = insert_or_conflict(
        lambda: RegisteredModel.objects.create(
            name=name,
            description=description,
            owner=owner,
            team=team,
            risk_tier=risk_tier,
            created_by=creator,
            updated_by=creator,
            created_at=now,
            updated_at=now,
        ),
        f"A registered model named '{name}' already exists.",
        "registered_model_exists",
    )
    _tags_replace(registered_model, tags)
    if creator is not None:
        for perm in CREATOR_GRANTS:
            permissions.grant(perm, registered_model, user=creator)
    audit.record(
        actor=actor,
        action="registered_model.created",
        target=registered_model,
        registered_model=registered_model,
        details={
            "name": name,
            "risk_tier": risk_tier,
            "tags": tags,
            "owner": owner.get_username() if owner else None,
            "team": team.name if team else None,
        },
    )
    return registered_model


@transaction.atomic
def registered_model_update(
    *,
    actor: Actor,
    registered_model: RegisteredModel,
    name: str = UNSET,
    description: str = UNSET,
    owner: User | None = UNSET,
    team: Group | None = UNSET,
    risk_tier: str = UNSET,
    metric_directions: dict[str, str] = UNSET,
) -> RegisteredModel:
    """Edit metadata. Renaming, the description and metric directions need `change`; owner,
    team and risk tier decide who answers for the model and which policy applies, so they need
    `manage_access`. While a version is under review or serves, only an administrator may
    rename the model or change which way its metrics count as better (the request page shows
    reviewers changes in that light)."""
    permissions.require(actor.user, Perm.CHANGE, registered_model)
    if any(v is not UNSET for v in (owner, team, risk_tier)):
        permissions.require(actor.user, Perm.MANAGE_ACCESS, registered_model)
    registered_model = RegisteredModel.objects.select_for_update().get(pk=registered_model.pk)
    if (
        name is not UNSET
        and name != registered_model.name
        and not permissions.is_administrator(actor.user)
        and governor().model_sealed(registered_model)
    ):
        # Clients resolve models by name: renaming a serving model would let a new model of
        # any tier take its name, and its stages and aliases, without the old approvals.
        raise gate_refusal(
            Forbidden(
                f"'{registered_model.name}' serves (a version in staging or production, a "
                "protected alias, an open request or a production deployment); only an "
                "administrator may rename it.",
                code="administrator_required",
            ),
            registered_model,
            "rename",
        )
    if metric_directions is not UNSET:
        metric_directions = validation.metric_directions(metric_directions)
        if (
            metric_directions != registered_model.metric_directions
            and not permissions.is_administrator(actor.user)
            and governor().model_sealed(registered_model)
        ):
            raise gate_refusal(
                Forbidden(
                    f"'{registered_model.name}' has a version under review or serving; only an "
                    "administrator may change which way its metrics count as better.",
                    code="administrator_required",
                ),
                registered_model,
                "change metric directions",
            )
    if (
        risk_tier is not UNSET
        and _risk_tier(risk_tier) != registered_model.risk_tier
        and not permissions.is_administrator(actor.user)
    ):
        # The tier picks the policy: whoever it governs may not choose it.
        raise gate_refusal(
            Forbidden(
                f"Only an administrator may change the risk tier of '{registered_model.name}' "
                f"(now {registered_model.risk_tier}).",
                code="administrator_required",
            ),
            registered_model,
            "change risk tier",
        )
    if name is not UNSET:
        name = validation.name(name)
        if RegisteredModel.objects.filter(name=name).exclude(pk=registered_model.pk).exists():
            raise Conflict(
                f"A registered model named '{name}' already exists.",
                code="registered_model_exists",
                field="name",
            )
    if description is not UNSET:
        description = validation.text(description, field="description")
    if risk_tier is not UNSET:
        risk_tier = _risk_tier(risk_tier)
    diff = apply_changes(
        registered_model,
        {
            "name": name,
            "description": description,
            "owner": owner,
            "team": team,
            "risk_tier": risk_tier,
            "metric_directions": metric_directions,
        },
    )
    if diff:
        registered_model.updated_at = timezone.now()
        registered_model.updated_by = acting_user(actor)
        fields = [
            f
            for f in ("name", "description", "owner", "team", "risk_tier", "metric_directions")
            if f in diff
        ]
        insert_or_conflict(
            lambda: registered_model.save(update_fields=[*fields, "updated_at", "updated_by"]),
            "A registered model with that name already exists.",
            "registered_model_exists",
        )
        if "description" in diff:  # descriptions can be long; record that it changed, not it
            diff["description"] = {"changed": True}
        audit.record(
            actor=actor,
            action="registered_model.updated",
            target=registered_model,
            registered_model=registered_model,
            details={"changes": diff},
        )
    return registered_model


@transaction.atomic
def registered_model_tag_set(
    *, actor: Actor, registered_model: RegisteredModel, key: str, value: str
) -> None:
    permissions.require(actor.user, Perm.CHANGE, registered_model)
    changed, previous = tag_upsert(registered_model.tags, key=key, value=value)
    if not changed:
        return
    audit.record(
        actor=actor,
        action="registered_model.tag_set",
        target=registered_model,
        registered_model=registered_model,
        details={"key": key, "from": previous, "to": value},
    )


@transaction.atomic
def registered_model_tag_delete(
    *, actor: Actor, registered_model: RegisteredModel, key: str
) -> None:
    permissions.require(actor.user, Perm.CHANGE, registered_model)
    deleted, _ = RegisteredModelTag.objects.filter(
        registered_model=registered_model, key=key
    ).delete()
    if deleted:
        audit.record(
            actor=actor,
            action="registered_model.tag_deleted",
            target=registered_model,
            registered_model=registered_model,
            details={"key": key},
        )


def _refuse_if_serving(versions: list[ModelVersion], what: str) -> None:
    live = [
        v
        for v in versions
        if v.stage in (ModelVersion.Stage.STAGING, ModelVersion.Stage.PRODUCTION)
    ]
    if live:
        v = live[0]
        raise Conflict(
            f"Cannot delete {what}: version {v.version} is in {v.stage}. Move it out "
            "of that stage first.",
            code="version_in_use",
        )
    deployed = (
        Deployment.objects.filter(version__in=versions, status=Deployment.Status.ACTIVE)
        .select_related("version")
        .first()
    )
    if deployed is not None:
        raise Conflict(
            f"Cannot delete {what}: version {deployed.version.version} has an active "
            f"deployment in {deployed.environment}. Retire it first.",
            code="version_in_use",
        )


@transaction.atomic
def registered_model_delete(*, actor: Actor, registered_model: RegisteredModel) -> RegisteredModel:
    """Soft delete: hidden from every list and lookup; an administrator can restore it."""
    permissions.require(actor.user, Perm.DELETE, registered_model)
    registered_model = RegisteredModel.objects.select_for_update().get(pk=registered_model.pk)
    _refuse_if_serving(
        list(registered_model.versions.filter(deleted_at__isnull=True)),
        f"registered model '{registered_model.name}'",
    )
    registered_model.deleted_at = timezone.now()
    registered_model.deleted_by = acting_user(actor)
    registered_model.save(update_fields=["deleted_at", "deleted_by"])
    audit.record(
        actor=actor,
        action="registered_model.deleted",
        target=registered_model,
        registered_model=registered_model,
        details={},
    )
    return registered_model


@transaction.atomic
def registered_model_restore(*, actor: Actor, registered_model: RegisteredModel) -> RegisteredModel:
    require_admin(actor, "restore a deleted registered model")
    updated = RegisteredModel.objects.filter(
        pk=registered_model.pk, deleted_at__isnull=False
    ).update(deleted_at=None, deleted_by=None)
    registered_model.refresh_from_db()
    if updated:
        audit.record(
            actor=actor,
            action="registered_model.restored",
            target=registered_model,
            registered_model=registered_model,
            details={},
        )
    return registered_model


@transaction.atomic
def registered_model_purge(*, actor: Actor, registered_model: RegisteredModel) -> None:
    """Remove a soft-deleted model for good: versions, artifacts (and their files once no
    other artifact shares them), aliases, deployments and grants. The audit trail stays."""
    require_admin(actor, "purge a registered model")
    registered_model = RegisteredModel.objects.select_for_update().get(pk=registered_model.pk)
    if not registered_model.is_deleted:
        raise Conflict("Delete the registered model before purging it.", code="not_deleted")
    keys = list(registered_model.versions.values_list("artifacts__storage_key", flat=True))
    counts: dict[str, object] = {"versions": registered_model.versions.count()}
    Deployment.objects.filter(version__registered_model=registered_model).delete()
    registered_model.aliases.all().delete()
    audit.record(
        actor=actor,
        action="registered_model.purged",
        target=registered_model,
        registered_model=registered_model,
        details=counts,
    )
    registered_model.delete()
    blobs_release([k for k in keys if k])
