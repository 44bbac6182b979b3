"""Webhooks: signed bodies a receiver can verify, retries with backoff on transient errors
only, every attempt recorded, replay from the admin; changes and replays by administrators
only, audited without the secret (the admin pages: test_admin_audit.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.models import AuditEvent
from governance import webhooks
from governance.models import Webhook, WebhookDelivery
from tests.factories import UserFactory, make_model, ready_version, superuser
from tests.governance.test_promotions import ask, decide

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def allow_local_receivers(settings):
    """The receivers here listen on loopback, which webhooks may reach only when allow-listed
    (test_webhook_targets.py shows the refusals); the example.com names resolve nowhere in a
    sandbox, and being listed they are not looked up when saved."""
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "ci.example.com", "x.example.com"]


class Receiver:
    """A real HTTP endpoint answering with a script of status codes."""

    def __init__(self, statuses: list[int], answer: bytes | None = None) -> None:
        self.statuses, self.received = list(statuses), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(
                    answer
                    if answer is not None
                    else b'{"ok": true}'
                    if status < 300
                    else b"try later"
                )

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(*statuses: int, body: bytes | None = None) -> Receiver:
        made.append(Receiver(list(statuses), body))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _promote(data_scientist, ml_engineer, reviewer, capture) -> None:
    registered_model = make_model(data_scientist, "churn")
    with capture(execute=True):
        request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    with capture(execute=True):
        decide(reviewer, request)


def test_applied_promotion_is_delivered_signed(
    receiver, data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks
):
    endpoint = receiver()
    Webhook.objects.create(
        name="deployer", url=endpoint.url, secret="s3cret", events=["promotion.applied"]
    )
    _promote(data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks)
    assert len(endpoint.received) == 1
    headers, body = endpoint.received[0]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Modelgate-Signature"], expected)
    payload = json.loads(body)
    assert payload["event"] == "promotion.applied" == headers["X-Modelgate-Event"]
    assert payload["model"] == "churn" and payload["version"] == 1
    assert payload["target"] == {"stage": "production", "alias": None}
    assert payload["request"]["approved_by"] == ["carol"]
    assert payload["artifacts"][0]["sha256"]
    assert payload["delivery"] == headers["X-Modelgate-Delivery"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded" and delivery.attempts == 1
    assert delivery.response_status == 200 and delivery.response_body == '{"ok": true}'


def test_transient_failures_are_retried_then_succeed(
    receiver, data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks
):
    endpoint = receiver(503, 500)
    Webhook.objects.create(name="ci", url=endpoint.url, secret="k", events=["promotion.applied"])
    _promote(data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded" and delivery.attempts == 3
    assert len(endpoint.received) == 3
    ids = {h["X-Modelgate-Delivery"] for h, _ in endpoint.received}
    assert len(ids) == 1  # the receiver can tell a retry from a new event


def test_client_errors_fail_at_once_and_unreachable_hosts_give_up(
    receiver, data_scientist, ml_engineer, reviewer, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    endpoint = receiver(410)
    Webhook.objects.create(name="gone", url=endpoint.url, secret="k", events=["promotion.applied"])
    Webhook.objects.create(
        name="down", url="http://127.0.0.1:9/hook", secret="k", events=["promotion.applied"]
    )
    _promote(data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks)
    gone = WebhookDelivery.objects.get(webhook__name="gone")
    assert gone.status == "failed" and gone.attempts == 1 and gone.response_status == 410
    down = WebhookDelivery.objects.get(webhook__name="down")
    assert down.status == "failed" and down.attempts == 3
    assert down.response_status is None and "Connection" in down.error


def test_only_matching_webhooks_receive_events(data_scientist, ml_engineer, reviewer):
    other = make_model(data_scientist, "other")
    Webhook.objects.create(
        name="other-model", url="http://127.0.0.1:9/", secret="k", registered_model=other
    )
    Webhook.objects.create(name="inactive", url="http://127.0.0.1:9/", secret="k", active=False)
    Webhook.objects.create(
        name="requests-only", url="http://127.0.0.1:9/", secret="k", events=["promotion.requested"]
    )
    registered_model = make_model(data_scientist, "churn")
    decide(reviewer, ask(ml_engineer, ready_version(data_scientist, registered_model)))
    assert list(WebhookDelivery.objects.values_list("webhook__name", "event")) == [
        ("requests-only", "promotion.requested")
    ]


def test_backoff_grows_exponentially_and_is_capped(settings):
    settings.WEBHOOK_BACKOFF_BASE, settings.WEBHOOK_BACKOFF_MAX = 10, 100
    for attempt, ceiling in ((0, 10), (1, 20), (3, 80), (6, 100)):
        for _ in range(20):
            assert ceiling / 2 <= webhooks.backoff(attempt) <= ceiling


def test_admin_replays_a_delivery(
    receiver, client, data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks
):
    endpoint = receiver(404)
    Webhook.objects.create(name="ci", url=endpoint.url, secret="k", events=["promotion.applied"])
    _promote(data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks)
    failed = WebhookDelivery.objects.get()
    assert failed.status == "failed"
    client.force_login(superuser())
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(
            "/admin/governance/webhookdelivery/",
            {"action": "replay", "_selected_action": [failed.pk]},
            follow=True,
        )
    assert r.status_code == 200
    replay = WebhookDelivery.objects.get(replay_of=failed)
    assert replay.status == "succeeded" and replay.payload == failed.payload
    assert replay.delivery_id != failed.delivery_id
    event = AuditEvent.objects.get(action="webhook.delivery_replayed")
    assert event.actor_label == "root" and event.channel == "admin"
    assert event.target_id == str(failed.pk) and event.details == {
        "webhook": "ci",
        "event": "promotion.applied",
        "delivery": str(failed.delivery_id),
        "replay": str(replay.delivery_id),
    }


def test_only_administrators_change_webhooks_or_replay_deliveries(ml_engineer):
    from django.utils import timezone

    from core.actors import Actor
    from core.errors import Forbidden

    staff = UserFactory(username="steward", is_staff=True)  # staff, not an administrator
    hook = webhooks.webhook_create(
        actor=Actor(user=superuser(), channel="cli"),
        name="ci",
        url="https://ci.example.com/hook",
        secret="s3cret",
    )
    delivery = WebhookDelivery.objects.create(
        webhook=hook,
        event="promotion.applied",
        delivery_id=uuid.uuid4(),
        payload={},
        created_at=timezone.now(),
    )
    for user in (staff, ml_engineer, None):
        actor = Actor(user=user, channel="api")
        with pytest.raises(Forbidden):
            webhooks.webhook_create(actor=actor, name="x", url="https://x.example.com/", secret="k")
        with pytest.raises(Forbidden):
            webhooks.webhook_change(actor=actor, webhook=hook, url="https://evil.example.com/")
        with pytest.raises(Forbidden):
            webhooks.webhook_delete(actor=actor, webhook=hook)
        with pytest.raises(Forbidden):
            webhooks.webhook_delivery_replay(actor=actor, delivery=delivery)
    assert list(Webhook.objects.values_list("url", flat=True)) == ["https://ci.example.com/hook"]
    assert WebhookDelivery.objects.count() == 1
    assert list(
        AuditEvent.objects.filter(action__startswith="webhook.").values_list("action", flat=True)
    ) == ["webhook.created"]


def test_webhook_services_validate_and_audit_without_the_secret():
    from core.actors import Actor
    from core.errors import ValidationFailed

    root = Actor(user=superuser(), channel="cli")
    for bad, field in (
        ({"url": "ftp://x.example.com/"}, "url"),
        ({"secret": " "}, "secret"),
        ({"events": ["promotion.shipped"]}, "events"),
        ({"name": ""}, "name"),
        ({"events": "promotion.applied"}, "events"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            webhooks.webhook_create(
                actor=root,
                **{"name": "ci", "url": "https://x.example.com/", "secret": "s3cret", **bad},
            )
        assert field in refused.value.fields
    assert not Webhook.objects.exists()
    hook = webhooks.webhook_create(
        actor=root,
        name="ci",
        url="https://x.example.com/",
        secret="s3cret-one",
        events=["promotion.applied"] * 2,
    )
    assert hook.events == ["promotion.applied"]
    webhooks.webhook_change(actor=root, webhook=hook, secret="s3cret-two", active=False)
    hook.refresh_from_db()
    assert hook.secret == "s3cret-two" and hook.active is False
    event = AuditEvent.objects.get(action="webhook.changed")
    assert event.details == {
        "webhook": "ci",
        "secret_changed": True,
        "changes": {"active": {"from": True, "to": False}},
    }
    assert "s3cret" not in str(list(AuditEvent.objects.values()))
    with pytest.raises(ValidationFailed):
        webhooks.webhook_change(actor=root, webhook=hook, secret_hint="x")


def test_a_broker_outage_does_not_undo_or_fail_the_committed_change(
    monkeypatch, data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks
):
    from governance import tasks

    def down(*args: object) -> None:
        raise OSError("broker unreachable")

    monkeypatch.setattr(tasks.deliver_webhook, "delay", down)
    monkeypatch.setattr(tasks.send_email, "delay", down)
    Webhook.objects.create(name="ci", url="http://127.0.0.1:9/", secret="k")
    _promote(data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks)
    assert WebhookDelivery.objects.filter(status="pending").count() >= 1  # replayable
    from registry.models import ModelVersion

    assert ModelVersion.objects.get().stage == "production"


def test_the_sweeper_sends_what_a_broker_outage_left_pending(
    monkeypatch,
    receiver,
    settings,
    data_scientist,
    ml_engineer,
    reviewer,
    django_capture_on_commit_callbacks,
):
    from datetime import timedelta

    from django.utils import timezone

    from governance import tasks
    from registry.tasks import sweep

    def down(*args: object) -> None:
        raise OSError("broker unreachable")

    hook = receiver()
    Webhook.objects.create(name="ci", url=hook.url, secret="k")
    with monkeypatch.context() as patched:
        patched.setattr(tasks.deliver_webhook, "delay", down)
        _promote(data_scientist, ml_engineer, reviewer, django_capture_on_commit_callbacks)
    pending = WebhookDelivery.objects.filter(status="pending")
    assert pending.count() >= 1 and not hook.received
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["deliveries"] == 0  # too recent: the message may be late
    pending.update(created_at=timezone.now() - timedelta(seconds=settings.SWEEP_AFTER + 1))
    count = pending.count()
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep.apply().get()["deliveries"] == count
    assert not WebhookDelivery.objects.filter(status="pending").exists()
    assert len(hook.received) == count
