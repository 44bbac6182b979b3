"""Celery tasks of the governance app. They take ids, never model instances."""

from __future__ import annotations

import smtplib

from celery import Task, shared_task
from django.conf import settings
from django.core.mail import send_mail

from governance import checkpoints, webhooks


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=8,
)
def send_email(self: Task, subject: str, body: str, recipients: list[str]) -> int:
    from django.conf import settings

    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)


# A second guard behind the attempt's own deadline (WEBHOOK_TIMEOUT, connect to last byte):
# the name lookup before it has none. attempt() records the limit as a transient failure.
@shared_task(
    bind=True, acks_late=True, max_retries=None, soft_time_limit=settings.WEBHOOK_TIMEOUT + 60
)
def deliver_webhook(self: Task, delivery_id: int) -> object:
    """One attempt; a transient failure schedules the next one after a backoff. The delivery
    row counts attempts and decides when to give up (WEBHOOK_MAX_ATTEMPTS)."""
    if webhooks.attempt(delivery_id):
        # throw=False: the next attempt is queued and this one ends normally; in eager mode
        # Celery runs the returned retry in place.
        return self.retry(countdown=webhooks.backoff(self.request.retries), throw=False)
    return None


@shared_task(name="governance.take_audit_checkpoint", acks_late=True)
def take_audit_checkpoint() -> dict[str, object]:
    """Run by celery beat every AUDIT_CHECKPOINT_INTERVAL seconds: sign the audit chain head
    and append it to AUDIT_ANCHOR. Fails (and Celery logs why) when the log no longer extends
    the newest checkpoint: a rewritten log is never sealed again."""
    return checkpoints.checkpoint_take()


@shared_task(name="governance.take_maturity_snapshot", acks_late=True)
def take_maturity_snapshot() -> int:
    """Run daily by celery beat: today's maturity scorecard of the organisation and of each
    team (governance.maturity.snapshots; a second run the same day replaces the day's rows).
    Returns how many rows it wrote."""
    from governance.maturity import snapshots

    return len(snapshots.maturity_snapshot_take())
