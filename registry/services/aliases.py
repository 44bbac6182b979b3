"""Aliases: movable names pointing at one version of a model. Aliases the model's policy
protects move only through promotion requests (unless the policy needs no approval)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import NotFound, ValidationFailed
from core.permissions import Perm
from registry import validation
from registry.governed import governor
from registry.models import Alias, ModelVersion, RegisteredModel
from registry.services.common import insert_or_conflict, version_locked


@transaction.atomic
def alias_set(
    *, actor: Actor, registered_model: RegisteredModel, name: str, version: ModelVersion
) -> Alias:
    """Point `name` at `version`: one audited, atomic update (creating the alias if new)."""
    permissions.require(actor.user, Perm.CHANGE, registered_model)
    name = validation.alias_name(name)
    if version.registered_model_id != registered_model.pk:  # the policy asked is the model's
        raise ValidationFailed("That version belongs to another model.", field="version")
    RegisteredModel.objects.select_for_update().get(pk=registered_model.pk)
    # Judged under the model's and the version's row locks, as a request is.
    governor().require_direct_alias(actor, version_locked(version), name)
    return alias_point(actor=actor, registered_model=registered_model, name=name, version=version)


def alias_point(
    *,
    actor: Actor,
    registered_model: RegisteredModel,
    name: str,
    version: ModelVersion,
    promotion_request: Any = None,
) -> Alias:
    """The move itself, for callers that checked permission and policy and hold the model's
    row lock."""
    if version.registered_model_id != registered_model.pk:
        raise ValidationFailed("That version belongs to another model.", field="version")
    if version.is_deleted:
        raise ValidationFailed("A deleted version cannot carry an alias.", field="version")
    now = timezone.now()
    user = acting_user(actor)
    # Names are one alias whatever their case: an existing alias keeps its spelling.
    alias = (
        Alias.objects.select_for_update()
        .select_related("version")
        .filter(registered_model=registered_model, name__iexact=name)
        .first()
    )
    created = alias is None
    previous = None
    if alias is None:
        alias = insert_or_conflict(
            lambda: Alias.objects.create(
                registered_model=registered_model,
                name=name,
                version=version,
                updated_by=user,
                created_at=now,
                updated_at=now,
            ),
            f"Alias '{name}' was created by another request at the same time; retry.",
            "alias_conflict",
        )
    else:
        previous = alias.version.version
        if alias.version_id == version.pk:
            return alias
        alias.version, alias.updated_by, alias.updated_at = version, user, now
        alias.save(update_fields=["version", "updated_by", "updated_at"])
    name = alias.name
    governor().alias_moved(
        registered_model=registered_model,
        name=name,
        version=version,
        at=now,
        user=user,
        promotion_request=promotion_request,
    )
    audit.record(
        actor=actor,
        action="alias.moved" if not created else "alias.created",
        target=alias,
        registered_model=registered_model,
        details={
            "name": name,
            "from": previous,
            "to": version.version,
            "promotion_request": promotion_request.pk if promotion_request else None,
        },
    )
    return alias


@transaction.atomic
def alias_delete(*, actor: Actor, registered_model: RegisteredModel, name: str) -> None:
    """Removing an alias (protected or not) needs only `change`: taking a model out of
    service is never blocked."""
    permissions.require(actor.user, Perm.CHANGE, registered_model)
    alias = (
        Alias.objects.select_for_update()
        .select_related("version")
        .filter(registered_model=registered_model, name__iexact=name)
        .first()
    )
    if alias is None:
        raise NotFound(f"Alias '{name}' not found.", code="alias_not_found")
    name = alias.name
    governor().alias_moved(
        registered_model=registered_model,
        name=name,
        version=None,
        at=timezone.now(),
        user=acting_user(actor),
    )
    audit.record(
        actor=actor,
        action="alias.deleted",
        target=alias,
        registered_model=registered_model,
        details={"name": name, "version": alias.version.version},
    )
    alias.delete()
