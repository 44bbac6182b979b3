"""Small helpers the registry services share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Manager, Model

from core import permissions
from core.actors import Actor
from core.compiled import CompiledQuery
from core.errors import Conflict, Forbidden, ValidationFailed
from registry import validation
from registry.models import ModelVersion, ModelVersionTag, RegisteredModelTag


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
T = TypeVar("T")


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


# Every write to a version starts here: compiled once (core.compiled). Not joined to its
# model: after waiting for the lock PostgreSQL re-reads the locked row but not a joined one,
# so the model (its risk tier, hence its policy) is read afterwards, when first used.
_VERSION_LOCKED: CompiledQuery[ModelVersion] = CompiledQuery(
    lambda shape, pk: ModelVersion.objects.select_for_update().filter(pk=pk)
)


def version_locked(version: ModelVersion) -> ModelVersion:
    """The version's row, read again under a row lock (inside a transaction, or
    TransactionManagementError); its model is read when first used, after the lock."""
    locked = _VERSION_LOCKED.first(pk=version.pk)
    if locked is None:
        raise ModelVersion.DoesNotExist(f"Version {version.pk} is gone.")
    return locked


def insert_or_conflict(create: Callable[[], T], message: str, code: str) -> T:
    """Run `create()` in a savepoint; a unique-constraint race becomes a 409, not a 500."""
    try:
        with transaction.atomic():
            return create()
    except IntegrityError:
        raise Conflict(message, code=code) from None


def tag_upsert(
    tags: Manager[RegisteredModelTag] | Manager[ModelVersionTag], *, key: str, value: str
) -> tuple[bool, str | None]:
    """Set `key` to `value` among an object's tags (a related manager), with the per-object
    limit. Returns (changed, previous value). Runs inside the caller's transaction."""
    key = validation.tag_key(key, field="key")
    value = validation.tag_value(value, field="value")
    tag = tags.select_for_update().filter(key=key).first()
    if tag is None:
        insert_or_conflict(
            lambda: tags.create(key=key, value=value),
            f"Tag '{key}' was set by another request at the same time; retry.",
            "tag_conflict",
        )
        if tags.count() > validation.MAX_TAGS:
            raise ValidationFailed(f"At most {validation.MAX_TAGS} tags.", field="key")
        return True, None
    if tag.value == value:
        return False, value
    previous, tag.value = tag.value, value
    tag.save(update_fields=["value"])
    return True, previous


def require_admin(actor: Actor, what: str) -> None:
    """For administrators only (core.permissions.is_administrator: active superusers
    and the admin role): restoring, purging, policies, risk tiers, trusting files."""
    if not permissions.is_administrator(actor.user):
        raise Forbidden(f"Only an administrator may {what}.", code="permission_denied")
