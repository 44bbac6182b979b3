"""Outgoing webhooks: a delivery row per event and endpoint, written in the change's
transaction and sent after the commit by a Celery task that retries transient failures with
exponential backoff. Every attempt's status is kept with the first RESPONSE_KEEP bytes of the
response (enough to debug a receiver, too little to read another server's pages through it)
or, when there was no HTTP answer, an error of at most ERROR_KEEP printable characters (a
target that does not speak HTTP gets its first line into http.client's message); the admin can
replay a delivery. WEBHOOK_TIMEOUT bounds a whole attempt, from connecting to the last byte
read, not each read: a receiver dripping bytes cannot hold the worker. Targets must pass
governance/webhook_targets.py when saved and again before each attempt.

Receivers check ``X-Modelgate-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body under
the webhook's secret, and may drop repeats by ``X-Modelgate-Delivery``.

Adding, changing and deleting a webhook and replaying a delivery are for administrators and go
through the services below, which audit them. The secret never leaves this module except in
signatures: events record that it changed, never its value, and addresses are recorded without
credentials or query strings (where receivers such as chat services keep their tokens).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import json
import random
import socket
import ssl
import time
import unicodedata
import uuid
from datetime import timedelta
from typing import Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Field, Q
from django.utils import timezone

from core import audit
from core.actors import Actor
from core.errors import NotFound, ValidationFailed
from core.tasks import enqueue_on_commit
from governance import webhook_targets
from governance.models import PromotionRequest, Webhook, WebhookDelivery
from registry.models import RegisteredModel
from registry.services.common import apply_changes, require_admin

RESPONSE_KEEP = 1024  # bytes of a response body kept per attempt
ERROR_KEEP = 200  # characters of an attempt's error kept (and shown)
# What governance.notifications emits; a webhook lists some of them, or none for all.
EVENTS = (
    "promotion.requested",
    "promotion.reviewed",
    "promotion.approved",
    "promotion.rejected",
    "promotion.applied",
)
EDITABLE = ("name", "url", "secret", "registered_model", "events", "active")
_check_url = URLValidator(schemes=["http", "https"])
DELIVER = "governance.tasks.deliver_webhook"  # the Celery task of one attempt (tasks.py)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(
    event: str, promotion_request: PromotionRequest, occurred_at: Any = None
) -> dict[str, Any]:
    """What a delivery carries. `occurred_at` orders events for receivers: a retried
    `promotion.approved` can arrive after the `promotion.applied` of the same commit."""
    version = promotion_request.version
    approvals = promotion_request.reviews.filter(decision="approve").select_related("reviewer")
    return {
        "event": event,
        "occurred_at": (occurred_at or timezone.now()).isoformat(),
        "model": promotion_request.registered_model.name,
        "version": version.version,
        "target": {
            "stage": promotion_request.target_stage or None,
            "alias": promotion_request.target_alias or None,
        },
        "request": {
            "id": promotion_request.pk,
            "kind": promotion_request.kind,
            "status": promotion_request.status,
            "requested_by": promotion_request.requested_by.username
            if promotion_request.requested_by
            else None,
            "approved_by": [r.reviewer.username for r in approvals if r.reviewer],
            "replaced_version": promotion_request.replaced_version.version
            if promotion_request.replaced_version
            else None,
        },
        "artifacts": [
            {"filename": f, "sha256": s, "size": n}
            for f, s, n in version.artifacts.values_list("filename", "sha256", "size")
        ],
        "source": version.source,
    }


def _enqueue(delivery: WebhookDelivery) -> None:
    enqueue_on_commit(DELIVER, delivery.pk)


def emit(event: str, promotion_request: PromotionRequest) -> list[WebhookDelivery]:
    """Queue `event` for every active webhook of the model or global one that wants it."""
    hooks = Webhook.objects.filter(
        Q(registered_model__isnull=True) | Q(registered_model=promotion_request.registered_model),
        active=True,
    )
    wanted = [h for h in hooks if not h.events or event in h.events]
    if not wanted:
        return []
    now = timezone.now()
    body = payload(event, promotion_request, now)
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            webhook=h, event=event, delivery_id=uuid.uuid4(), payload=body, created_at=now
        )
        for h in wanted
    )
    for delivery in deliveries:
        _enqueue(delivery)
    return deliveries


def _max_length(field: Field[Any, Any]) -> int:
    """The column's length (a CharField's, which always declares one)."""
    length = field.max_length
    assert length is not None
    return length


def webhook_validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check any of the EDITABLE fields; raise ValidationFailed naming the field. Returns the
    values normalised (name stripped, events without repeats)."""
    if "name" in values:
        name = values["name"].strip() if isinstance(values["name"], str) else ""
        if not name or len(name) > _max_length(Webhook._meta.get_field("name")):
            raise ValidationFailed("A name of 1 to 100 characters.", field="name")
        values["name"] = name
    if "url" in values:
        url = values["url"]
        try:
            _check_url(url)
        except DjangoValidationError:
            raise ValidationFailed("An http:// or https:// address.", field="url") from None
        if len(url) > _max_length(Webhook._meta.get_field("url")):
            raise ValidationFailed("At most 1000 characters.", field="url")
        try:
            webhook_targets.check(url, resolve_allow_listed=False)
        except webhook_targets.TargetRefused as exc:
            raise ValidationFailed(str(exc), field="url", code="webhook_target_refused") from None
    if "secret" in values:
        secret = values["secret"]
        if not isinstance(secret, str) or not secret.strip():
            raise ValidationFailed("A secret is required to sign the deliveries.", field="secret")
        if len(secret) > _max_length(Webhook._meta.get_field("secret")):
            raise ValidationFailed("At most 200 characters.", field="secret")
    if "events" in values:
        events = values["events"]
        unknown = (
            [e for e in events if e not in EVENTS] if isinstance(events, list) else ["(not a list)"]
        )
        if unknown:
            raise ValidationFailed(
                f"Unknown events: {', '.join(map(str, unknown))}. Known: {', '.join(EVENTS)}.",
                field="events",
            )
        values["events"] = list(dict.fromkeys(events))
    if "active" in values and not isinstance(values["active"], bool):
        raise ValidationFailed("Must be true or false.", field="active")
    if "registered_model" in values and not (
        values["registered_model"] is None
        or isinstance(values["registered_model"], RegisteredModel)
    ):
        raise ValidationFailed("Not a registered model.", field="registered_model")
    return values


def _shown_url(url: str) -> str:
    """The address without user, password, query or fragment: fit for the audit log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))


def _described(webhook: Webhook) -> dict[str, Any]:
    return {
        "webhook": webhook.name,
        "url": _shown_url(webhook.url),
        "registered_model": webhook.registered_model.name if webhook.registered_model else None,
        "events": list(webhook.events),
        "active": webhook.active,
    }


def _locked(webhook: Webhook) -> Webhook:
    # No select_related: PostgreSQL locks no row on the nullable side of an outer join.
    found = Webhook.objects.select_for_update().filter(pk=webhook.pk).first()
    if found is None:
        raise NotFound(f"Webhook '{webhook}' no longer exists.", code="webhook_not_found")
    return found


@transaction.atomic
def webhook_create(
    *,
    actor: Actor,
    name: str,
    url: str,
    secret: str,
    registered_model: RegisteredModel | None = None,
    events: list[str] | None = None,
    active: bool = True,
) -> Webhook:
    """Add an endpoint (global, or for one model). Administrators only; audited without the
    secret."""
    require_admin(actor, "change webhooks")
    values = webhook_validate(
        {
            "name": name,
            "url": url,
            "secret": secret,
            "registered_model": registered_model,
            "events": events or [],
            "active": active,
        }
    )
    webhook = Webhook.objects.create(**values)
    audit.record(
        actor=actor,
        action="webhook.created",
        target=webhook,
        registered_model=registered_model,
        details=_described(webhook),
    )
    return webhook


@transaction.atomic
def webhook_change(*, actor: Actor, webhook: Webhook, **changes: Any) -> Webhook:
    """Edit any of EDITABLE; a changed secret is recorded as changed, never shown.
    Administrators only; nothing changed, nothing written."""
    require_admin(actor, "change webhooks")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"Unknown webhook fields: {', '.join(sorted(unknown))}.")
    webhook = _locked(webhook)
    if changes.get("url") == webhook.url:
        del changes["url"]  # unchanged: not looked up again (each delivery checks it anyway)
    webhook_validate(changes)
    secret = changes.pop("secret", None)
    before_model = webhook.registered_model
    diff = apply_changes(webhook, changes)
    if "url" in diff:
        diff["url"] = {k: _shown_url(v) for k, v in diff["url"].items()}
    fields = list(diff)
    if secret is not None and secret != webhook.secret:
        webhook.secret = secret
        fields.append("secret")
    if not fields:
        return webhook
    webhook.save(update_fields=fields)
    details: dict[str, Any] = {"webhook": webhook.name, "changes": diff}
    if "secret" in fields:
        details["secret_changed"] = True
    audit.record(
        actor=actor,
        action="webhook.changed",
        target=webhook,
        registered_model=webhook.registered_model or before_model,
        details=details,
    )
    return webhook


@transaction.atomic
def webhook_delete(*, actor: Actor, webhook: Webhook) -> None:
    """Delete an endpoint with its delivery log (the event keeps what it was and how many
    deliveries went with it). Administrators only."""
    require_admin(actor, "change webhooks")
    webhook = _locked(webhook)
    audit.record(
        actor=actor,
        action="webhook.deleted",
        target=webhook,
        registered_model=webhook.registered_model,
        details={**_described(webhook), "deliveries_deleted": webhook.deliveries.count()},
    )
    webhook.delete()


@transaction.atomic
def webhook_delivery_replay(*, actor: Actor, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue a new delivery (a new delivery id) with the same event and payload, sent after
    the commit. Administrators only; audited."""
    require_admin(actor, "replay webhook deliveries")
    webhook = delivery.webhook
    copy = WebhookDelivery.objects.create(
        webhook=webhook,
        event=delivery.event,
        delivery_id=uuid.uuid4(),
        payload=delivery.payload,
        created_at=timezone.now(),
        replay_of=delivery,
    )
    audit.record(
        actor=actor,
        action="webhook.delivery_replayed",
        target=delivery,
        registered_model=webhook.registered_model,
        details={
            "webhook": webhook.name,
            "event": delivery.event,
            "delivery": str(delivery.delivery_id),
            "replay": str(copy.delivery_id),
        },
    )
    _enqueue(copy)
    return copy


class _Deadline:
    """WEBHOOK_TIMEOUT as the budget of a whole attempt: each connect, send and read gets only
    what is left of it as its socket timeout."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.end = seconds, time.monotonic() + seconds

    def expired(self) -> TimeoutError:
        return TimeoutError(f"timed out after {self.seconds:g} s (WEBHOOK_TIMEOUT)")

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left


class _DeadlineReader(io.RawIOBase):
    """The socket's reads for http.client's response, each limited to the time left. (A
    read with a plain timeout ends at the first byte, and starts again for the next one.)"""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        # The socket's own reader keeps it open while the response reads, after the
        # connection has let go of it (Connection: close).
        self.sock, self.raw, self.deadline = sock, sock.makefile("rb", buffering=0), deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self.sock.settimeout(self.deadline.remaining())
        return self.raw.readinto(buffer)

    def close(self) -> None:
        self.raw.close()
        super().close()


class _ReadsByDeadline:
    """What HTTPResponse is given in place of the socket: it only calls makefile("rb")."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self.sock, self.deadline = sock, deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self.sock, self.deadline))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to one of the addresses the target check passed, never to a second lookup of
    the host name (which could answer differently). The Host header, and for HTTPS the server
    name and certificate check, still use the name. Connecting, the TLS handshake, sending and
    reading the answer share one deadline."""

    addresses: tuple[str, ...] = ()
    deadline: _Deadline

    def connect(self) -> None:
        error: OSError | None = None
        for address in self.addresses:
            try:
                self.sock = socket.create_connection(
                    (address, self.port), self.deadline.remaining()
                )
                # The TLS handshake that may follow takes this as its overall limit.
                self.sock.settimeout(self.deadline.remaining())
                return
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    def send(self, data: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(self.deadline.remaining())
        super().send(data)

    # typeshed declares response_class a class; HTTPConnection only calls it.
    def response_class(  # type: ignore[override]
        self, sock: socket.socket, *args: Any, **kwargs: Any
    ) -> http.client.HTTPResponse:
        # HTTPConnection calls self.response_class(self.sock, ...): here a method, so the
        # response reads through the deadline. HTTPResponse only calls makefile("rb") on
        # what it is given in place of the socket.
        reader = cast(socket.socket, _ReadsByDeadline(sock, self.deadline))
        return http.client.HTTPResponse(reader, *args, **kwargs)


class _PinnedHTTPSConnection(http.client.HTTPSConnection, _PinnedHTTPConnection):
    # HTTPSConnection.connect() wraps what the next class in line, _PinnedHTTPConnection,
    # connected.
    pass


def _post(
    target: webhook_targets.Target, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    """POST once to the checked addresses; redirects are answers, never followed. Raises
    TimeoutError once WEBHOOK_TIMEOUT seconds have passed without the status line, headers
    and first RESPONSE_KEEP bytes of the body."""
    deadline = _Deadline(settings.WEBHOOK_TIMEOUT)
    connection: _PinnedHTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(
            target.host, target.port, timeout=deadline.seconds, context=ssl.create_default_context()
        )
    else:
        connection = _PinnedHTTPConnection(target.host, target.port, timeout=deadline.seconds)
    connection.addresses, connection.deadline = target.addresses, deadline
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(RESPONSE_KEEP).decode(errors="replace")
        return response.status, text.replace("\x00", "\ufffd")  # PostgreSQL refuses NUL
    except TimeoutError:  # a socket timeout is the deadline (each got only what was left)
        raise deadline.expired() from None
    finally:
        connection.close()


def brief_error(text: str) -> str:
    """`text` fit to keep and show: control and format characters (NUL, escapes, direction
    overrides) and runs of white space become one space, at most ERROR_KEEP characters."""
    cut = len(text) > ERROR_KEEP * 2  # enough to fill ERROR_KEEP after collapsing most
    text = " ".join(
        "".join(
            " " if unicodedata.category(c)[0] in "CZ" else c for c in text[: ERROR_KEEP * 2]
        ).split()
    )
    return text[: ERROR_KEEP - 1] + "…" if cut or len(text) > ERROR_KEEP else text


def backoff(attempts: int) -> float:
    """Seconds before the next attempt: exponential with full jitter, capped."""
    ceiling = min(settings.WEBHOOK_BACKOFF_MAX, settings.WEBHOOK_BACKOFF_BASE * 2**attempts)
    return random.uniform(ceiling / 2, ceiling)


def attempt(delivery_id: int) -> bool:
    """POST once and record the outcome. True if another attempt should follow."""
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return False
    body = json.dumps(
        {
            **delivery.payload,
            "delivery": str(delivery.delivery_id),
            "sent_at": timezone.now().isoformat(),
        },
        sort_keys=True,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Modelgate-Webhook/1",
        "X-Modelgate-Event": delivery.event,
        "X-Modelgate-Delivery": str(delivery.delivery_id),
        "X-Modelgate-Signature": sign(delivery.webhook.secret, body),
    }
    status, text, error, refused = None, "", "", False
    try:
        # Checked again now: the address was fine when saved, but DNS may have changed since.
        target = webhook_targets.check(delivery.webhook.url)
        parts = urlsplit(delivery.webhook.url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.username is not None:  # https://user:password@host/ means Basic auth
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
        status, text = _post(target, path, body, headers)
    except webhook_targets.TargetUnresolved as exc:  # perhaps the resolver is down: retried
        error = f"Not sent: {exc}"
    except webhook_targets.TargetRefused as exc:
        error, refused = f"Not sent: {exc}", True
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset, timeout
        error = f"{type(exc).__name__}: {exc}"
    except SoftTimeLimitExceeded:  # the task's own limit (a lookup that hung): retried
        error = "The delivery task ran out of time."
    error = brief_error(error)  # the peer's bytes may be in it (BadStatusLine)
    delivery.attempts += 1
    delivery.last_attempt_at = timezone.now()
    delivery.response_status, delivery.response_body, delivery.error = status, text, error
    transient = not refused and (status is None or status >= 500 or status == 429)
    if status is not None and 200 <= status < 300:
        delivery.status, delivery.delivered_at = WebhookDelivery.Status.SUCCEEDED, timezone.now()
    elif not transient or delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        delivery.status = WebhookDelivery.Status.FAILED
    delivery.save()
    return delivery.status == WebhookDelivery.Status.PENDING


def deliveries_sweep() -> int:
    """Queue again deliveries never attempted SWEEP_AFTER seconds after they were created (the
    broker was down or lost the message). Receivers deduplicate by delivery id, so a late
    original message arriving as well does no harm."""
    stale = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING,
            attempts=0,
            created_at__lt=timezone.now() - timedelta(seconds=settings.SWEEP_AFTER),
        )
    )
    for delivery in stale:  # outside a transaction: sent now, a broker error logged
        _enqueue(delivery)
    return len(stale)


def swept(sender: object, **_: object) -> dict[str, int]:
    """The registry's periodic sweep (registry.signals.sweeping) covers deliveries too."""
    return {"deliveries": deliveries_sweep()}
