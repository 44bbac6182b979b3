"""The one function that writes audit events, inside the caller's transaction."""

from __future__ import annotations

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from governance.actors import Actor
from governance.models import AuditEvent
from registry.models import RegisteredModel


def record(*, actor: Actor, action: str, target: Model | None,
           registered_model: RegisteredModel | None = None,
           details: dict[str, object] | None = None) -> AuditEvent:
    """Append one event. Refuses to run outside a transaction: the event must share the fate
    of the change it records."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change.")
    user = actor.user if actor.user_id is not None else None
    return AuditEvent.objects.create(
        occurred_at=timezone.now(),
        actor=user,
        actor_label=user.get_username() if user is not None else f"system:{actor.channel}",
        channel=actor.channel,
        request_id=actor.request_id,
        client_address=actor.client_address,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:300] if target is not None else "",
        registered_model_id=registered_model.pk if registered_model is not None else None,
        registered_model_name=registered_model.name if registered_model is not None else "",
        details=details or {},
    )
