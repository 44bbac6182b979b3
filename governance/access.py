"""Granting and revoking per-model permissions: audited, and only by managers of the model."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.db import transaction

from core import audit, permissions
from core.actors import Actor, acting_user
from core.errors import Forbidden, ValidationFailed
from core.permissions import Perm
from core.refusals import gate_refusal
from governance.models import RegisteredModelGroupPermission, RegisteredModelUserPermission
from registry.models import RegisteredModel


def _grantee(user: User | None, group: Group | None) -> dict[str, str]:
    if user is None and group is not None:
        return {"group": group.name}
    if user is None or group is not None:
        raise ValidationFailed("Grant to exactly one of a user or a group.", field="user")
    if not user.is_active:
        raise ValidationFailed("That user is inactive.", field="user")
    return {"user": user.get_username()}


# Granting or revoking these decides who approves promotions and who appoints: only
# administrators may.
ADMIN_ONLY = (Perm.APPROVE_PROMOTION, Perm.MANAGE_ACCESS)


def _check_grantor(
    actor: Actor,
    registered_model: RegisteredModel,
    perm: Perm,
    user: User | None,
    group: Group | None,
    doing: str,
) -> None:
    """After require(MANAGE_ACCESS): nobody changes their own access, and approval and
    access management are an administrator's to hand out or take back."""
    me = actor.user
    if (
        me is not None
        and me.is_authenticated
        and (
            (user is not None and user.pk == me.pk)
            or (group is not None and group.user_set.filter(pk=me.pk).exists())
        )
    ):
        raise gate_refusal(
            Forbidden(
                f"You may not {doing} permissions for yourself"
                f"{' (you are in that group)' if group is not None else ''}; ask an administrator.",
                code="self_grant",
            ),
            registered_model,
            f"{doing} {perm}",
        )
    if perm in ADMIN_ONLY and not permissions.is_administrator(me):
        raise gate_refusal(
            Forbidden(
                f"Only an administrator may {doing} '{perm}': it decides who approves and who "
                "appoints.",
                code="administrator_required",
            ),
            registered_model,
            f"{doing} {perm}",
        )


@transaction.atomic
def grant_add(
    *,
    actor: Actor,
    registered_model: RegisteredModel,
    perm: Perm,
    user: User | None = None,
    group: Group | None = None,
) -> bool:
    """Grant `perm` on the model to a user or a group; True if it was new."""
    permissions.require(actor.user, Perm.MANAGE_ACCESS, registered_model)
    who = _grantee(user, group)
    _check_grantor(actor, registered_model, perm, user, group, "grant")
    created = permissions.grant(
        perm,
        registered_model,
        user=user,
        group=group,
        granted_by=acting_user(actor),
    )
    if created:
        audit.record(
            actor=actor,
            action="access.granted",
            target=registered_model,
            registered_model=registered_model,
            details={**who, "permission": str(perm)},
        )
    return created


@transaction.atomic
def grant_remove(
    *,
    actor: Actor,
    registered_model: RegisteredModel,
    perm: Perm,
    user: User | None = None,
    group: Group | None = None,
) -> bool:
    """Revoke a per-model grant; True if there was one. Role (global) permissions are
    managed on the role's group, not here."""
    permissions.require(actor.user, Perm.MANAGE_ACCESS, registered_model)
    who = _grantee(user, group)
    _check_grantor(actor, registered_model, perm, user, group, "revoke")
    if user is not None:
        rows = RegisteredModelUserPermission.objects.filter(user=user)
    else:
        rows = RegisteredModelGroupPermission.objects.filter(group=group)
    deleted, _ = rows.filter(
        content_object=registered_model, permission__codename=str(perm)
    ).delete()
    if user is not None:
        permissions.invalidate(user)
    if deleted:
        audit.record(
            actor=actor,
            action="access.revoked",
            target=registered_model,
            registered_model=registered_model,
            details={**who, "permission": str(perm)},
        )
    return bool(deleted)


@transaction.atomic
def access_review_record(*, actor: Actor, registered_model: RegisteredModel) -> None:
    """Record that a manager of the model reviewed who holds which permission on it (the
    maturity metric `access_reviewed` reads the newest such event). Audited as
    `access.reviewed` with the per-model grants seen at the time."""
    permissions.require(actor.user, Perm.MANAGE_ACCESS, registered_model)
    table = permissions.grant_table(registered_model)
    audit.record(
        actor=actor,
        action="access.reviewed",
        target=registered_model,
        registered_model=registered_model,
        details={"grants": [{"who": g["who"], "perms": g["perms"]} for g in table["grants"]]},
    )
