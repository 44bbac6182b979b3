"""Issue 13, "one time parser": every time a user types goes through core.edge.instant. The
API refuses a time without an offset; pages, whose forms say "(UTC)", read one as UTC, never
as the server's or the active time zone, and no naive datetime reaches a query (Django's
"received a naive datetime" RuntimeWarning is an error in this suite too)."""

from __future__ import annotations

import re
import warnings
from datetime import UTC

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from registry import services
from tests.factories import actor_for, make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(data_scientist):
    """Four events of one model, oldest first."""
    registered_model = make_model(data_scientist, "timed")
    for i in range(3):
        services.registered_model_tag_set(
            actor=actor_for(data_scientist),
            registered_model=registered_model,
            key=f"k{i}",
            value=str(i),
        )
    found = list(AuditEvent.objects.filter(registered_model_name="timed").order_by("sequence"))
    assert len(found) == 4 and len({e.occurred_at for e in found}) == 4
    return found


def naive_utc(event):
    """The event's time as a page's form sends it: UTC, without an offset."""
    return event.occurred_at.astimezone(UTC).replace(tzinfo=None).isoformat()


def shown(html):
    return {int(n) for n in re.findall(r'<td class="num">(\d+)</td>', html)}


def test_the_audit_page_reads_a_time_without_offset_as_utc(client, admin_user, events):
    client.force_login(admin_user)
    first, second, third, fourth = events
    query = {"model": "timed", "since": naive_utc(second), "until": naive_utc(fourth)}
    # Another active time zone changes nothing: the form says UTC.
    with warnings.catch_warnings(record=True) as caught, timezone.override("America/New_York"):
        warnings.simplefilter("always")
        r = client.get("/audit/", query)
    assert r.status_code == 200
    assert not [w for w in caught if "naive datetime" in str(w.message)]
    assert shown(r.content.decode()) == {second.sequence, third.sequence}
    # The same instants with an offset select the same events; a date alone is midnight UTC.
    aware = {
        "model": "timed",
        "since": second.occurred_at.astimezone(UTC).isoformat(),
        "until": fourth.occurred_at.isoformat(),
    }
    assert shown(client.get("/audit/", aware).content.decode()) == {
        second.sequence,
        third.sequence,
    }
    assert (
        shown(client.get("/audit/", {"model": "timed", "until": "2000-01-01"}).content.decode())
        == set()
    )


def test_the_audit_page_refuses_what_is_not_a_time(client, admin_user, events):
    client.force_login(admin_user)
    for bad in ("yesterday", "2026-02-30T10:00", "0001-01-01T00:00+01:00"):
        r = client.get("/audit/", {"until": bad})
        assert r.status_code == 400, bad
        assert 'id="until-error"' in r.content.decode()


def test_the_audit_api_refuses_a_time_without_offset_which_the_page_reads_as_utc(
    api, admin_user, events
):
    r = api(admin_user).get("/api/v1/audit/events/", {"since": naive_utc(events[1])})
    assert r.status_code == 400 and r.json()["fields"]["since"]
    assert "time zone" in r.json()["message"]


def test_the_audit_admin_filters_by_day_without_naive_datetimes(client, admin_user, events):
    """The admin's only time input on the audit log is its date hierarchy (Django's own,
    read in the active time zone, UTC here)."""
    client.force_login(admin_user)
    day = events[0].occurred_at.astimezone(UTC)
    url = reverse(f"admin:{AuditEvent._meta.app_label}_auditevent_changelist")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = client.get(
            url,
            {
                "occurred_at__year": day.year,
                "occurred_at__month": day.month,
                "occurred_at__day": day.day,
                "q": "timed",
            },
        )
    assert r.status_code == 200
    assert not [w for w in caught if "naive datetime" in str(w.message)]
    assert f"{len(events)} audit events" in r.content.decode()
