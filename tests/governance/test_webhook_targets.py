"""Webhooks cannot be aimed at what only the server can reach (issue 12: "Webhooks accept
loopback, private and ftp:// targets and the admin shows the target's response body").

Targets are refused when saved (service and admin) and again before each delivery, which
connects to the address it checked. Name lookups leave the process, so the few tests that need
a name to resolve somewhere particular answer for that one name and pass every other lookup to
the real resolver.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid

import pytest
from django.utils import timezone

from core.actors import Actor
from core.errors import ValidationFailed
from core.models import AuditEvent
from governance import webhooks
from governance.models import Webhook, WebhookDelivery
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
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port) if ":" not in a else (a, port, 0, 0),
            )
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def _create(root, url: str) -> Webhook:
    return webhooks.webhook_create(actor=root, name="hook", url=url, secret="s3cret")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
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
    ],
)
def test_non_public_targets_are_refused_when_saved(root, url, reason):
    with pytest.raises(ValidationFailed) as refused:
        _create(root, url)
    assert refused.value.code == "webhook_target_refused" and "url" in refused.value.fields
    assert f"({reason})" in refused.value.message
    assert "WEBHOOK_ALLOWED_HOSTS" in refused.value.message
    assert not Webhook.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="webhook.").exists()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "javascript:alert(1)",
    ],
)
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
    for url in (
        "http://127.0.0.1:8000/hook",
        "http://localhost.:8000/hook",
        "http://evil.hooks.internal/",
        "http://hooks.internal.evil.test/",
    ):
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
    return WebhookDelivery.objects.create(
        webhook=hook,
        event="promotion.applied",
        delivery_id=uuid.uuid4(),
        payload={"x": 1},
        created_at=timezone.now(),
    )


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


def test_only_the_start_of_a_response_is_stored_and_less_is_shown(root, settings, receiver, client):
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
    r = client.post(
        "/admin/governance/webhook/add/",
        {
            "name": "metadata",
            "url": "http://169.254.169.254/latest/meta-data/",
            "secret": "s3cret",
            "registered_model": "",
            "events": [],
            "active": "on",
        },
    )
    assert r.status_code == 200
    assert "is not a public address (link-local)" in r.content.decode()
    assert not Webhook.objects.exists()


class RawServer:
    """A TCP server on loopback that reads the request's first bytes and then lets
    `reply(conn, stop)` write what it likes: something that is not HTTP, or HTTP very slowly.
    `stop` is set when the test ends."""

    def __init__(self, reply) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply, self.stop = reply, threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    conn.recv(65536)
                    self.reply(conn, self.stop)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):  # wakes the accept() (close() would not)
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)


@pytest.fixture
def raw_server(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    servers: list[RawServer] = []

    def make(reply) -> RawServer:
        servers.append(RawServer(reply))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def test_a_target_that_does_not_speak_http_leaves_only_a_short_error(root, raw_server, client):
    """http.client puts the whole first line (up to 64 KiB) of a non-HTTP answer into its
    BadStatusLine message: stored whole, that went around the response limit, and the admin
    showed it all (issue 12 review). NUL, escapes and direction overrides are dropped too."""
    line = b"internal-secret-\x00\x1b[31m\r\xe2\x80\xae" + b"internal-secret-" * 4000 + b"\r\n"
    server = raw_server(lambda conn, stop: conn.sendall(line))
    delivery = _delivery(_create(root, f"http://127.0.0.1:{server.port}/in"))
    assert webhooks.attempt(delivery.pk) is True  # no HTTP answer: transient, retried
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.response_status is None
    assert delivery.response_body == ""
    assert delivery.error.startswith("BadStatusLine: internal-secret-")
    assert len(delivery.error) <= webhooks.ERROR_KEEP == 200 and delivery.error.endswith("…")
    assert not any(c in delivery.error for c in "\x00\x1b\x80\r\n")  # \u202e as Latin-1
    assert len(delivery.error.encode()) < 300  # the 64 KB line is not kept
    client.force_login(root.user)
    shown = client.get(f"/admin/governance/webhookdelivery/{delivery.pk}/change/")
    assert shown.status_code == 200
    assert "BadStatusLine: internal-secret-" in shown.content.decode()
    assert "internal-secret-" * 13 not in shown.content.decode()


def test_an_old_long_error_is_shown_short_in_the_admin(root, client):
    """Rows written before errors were bounded are cut when shown."""
    delivery = _delivery(_create(root, "https://8.8.8.8/in"))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        error="BadStatusLine: " + "internal-secret-" * 3000
    )
    client.force_login(root.user)
    shown = client.get(f"/admin/governance/webhookdelivery/{delivery.pk}/change/").content
    assert b"BadStatusLine: internal-secret-" in shown
    assert b"internal-secret-" * 13 not in shown


def _drip_headers(conn, stop) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    _drip(conn, stop)


def _drip_body(conn, stop) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n")
    _drip(conn, stop)


def _silent(conn, stop) -> None:  # e.g. a TLS handshake that never gets an answer
    stop.wait(6)


def _drip(conn, stop) -> None:
    """One byte every 0.4 s, each well inside a 1 s socket timeout; gives up after 6 s so that
    a delivery without an overall deadline fails the test instead of hanging it."""
    started = time.monotonic()
    while not stop.is_set() and time.monotonic() - started < 6:
        conn.sendall(b"X")
        stop.wait(0.4)


@pytest.mark.parametrize(
    ("scheme", "reply"), [("http", _drip_headers), ("http", _drip_body), ("https", _silent)]
)
def test_a_receiver_dripping_bytes_cannot_hold_the_worker_past_the_timeout(
    root, raw_server, settings, scheme, reply
):
    """WEBHOOK_TIMEOUT was each read's socket timeout: a receiver sending a byte every little
    while held the delivery, and the Celery worker, for as long as it liked (issue 12
    review). It is now the budget of the whole attempt, and running out is retried."""
    settings.WEBHOOK_TIMEOUT = 1
    server = raw_server(reply)
    delivery = _delivery(_create(root, f"{scheme}://127.0.0.1:{server.port}/in"))
    started = time.monotonic()
    assert webhooks.attempt(delivery.pk) is True
    held = time.monotonic() - started
    assert held < 2.5, f"the delivery was still reading after {held:.1f} s (timeout 1 s)"
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.response_status is None
    assert delivery.error == "TimeoutError: timed out after 1 s (WEBHOOK_TIMEOUT)"


def test_the_delivery_task_has_a_time_limit_beyond_the_attempt_deadline(settings):
    """A second guard for what the deadline does not cover (the name lookup before it)."""
    from governance.tasks import deliver_webhook

    assert deliver_webhook.soft_time_limit > settings.WEBHOOK_TIMEOUT
