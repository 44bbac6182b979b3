"""Login throttling (django-axes) and its audit trail. Issue 12: "40 wrong passwords in a row:
no lockout and one audit event".

Failures count per user name and client address together: after AXES_FAILURE_LIMIT (5) wrong
passwords that pair is locked for the cool-off, even the right password is refused, each failure
and the lockout are audited, and the same user from elsewhere still signs in.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command

from core.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
ATTACKER = "203.0.113.9"


@pytest.fixture
def victor():
    user = UserFactory(username="victor")
    user.set_password(PASSWORD)
    user.save()
    return user


def _login(
    client,
    password: str,
    *,
    address: str = ATTACKER,
    path: str = "/login/",
    username: str = "victor",
):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def _actions() -> list[str]:
    return list(
        AuditEvent.objects.filter(action__startswith="auth.")
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_protection_is_on_in_tests(settings):
    assert settings.AXES_ENABLED is True
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_forty_wrong_passwords_lock_the_pair_and_every_step_is_audited(client, victor):
    statuses = [_login(client, f"guess-{n}").status_code for n in range(40)]
    assert statuses[:4] == [200] * 4  # the form again, with its error
    assert set(statuses[4:]) == {429}  # the fifth failure locks
    locked = _login(client, PASSWORD)
    assert locked.status_code == 429 and not _signed_in(client)  # even the right password
    page = locked.content.decode()
    assert "Sign-in locked" in page and "15 minutes" in page and "Traceback" not in page

    # Five failures one by one, then the lockout; the 35 refused attempts (and the right
    # password) are throttled into one refusal event counting the rest.
    assert _actions() == ["auth.login_failed"] * 5 + ["auth.locked_out", "auth.login_refused"]
    failures = AuditEvent.objects.filter(action="auth.login_failed")
    assert {e.details["username"] for e in failures} == {"victor"}
    assert {e.client_address for e in failures} == {ATTACKER}
    lockout = AuditEvent.objects.get(action="auth.locked_out")
    assert lockout.details == {
        "username": "victor",
        "failures": 5,
        "limit": 5,
        "cool_off_minutes": 15,
    }
    assert lockout.client_address == ATTACKER and lockout.channel == "web"
    refused = AuditEvent.objects.get(action="auth.login_refused")
    assert refused.details == {"username": "victor", "reason": "locked out"}
    assert PASSWORD not in str(list(AuditEvent.objects.values("details")))

    # The attacker's address is locked, not the user: victor signs in from his own.
    other = client.__class__()
    assert _login(other, PASSWORD, address="198.51.100.20").status_code == 302
    assert _signed_in(other)


def test_an_administrator_lifts_the_lock_with_axes_reset(client, victor):
    for n in range(5):
        _login(client, f"guess-{n}")
    assert _login(client, PASSWORD).status_code == 429
    call_command("axes_reset", stdout=io.StringIO())
    assert _login(client, PASSWORD).status_code == 302 and _signed_in(client)


def test_the_lock_ends_after_the_cool_off(client, victor, settings):
    for n in range(5):
        _login(client, f"guess-{n}")
    assert _login(client, PASSWORD).status_code == 429
    # Time passes: the failures are older than the cool-off.
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time
        - settings.AXES_COOLOFF_TIME
        - timedelta(seconds=1)
    )
    assert _login(client, PASSWORD).status_code == 302 and _signed_in(client)


def test_a_success_resets_the_count(client, victor):
    for n in range(4):
        assert _login(client, f"typo-{n}").status_code == 200
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    for n in range(4):
        assert _login(client, f"typo-again-{n}").status_code == 200
    assert _login(client, PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(client, victor):
    victor.is_staff = True
    victor.save()
    statuses = [_login(client, f"guess-{n}", path="/admin/login/").status_code for n in range(6)]
    assert statuses == [200] * 4 + [429, 429]
    assert _login(client, PASSWORD, path="/admin/login/").status_code == 429
    # One lock for the pair, whichever page: the login page refuses as well.
    assert _login(client, PASSWORD).status_code == 429
    assert AuditEvent.objects.get(action="auth.locked_out").channel == "admin"


def test_many_names_from_one_address_do_not_flood_the_audit_log(client, settings):
    from core import audit

    for n in range(audit.LOGIN_EVENTS_RECORDED_PER_ADDRESS + 15):
        _login(client, "x", username=f"user{n}")  # one try per name: no lockout
    assert (
        AuditEvent.objects.filter(action="auth.login_failed").count()
        == audit.LOGIN_EVENTS_RECORDED_PER_ADDRESS + 1
    )  # then one throttled event


def test_api_tokens_are_not_passwords_and_are_not_counted(api, victor, client):
    for _ in range(10):
        assert (
            api().get("/api/v1/models/", HTTP_AUTHORIZATION="Bearer mg_wrongwrongwrong").status_code
            == 401
        )
    assert not AccessAttempt.objects.exists()
    assert client.post("/login/", {"username": "victor", "password": PASSWORD}).status_code == 302


def test_with_throttling_switched_off_failures_are_throttled_like_refusals(
    client, victor, settings
):
    settings.AXES_ENABLED = False
    assert {_login(client, f"guess-{n}").status_code for n in range(8)} == {200}
    assert _login(client, PASSWORD).status_code == 302
    assert _actions() == ["auth.login_failed"]  # one event for the burst, as before
