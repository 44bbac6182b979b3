"""Outgoing webhooks: a delivery row per event and endpoint, written in the change's
transaction and sent after the commit by a Celery task that retries transient failures with
exponential backoff. Every attempt's response is kept; the admin can replay a delivery.

Receivers check ``X-Modelgate-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body under
the webhook's secret, and may drop repeats by ``X-Modelgate-Delivery``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.celery import enqueue_on_commit
from governance.models import PromotionRequest, Webhook, WebhookDelivery

RESPONSE_KEEP = 2000


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(event: str, request: PromotionRequest) -> dict[str, Any]:
    version = request.version
    approvals = request.reviews.filter(decision="approve").select_related("reviewer")
    return {
        "event": event,
        "model": request.registered_model.name,
        "version": version.version,
        "target": {"stage": request.target_stage or None,
                   "alias": request.target_alias or None},
        "request": {"id": request.pk, "kind": request.kind, "status": request.status,
                    "requested_by": request.requested_by.username if request.requested_by
                    else None,
                    "approved_by": [r.reviewer.username for r in approvals if r.reviewer],
                    "replaced_version": request.replaced_version.version
                    if request.replaced_version else None},
        "artifacts": [{"filename": f, "sha256": s, "size": n} for f, s, n in
                      version.artifacts.values_list("filename", "sha256", "size")],
        "source": version.source,
    }


def _enqueue(delivery: WebhookDelivery) -> None:
    from governance.tasks import deliver_webhook

    enqueue_on_commit(deliver_webhook, delivery.pk)


def emit(event: str, request: PromotionRequest) -> list[WebhookDelivery]:
    """Queue `event` for every active webhook of the model or global one that wants it."""
    hooks = Webhook.objects.filter(Q(registered_model__isnull=True)
                                   | Q(registered_model=request.registered_model), active=True)
    wanted = [h for h in hooks if not h.events or event in h.events]
    if not wanted:
        return []
    body = payload(event, request)
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(webhook=h, event=event, delivery_id=uuid.uuid4(), payload=body,
                        created_at=now) for h in wanted)
    for delivery in deliveries:
        _enqueue(delivery)
    return deliveries


@transaction.atomic
def replay(delivery: WebhookDelivery) -> WebhookDelivery:
    copy = WebhookDelivery.objects.create(webhook=delivery.webhook, event=delivery.event,
                                          delivery_id=uuid.uuid4(), payload=delivery.payload,
                                          created_at=timezone.now(), replay_of=delivery)
    _enqueue(copy)
    return copy


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is reported as the response it is, never followed


_opener = urllib.request.build_opener(_NoRedirect)


def backoff(attempts: int) -> float:
    """Seconds before the next attempt: exponential with full jitter, capped."""
    ceiling = min(settings.WEBHOOK_BACKOFF_MAX, settings.WEBHOOK_BACKOFF_BASE * 2 ** attempts)
    return random.uniform(ceiling / 2, ceiling)


def attempt(delivery_id: int) -> bool:
    """POST once and record the outcome. True if another attempt should follow."""
    delivery = (WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id)
                .first())
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return False
    body = json.dumps({**delivery.payload, "delivery": str(delivery.delivery_id),
                       "sent_at": timezone.now().isoformat()}, sort_keys=True).encode()
    http_request = urllib.request.Request(delivery.webhook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "Modelgate-Webhook/1",
        "X-Modelgate-Event": delivery.event,
        "X-Modelgate-Delivery": str(delivery.delivery_id),
        "X-Modelgate-Signature": sign(delivery.webhook.secret, body)})
    status, text, error = None, "", ""
    try:
        with _opener.open(http_request, timeout=settings.WEBHOOK_TIMEOUT) as response:
            status, text = response.status, response.read(RESPONSE_KEEP).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read(RESPONSE_KEEP).decode(errors="replace")
    except (OSError, ValueError) as exc:  # refused, reset, timeout, DNS, bad URL
        error = f"{type(exc).__name__}: {exc}"
    delivery.attempts += 1
    delivery.last_attempt_at = timezone.now()
    delivery.response_status, delivery.response_body, delivery.error = status, text, error
    transient = status is None or status >= 500 or status == 429
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
    stale = list(WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, attempts=0,
        created_at__lt=timezone.now() - timedelta(seconds=settings.SWEEP_AFTER)))
    for delivery in stale:  # outside a transaction: sent now, a broker error logged
        _enqueue(delivery)
    return len(stale)
