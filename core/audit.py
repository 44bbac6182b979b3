"""The one function that writes audit events, inside the caller's transaction.

Events form a hash chain (core/chain.py), and a transaction's events are chained when it
commits. `record()` leaves them on the connection; just before COMMIT the database backend
(config.chain_commit) takes the chain lock, reads the head and inserts them in order, one
contiguous run. The lock is held for that instant and the COMMIT only, so concurrent writers
do their work side by side and queue just to append. The chain stays gapless (a rolled-back
transaction or savepoint leaves no event) and its order is the order of commits. On SQLite the
write transaction itself (BEGIN IMMEDIATE) is the lock; on PostgreSQL it is a
transaction-scoped advisory lock, the last lock a transaction takes.

Any statement on the audit table inside the transaction (a query, a join, raw SQL) appends
the waiting events first, so a transaction always sees its own events; that transaction then
holds the lock from there to its commit, as every writer once did. Where no commit will come
to append them (inside a test's wrapping transaction, or on a backend without the hook),
`record()` appends at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from core import chain, permissions
from core.actors import Actor, acting_user
from core.compiled import CompiledQuery
from core.models import AuditEvent

# Any constant: the key of PostgreSQL's advisory lock that serialises appends to the chain.
CHAIN_LOCK_KEY = 0x6D6F64656C676174  # "modelgat"


class ModelRef(Protocol):
    """The registered model an event concerns: its id and name are kept (not a foreign key),
    so purging the model keeps its history."""

    @property
    def pk(self) -> Any: ...

    @property
    def name(self) -> str: ...


# Every append reads the head: compiled once per process (core.compiled).
_HEAD: CompiledQuery[AuditEvent] = CompiledQuery(
    lambda shape: AuditEvent._base_manager.only("sequence", "hash").order_by("-sequence")[:1]
)


def _chain_head() -> tuple[int, str]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
    head = _HEAD.first()
    return (head.sequence, head.hash) if head is not None else (0, chain.GENESIS)


def record(
    *,
    actor: Actor,
    action: str,
    target: Model | None,
    registered_model: ModelRef | None = None,
    details: dict[str, object] | None = None,
) -> AuditEvent:
    """Record one event, to be chained when the transaction commits. Refuses to run outside
    a transaction: the event must share the fate of the change it records. The event has no
    sequence, hash or id until it is appended."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must run inside the transaction of the change.")
    user = acting_user(actor)
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor=user,
        actor_label=chain.normalise(
            user.get_username() if user is not None else f"system:{actor.channel}"
        )[:150],
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
    )
    defers = getattr(connection, "audit_defers", None)
    if defers is not None and defers():
        connection.audit_wait(event)  # type: ignore[attr-defined]
    else:
        append([event])
    return event


def append(events: list[AuditEvent]) -> None:
    """Chain `events`, in order, after the head and insert them, under the chain lock (held
    to the end of the transaction). The backend calls this just before COMMIT."""
    sequence, prev_hash = _chain_head()
    for event in events:
        sequence += 1
        event.sequence, event.prev_hash = sequence, prev_hash
        event.hash = prev_hash = chain.event_hash(_fields(event))
    AuditEvent._base_manager.bulk_create(events)


def _fields(event: AuditEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in chain.FIELDS}


def events(*, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every event's chained fields and hash, in sequence order, streamed from the database."""
    rows: Iterator[dict[str, Any]] = (
        AuditEvent.objects.order_by("sequence")
        .values(*chain.FIELDS, "hash")
        .iterator(chunk_size=batch)
    )
    return rows


def verify(*, batch: int = 2000) -> chain.Verdict:
    """Check the whole chain in sequence order, streaming from the database. Checkpoints
    outside the database (governance/checkpoints.py) add what the chain alone cannot prove."""
    return chain.verify(events(batch=batch))


# Refusals and failed logins can be provoked at will; record the first of a burst from one
# address and count the rest into the next event, so a scan cannot flood the chain.
REFUSAL_WINDOW = 60


def record_refusal(
    *,
    actor: Actor,
    action: str,
    details: dict[str, object],
    registered_model: ModelRef | None = None,
) -> AuditEvent | None:
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
        return record(
            actor=actor,
            action=action,
            target=None,
            registered_model=registered_model,
            details={**details, "suppressed_before": suppressed} if suppressed else details,
        )


# Failed sign-ins and lockouts are recorded one by one while login throttling (django-axes)
# bounds them per user name and address; past this many in REFUSAL_WINDOW seconds from one
# address (someone trying many names), the rest are throttled like refusals.
LOGIN_EVENTS_RECORDED_PER_ADDRESS = 20


def record_login_event(
    *, actor: Actor, action: str, details: dict[str, object]
) -> AuditEvent | None:
    """Record a failed sign-in or a lockout in a transaction of its own (throttled past
    LOGIN_EVENTS_RECORDED_PER_ADDRESS)."""
    key = f"modelgate:login-events:{actor.client_address}"
    cache.add(key, 0, REFUSAL_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, count := 1, REFUSAL_WINDOW)
    if count > LOGIN_EVENTS_RECORDED_PER_ADDRESS:
        return record_refusal(actor=actor, action=action, details=details)
    with transaction.atomic():
        return record(actor=actor, action=action, target=None, details=details)


def events_visible(user: permissions.AnyUser) -> QuerySet[AuditEvent]:
    """Everything for administrators and auditors (core.view_auditevent); otherwise the events
    of the models the user may view."""
    qs = AuditEvent.objects.all()
    if permissions.may_read_whole_audit_log(user):
        return qs
    return qs.filter(registered_model_id__in=permissions.visible_models(user).values("pk"))
