"""Small helpers the registry services share."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Model

from governance.actors import Actor
from registry.errors import Conflict, Forbidden


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def apply_changes(obj: Model, changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Set the given fields on `obj`; return {field: {"from": old, "to": new}} for the audit
    record, leaving out values that did not change and UNSET ones."""
    diff: dict[str, dict[str, Any]] = {}
    for field, value in changes.items():
        if value is UNSET:
            continue
        old = getattr(obj, field)
        if old != value:
            setattr(obj, field, value)
            diff[field.removesuffix("_id")] = {"from": _plain(old), "to": _plain(value)}
    return diff


def _plain(value: Any) -> Any:
    if isinstance(value, Model):
        return str(value)
    return value


def insert_or_conflict(create: Any, message: str, code: str) -> Any:
    """Run `create()` in a savepoint; a unique-constraint race becomes a 409, not a 500."""
    try:
        with transaction.atomic():
            return create()
    except IntegrityError:
        raise Conflict(message, code=code) from None


def require_admin(actor: Actor, what: str) -> None:
    """Restoring and purging are for administrators (active superusers)."""
    user = actor.user
    if user is None or not user.is_authenticated or not user.is_active or not user.is_superuser:
        raise Forbidden(f"Only an administrator may {what}.", code="permission_denied")
