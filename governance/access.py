"""Granting and revoking per-model permissions: audited, and only by managers of the model."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db import transaction

from governance import audit, permissions
from governance.actors import Actor
from governance.models import RegisteredModelGroupPermission, RegisteredModelUserPermission
from governance.permissions import Perm
from registry.errors import ValidationFailed
from registry.models import RegisteredModel


def _grantee(user: User | None, group: Group | None) -> dict[str, str]:
    if (user is None) == (group is None):
        raise ValidationFailed("Grant to exactly one of a user or a group.", field="user")
    if user is not None and not user.is_active:
        raise ValidationFailed("That user is inactive.", field="user")
    return {"user": user.get_username()} if user is not None else {"group": group.name}


@transaction.atomic
def grant_add(*, actor: Actor, registered_model: RegisteredModel, perm: Perm,
              user: User | None = None, group: Group | None = None) -> bool:
    """Grant `perm` on the model to a user or a group; True if it was new."""
    permissions.require(actor.user, Perm.MANAGE_ACCESS, registered_model)
    who = _grantee(user, group)
    created = permissions.grant(perm, registered_model, user=user, group=group)
    if created:
        audit.record(actor=actor, action="access.granted", target=registered_model,
                     registered_model=registered_model,
                     details={**who, "permission": str(perm)})
    return created


@transaction.atomic
def grant_remove(*, actor: Actor, registered_model: RegisteredModel, perm: Perm,
                 user: User | None = None, group: Group | None = None) -> bool:
    """Revoke a per-model grant; True if there was one. Role (global) permissions are
    managed on the role's group, not here."""
    permissions.require(actor.user, Perm.MANAGE_ACCESS, registered_model)
    who = _grantee(user, group)
    if user is not None:
        rows = RegisteredModelUserPermission.objects.filter(user=user)
    else:
        rows = RegisteredModelGroupPermission.objects.filter(group=group)
    deleted, _ = rows.filter(content_object=registered_model,
                             permission__codename=str(perm)).delete()
    if user is not None:
        permissions.invalidate(user)
    if deleted:
        audit.record(actor=actor, action="access.revoked", target=registered_model,
                     registered_model=registered_model,
                     details={**who, "permission": str(perm)})
    return bool(deleted)
