"""Users' accounts and the permissions of groups: created, changed and deleted by
administrators only, each change audited in its own transaction, whichever edge makes it (the
admin, `manage.py shell`, a command).

Audit actions: `user.created`, `user.access_changed` (one event for the flags, another for
roles and direct permissions), `user.deleted`, `group.created`, `group.renamed`,
`group.permissions_changed`, `group.deleted`. A role group keeps its name: code (ROLES) and
identity-provider mappings find roles by name, so a renamed role would turn a mapping or a
grant into one for a group that is no role; and no other group may take a role's name.
Making someone staff or superuser, or taking it away, is a superuser's to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import ValidationError
from django.db import transaction

from core import audit
from core.actors import Actor
from core.errors import Forbidden, NotFound, ValidationFailed
from core.permissions import invalidate, is_superuser
from governance.roles import ROLES
from registry.services.common import insert_or_conflict, require_admin

USER_FLAGS = ("is_active", "is_staff", "is_superuser")
# Flags only a superuser sets or clears: they open the admin site and every permission.
SUPERUSER_FLAGS = ("is_staff", "is_superuser")
USER_FIELDS = (
    "username",
    "first_name",
    "last_name",
    "email",
    *USER_FLAGS,
    "last_login",
    "date_joined",
)
USER_RELATIONS = ("groups", "user_permissions")


def _names(values: Iterable[Any]) -> list[str]:
    """Group names or permission codenames, sorted, for before/after comparisons."""
    return sorted(str(getattr(v, "codename", None) or getattr(v, "name", v)) for v in values)


def _added_removed(before: list[str], after: list[str]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
    }


def _check_fields(changes: dict[str, Any]) -> None:
    unknown = sorted(set(changes) - {*USER_FIELDS, *USER_RELATIONS})
    if unknown:
        raise ValidationFailed(
            f"Not a field of an account: {', '.join(unknown)}.", field=unknown[0]
        )


def account_change_refusal(actor: Actor, user: User) -> Forbidden | None:
    """Why `actor` may not change the account `user` at all (fields, roles, password), or None.
    A staff or superuser account is a superuser's to change: otherwise an administrator could
    deactivate a superuser, or take the account over (its e-mail, then its password)."""
    if (user.is_staff or user.is_superuser) and not is_superuser(actor.user):
        return Forbidden(
            f"Only a superuser may change the account '{user.get_username()}' (it is staff or "
            "superuser).",
            code="superuser_required",
        )
    return None


def _require_superuser_for_flags(actor: Actor, flags: Iterable[str]) -> None:
    touched = sorted(set(flags) & set(SUPERUSER_FLAGS))
    if touched and not is_superuser(actor.user):
        raise Forbidden(
            f"Only a superuser may change {' or '.join(touched)}.", code="superuser_required"
        )


def _username_taken() -> str:
    return "A user with that username already exists."


# --- Users --------------------------------------------------------------------------------------


@transaction.atomic
def user_create(*, actor: Actor, username: str, password: str | None = None, **fields: Any) -> User:
    """A new account; without a password it cannot sign in with one (single sign-on, or a
    password set later). Roles and permissions are given with `user_update`."""
    require_admin(actor, "create accounts")
    _check_fields(fields)
    if set(fields) & set(USER_RELATIONS):
        raise ValidationFailed(
            "Give roles and permissions after creating the account.", field="groups"
        )
    _require_superuser_for_flags(actor, [f for f in SUPERUSER_FLAGS if fields.get(f)])
    username = User.normalize_username(username or "")
    if not username:
        raise ValidationFailed("A username is required.", field="username")
    user = User(username=username, **fields)
    if password is None:
        user.set_unusable_password()
    else:
        try:
            password_validation.validate_password(password, user)
        except ValidationError as exc:
            raise ValidationFailed(" ".join(exc.messages), field="password") from None
        user.set_password(password)
    insert_or_conflict(user.save, _username_taken(), code="username_taken")
    audit.record(actor=actor, action="user.created", target=user, details={"user": user.username})
    return user


@transaction.atomic
def user_update(*, actor: Actor, user: User, **changes: Any) -> User:
    """Change an account's fields, flags (`is_active`, `is_staff`, `is_superuser`), roles
    (`groups`) and direct permissions (`user_permissions`), given by name. The flags are
    audited as one `user.access_changed` event, the roles and permissions as another; other
    fields are not audited. Returns the account as stored."""
    require_admin(actor, "change accounts")
    _check_fields(changes)
    before = (
        User.objects.select_for_update().filter(pk=user.pk).values(*USER_FLAGS, "username").first()
    )
    if before is None:
        raise NotFound("That user no longer exists.", code="user_not_found")
    refusal = account_change_refusal(actor, User(**before))  # as stored, not as submitted
    if refusal is not None:
        raise refusal
    fields = {k: v for k, v in changes.items() if k in USER_FIELDS}
    flags = {
        f: {"from": before[f], "to": fields[f]}
        for f in USER_FLAGS
        if f in fields and before[f] != fields[f]
    }
    _require_superuser_for_flags(actor, flags)
    for name, value in fields.items():
        setattr(user, name, value)
    if fields:
        insert_or_conflict(
            lambda: user.save(update_fields=list(fields)), _username_taken(), code="username_taken"
        )
    if flags:
        audit.record(
            actor=actor,
            action="user.access_changed",
            target=user,
            details={"user": user.username, "changes": flags},
        )
    details: dict[str, Any] = {}
    for relation, key in (("groups", "roles"), ("user_permissions", "permissions")):
        if relation not in changes:
            continue
        manager = getattr(user, relation)
        was = _names(manager.all())
        manager.set(changes[relation])
        now = _names(manager.all())
        if now != was:
            details[key] = _added_removed(was, now)
    if details:
        audit.record(
            actor=actor,
            action="user.access_changed",
            target=user,
            details={"user": user.username, **details},
        )
    invalidate(user)
    return user


@transaction.atomic
def user_delete(*, actor: Actor, user: User) -> None:
    """Delete an account (deactivating it keeps its history readable; prefer that)."""
    require_admin(actor, "delete accounts")
    stored = User.objects.select_for_update().filter(pk=user.pk).first()
    if stored is None:
        raise NotFound("That user no longer exists.", code="user_not_found")
    _require_superuser_for_flags(actor, [f for f in SUPERUSER_FLAGS if getattr(stored, f)])
    audit.record(
        actor=actor, action="user.deleted", target=stored, details={"user": stored.username}
    )
    stored.delete()


# --- Groups -------------------------------------------------------------------------------------


def group_name_validate(name: str) -> str:
    """The rule for a group's new name (forms ask before saving): not a role's name."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("A group needs a name.", field="name")
    if name in ROLES:
        raise ValidationFailed(
            "That is a Modelgate role's name; roles are created by migrate.", field="name"
        )
    return name


def _group_exists() -> str:
    return "A group with that name already exists."


def _permissions_changed(actor: Actor, group: Group, permissions_: Iterable[Permission]) -> None:
    was = _names(group.permissions.all())
    group.permissions.set(permissions_)
    now = _names(group.permissions.all())
    if now != was:
        audit.record(
            actor=actor,
            action="group.permissions_changed",
            target=group,
            details={"group": group.name, **_added_removed(was, now)},
        )


@transaction.atomic
def group_create(*, actor: Actor, name: str, permissions: Iterable[Permission] = ()) -> Group:
    """A group that is no role (roles are created by migrate), with these permissions."""
    require_admin(actor, "create groups")
    name = group_name_validate(name)
    group: Group = insert_or_conflict(
        lambda: Group.objects.create(name=name), _group_exists(), code="group_exists"
    )
    audit.record(actor=actor, action="group.created", target=group, details={"group": name})
    _permissions_changed(actor, group, permissions)
    return group


@transaction.atomic
def group_update(
    *,
    actor: Actor,
    group: Group,
    name: str | None = None,
    permissions: Iterable[Permission] | None = None,
) -> Group:
    """Rename a group (not a role) and/or set its permissions; each audited when it changes."""
    require_admin(actor, "change groups")
    stored = Group.objects.select_for_update().filter(pk=group.pk).first()
    if stored is None:
        raise NotFound("That group no longer exists.", code="group_not_found")
    if name is not None and name != stored.name:
        if stored.name in ROLES:
            raise ValidationFailed(
                f"'{stored.name}' is a Modelgate role; its name cannot change.", field="name"
            )
        before, group.name = stored.name, group_name_validate(name)
        insert_or_conflict(
            lambda: group.save(update_fields=["name"]), _group_exists(), code="group_exists"
        )
        audit.record(
            actor=actor,
            action="group.renamed",
            target=group,
            details={"group": group.name, "from": before, "to": group.name},
        )
    if permissions is not None:
        _permissions_changed(actor, group, permissions)
    return group


@transaction.atomic
def group_delete(*, actor: Actor, group: Group) -> None:
    require_admin(actor, "delete groups")
    stored = Group.objects.select_for_update().filter(pk=group.pk).first()
    if stored is None:
        raise NotFound("That group no longer exists.", code="group_not_found")
    audit.record(actor=actor, action="group.deleted", target=stored, details={"group": stored.name})
    stored.delete()
