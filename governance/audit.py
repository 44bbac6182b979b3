"""The one function that writes audit events, inside the caller's transaction.

Events form a hash chain (governance/chain.py). Appending takes the chain lock, reads the
head and inserts the next event; the lock is held until the caller's transaction ends, so
concurrent writers append one after another and a rolled-back change leaves no event and no
gap. On SQLite the write transaction itself (BEGIN IMMEDIATE) is the lock; on PostgreSQL it
is a transaction-scoped advisory lock. Services take their row locks before they record, so
the chain lock is always the last lock a transaction takes.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.crypto import salted_hmac

from governance import chain
from governance.actors import Actor
from governance.models import AuditEvent
from registry.models import RegisteredModel

# Any constant: the key of PostgreSQL's advisory lock that serialises appends to the chain.
CHAIN_LOCK_KEY = 0x6D6F64656C676174  # "modelgat"


def _chain_head() -> tuple[int, str]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    head = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    return head if head is not None else (0, chain.GENESIS)


def record(*, actor: Actor, action: str, target: Model | None,
           registered_model: RegisteredModel | None = None,
           details: dict[str, object] | None = None) -> AuditEvent:
    """Append one event. Refuses to run outside a transaction: the event must share the fate
    of the change it records."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change.")
    user = actor.user if actor.user_id is not None else None
    sequence, prev_hash = _chain_head()
    event = AuditEvent(
        sequence=sequence + 1,
        occurred_at=timezone.now(),
        actor=user,
        actor_label=chain.normalise(user.get_username() if user is not None
                                    else f"system:{actor.channel}")[:150],
        channel=actor.channel,
        request_id=chain.normalise(actor.request_id)[:64],
        client_address=chain.normalise_address(actor.client_address),
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=chain.normalise(str(target))[:300] if target is not None else "",
        registered_model_id=registered_model.pk if registered_model is not None else None,
        registered_model_name=registered_model.name if registered_model is not None else "",
        details=chain.normalise(details or {}),
        prev_hash=prev_hash,
    )
    event.hash = chain.event_hash(_fields(event))
    event.save(force_insert=True)
    return event


def _fields(event: AuditEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in chain.FIELDS}


def verify(*, batch: int = 2000) -> chain.Verdict:
    """Check the whole chain in sequence order, streaming from the database."""
    rows = (AuditEvent.objects.order_by("sequence")
            .values(*chain.FIELDS, "hash").iterator(chunk_size=batch))
    return chain.verify(rows)


def _checkpoint_key() -> bytes:
    key = settings.AUDIT_CHECKPOINT_KEY
    if key:
        return key.encode()
    return salted_hmac("modelgate.audit.checkpoint", "key", algorithm="sha256").digest()


def checkpoint() -> dict[str, object]:
    """The chain head, signed: store it outside the database (a ticket, a bucket with object
    lock, an e-mail) so that truncating the tail of the log can be proved later."""
    verdict = verify()
    if not verdict.ok:
        raise ValueError(f"The audit log is already broken: {verdict}")
    created_at = timezone.now().isoformat()
    return {"format": "modelgate-audit-checkpoint-v1", "sequence": verdict.head_sequence,
            "hash": verdict.head_hash, "created_at": created_at,
            "signature": chain.checkpoint_sign(_checkpoint_key(), verdict.head_sequence,
                                               verdict.head_hash, created_at)}


def checkpoint_verify(doc: dict[str, object]) -> tuple[bool, str]:
    """Does the log still verify and still contain the checkpoint's head event unchanged?"""
    try:
        sequence, head, created_at = int(doc["sequence"]), str(doc["hash"]), str(doc["created_at"])
        signature = str(doc["signature"])
    except (KeyError, TypeError, ValueError):
        return False, "The checkpoint file is not a Modelgate audit checkpoint."
    expected = chain.checkpoint_sign(_checkpoint_key(), sequence, head, created_at)
    if not hmac.compare_digest(expected, signature):
        return False, "The checkpoint's signature is wrong (another key, or the file was edited)."
    verdict = verify()
    if not verdict.ok:
        return False, str(verdict)
    if verdict.head_sequence < sequence:
        return False, (f"The log ends at event {verdict.head_sequence} but the checkpoint of "
                       f"{created_at} saw {sequence}: events were removed from its end.")
    stored = AuditEvent.objects.filter(sequence=sequence).values_list("hash", flat=True).first()
    if stored != head:
        return False, f"Event {sequence} is not the event the checkpoint saw."
    return True, (f"{verdict} — extends the checkpoint of {created_at} (event {sequence}) "
                  f"by {verdict.head_sequence - sequence} events")


# Refusals and failed logins can be provoked at will; record the first of a burst from one
# address and count the rest into the next event, so a scan cannot flood the chain.
REFUSAL_WINDOW = 60


def record_refusal(*, actor: Actor, action: str, details: dict[str, object],
                   registered_model: RegisteredModel | None = None) -> AuditEvent | None:
    """Record a refused access or a failed login, in a transaction of its own (the refused
    request's changes, if any, were rolled back). At most one event per address, user, action
    and model per REFUSAL_WINDOW seconds; the suppressed ones are counted in the next event."""
    model_id = registered_model.pk if registered_model is not None else ""
    key = f"modelgate:refusal:{action}:{actor.client_address}:{actor.user_id}:{model_id}"
    if not cache.add(key, 1, REFUSAL_WINDOW):
        try:
            cache.incr(f"{key}:suppressed")
        except ValueError:  # first suppressed one
            cache.set(f"{key}:suppressed", 1, None)
        return None
    suppressed = cache.get(f"{key}:suppressed") or 0
    if suppressed:
        cache.delete(f"{key}:suppressed")
    with transaction.atomic():
        return record(actor=actor, action=action, target=None,
                      registered_model=registered_model,
                      details={**details, "suppressed_before": suppressed} if suppressed
                      else details)
