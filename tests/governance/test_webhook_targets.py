"""Webhooks cannot be aimed at what only the server can reach (issue 12: "Webhooks accept
loopback, private and ftp:// targets and the admin shows the target's response body").

Targets are refused when saved (service and admin) and again before each delivery, which
connects to the address it checked. Name lookups leave the process, so the few tests that need
a name to resolve somewhere particular answer for that one name and pass every other lookup to
the real resolver.
"""

from __future__ import annotations

import socket
import uuid

import pytest
from django.utils import timezone

from governance import webhooks
from governance.actors import Actor
from governance.models import AuditEvent, Webhook, WebhookDelivery
from registry.errors import ValidationFailed
from tests.factories import superuser
from tests.governance import test_webhooks

pytestmark = pytest.mark.django_db
receiver = test_webhooks.receiver  # a real HTTP endpoint on loopback (the fixture)


@pytest.fixture
def root():
    return Actor(user=superuser(), channel="cli")


@pytest.fixture
def dns(monkeypatch):
    """dns["name.test"] = ["8.8.8.8", ...] (or a list of such lists, one per lookup, the last
    repeating): what the resolver answers for that name. Counts lookups in dns.lookups."""
    real = socket.getaddrinfo

    class Answers(dict):
        lookups: dict[str, int] = {}

    answers = Answers()
    answers.lookups = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        n = answers.lookups.get(host, 0)
        answers.lookups[host] = n + 1
        script = answers[host]
        addresses = script[min(n, len(script) - 1)] if isinstance(script[0], list) else script
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port) if ":" not in a else (a, port, 0, 0)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def _create(root, url: str) -> Webhook:
    return webhooks.webhook_create(actor=root, name="hook", url=url, secret="s3cret")


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://100.64.0.1/", "not globally routable"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::1]:8000/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback (IPv4 127.0.0.1 inside IPv6)"),
    ("http://[::ffff:169.254.169.254]/", "link-local (IPv4 169.254.169.254 inside IPv6)"),
    ("http://[2002:7f00:1::]/", "loopback (IPv4 127.0.0.1 inside IPv6)"),
    ("http://[64:ff9b::a00:1]/", "private (IPv4 10.0.0.1 inside IPv6)"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[::]/", "unspecified"),
    ("http://localhost:8000/hook", "loopback"),
])
def test_non_public_targets_are_refused_when_saved(root, url, reason):
    with pytest.raises(ValidationFailed) as refused:
        _create(root, url)
    assert refused.value.code == "webhook_target_refused" and "url" in refused.value.fields
    assert f"({reason})" in refused.value.message
    assert "WEBHOOK_ALLOWED_HOSTS" in refused.value.message
    assert not Webhook.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="webhook.").exists()


@pytest.mark.parametrize("url", ["ftp://files.example.com/x", "file:///etc/passwd",
                                 "gopher://127.0.0.1:6379/_INFO", "javascript:alert(1)"])
def test_only_http_and_https_are_accepted(root, url):
    with pytest.raises(ValidationFailed) as refused:
        _create(root, url)
    assert "url" in refused.value.fields
    assert not Webhook.objects.exists()


def test_a_name_with_any_non_public_address_is_refused(root, dns):
    dns["split.example.test"] = ["8.8.8.8", "10.0.0.7"]
    with pytest.raises(ValidationFailed) as refused:
        _create(root, "https://split.example.test/hook")
    assert "split.example.test resolves to 10.0.0.7" in refused.value.message
    dns["v6.example.test"] = ["2001:4860:4860::8888", "::1"]
    with pytest.raises(ValidationFailed):
        _create(root, "https://v6.example.test/hook")
    assert not Webhook.objects.exists()


def test_a_name_that_does_not_resolve_is_refused(root):
    with pytest.raises(ValidationFailed) as refused:
        _create(root, "https://no-such-host.invalid/hook")
    assert "could not be resolved" in refused.value.message


def test_public_targets_are_accepted(root, dns):
    dns["hooks.example.test"] = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]
    assert _create(root, "https://hooks.example.test/in").pk
    webhooks.webhook_create(actor=root, name="by-address", url="https://8.8.8.8/in", secret="k")
    assert Webhook.objects.count() == 2


def test_an_allow_listed_host_is_accepted_by_its_exact_name_only(root, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost", "hooks.internal", "[::1]"]
    assert _create(root, "http://LOCALHOST:8000/hook").pk
    webhooks.webhook_create(actor=root, name="v6", url="http://[::1]:9000/", secret="k")
    # The name is listed, not what it resolves to; and no prefix or suffix matching.
    for url in ("http://127.0.0.1:8000/hook", "http://localhost.:8000/hook",
                "http://evil.hooks.internal/", "http://hooks.internal.evil.test/"):
        with pytest.raises(ValidationFailed):
            _create(root, url)
    assert Webhook.objects.count() == 2


def test_a_changed_address_is_checked_and_an_unchanged_one_is_not_looked_up(root, dns):
    dns["hooks.example.test"] = ["8.8.8.8"]
    hook = _create(root, "https://hooks.example.test/in")
    with pytest.raises(ValidationFailed):
        webhooks.webhook_change(actor=root, webhook=hook, url="http://169.254.169.254/")
    dns["hooks.example.test"] = ["10.0.0.1"]  # a rename needs no lookup of the address
    webhooks.webhook_change(actor=root, webhook=hook, name="renamed", url=hook.url)
    hook.refresh_from_db()
    assert hook.name == "renamed" and hook.url == "https://hooks.example.test/in"


def _delivery(hook: Webhook) -> WebhookDelivery:
    return WebhookDelivery.objects.create(webhook=hook, event="promotion.applied",
                                          delivery_id=uuid.uuid4(), payload={"x": 1},
                                          created_at=timezone.now())


def test_a_target_that_turned_private_since_it_was_saved_is_not_sent_to(root, dns, receiver):
    endpoint = receiver()
    port = endpoint.server.server_port
    dns["rebind.example.test"] = ["8.8.8.8"]
    hook = _create(root, f"http://rebind.example.test:{port}/hook")
    dns["rebind.example.test"] = ["127.0.0.1"]  # DNS changed after the check
    delivery = _delivery(hook)
    assert webhooks.attempt(delivery.pk) is False  # refused for good: no retry
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempts == 1
    assert delivery.response_status is None
    assert delivery.error.startswith("Not sent: rebind.example.test resolves to 127.0.0.1")
    assert "(loopback)" in delivery.error
    assert endpoint.received == []


def test_an_unresolvable_target_is_not_sent_and_retried_later(root, dns, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["gone.example.test"]
    hook = _create(root, "http://gone.example.test/hook")  # listed: not looked up when saved
    delivery = _delivery(hook)
    assert webhooks.attempt(delivery.pk) is True  # the resolver may be back later
    delivery.refresh_from_db()
    assert delivery.status == "pending" and "could not be resolved" in delivery.error


def test_the_delivery_connects_to_the_address_it_checked(root, dns, receiver, settings):
    endpoint = receiver()
    port = endpoint.server.server_port
    settings.WEBHOOK_ALLOWED_HOSTS = ["hooks.internal.test"]
    # A second lookup would answer an address where nothing listens.
    dns["hooks.internal.test"] = [["127.0.0.1"], ["10.255.255.1"]]
    hook = _create(root, f"http://hooks.internal.test:{port}/in?team=ml")
    delivery = _delivery(hook)
    assert webhooks.attempt(delivery.pk) is False
    delivery.refresh_from_db()
    assert delivery.status == "succeeded", delivery.error
    assert dns.lookups["hooks.internal.test"] == 1
    headers, body = endpoint.received[0]
    assert headers["Host"] == f"hooks.internal.test:{port}"
    assert headers["X-Modelgate-Signature"] == webhooks.sign("s3cret", body)


def test_only_the_start_of_a_response_is_stored_and_less_is_shown(root, settings, receiver,
                                                                  client):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    secret_page = ("internal-" * 1000).encode()
    endpoint = receiver(400, body=secret_page)
    hook = _create(root, endpoint.url)
    delivery = _delivery(hook)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.response_status == 400
    assert len(delivery.response_body.encode()) <= webhooks.RESPONSE_KEEP == 1024
    client.force_login(root.user)
    page = client.get(f"/admin/governance/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
    shown = page.content.decode()
    assert "internal-internal-" in shown
    assert "internal-" * 30 not in shown  # at most 200 characters of it


def test_the_admin_refuses_a_private_target_with_a_message(client, admin_user):
    client.force_login(admin_user)
    r = client.post("/admin/governance/webhook/add/", {
        "name": "metadata", "url": "http://169.254.169.254/latest/meta-data/",
        "secret": "s3cret", "registered_model": "", "events": "[]", "active": "on"})
    assert r.status_code == 200
    assert "is not a public address (link-local)" in r.content.decode()
    assert not Webhook.objects.exists()
