"""Refused accesses and failed logins are audited, without letting a scan flood the log."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from core.models import AuditEvent
from tests.factories import make_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def registered_model(data_scientist):
    return make_model(data_scientist, "churn")


def test_invisible_and_forbidden_requests_are_recorded(api, registered_model, outsider, viewer):
    assert api(outsider).get("/api/v1/models/churn/").status_code == 404
    assert (
        api(viewer).patch("/api/v1/models/churn/", {"description": "x"}, format="json").status_code
        == 403
    )
    events = {e.actor_label: e for e in AuditEvent.objects.filter(action="access.refused")}
    hidden, forbidden = events["olivia"], events["victor"]
    assert (
        hidden.registered_model_name == "churn"
        and hidden.registered_model_id == registered_model.pk
    )
    assert hidden.details["wanted"] == "view_registeredmodel" and hidden.details["status"] == 404
    assert forbidden.details["wanted"] == "change_registeredmodel"
    assert forbidden.details["path"] == "/api/v1/models/churn/"
    # A name that does not exist is a plain 404, not a refusal.
    assert api(outsider).get("/api/v1/models/nothing/").status_code == 404
    assert AuditEvent.objects.filter(action="access.refused").count() == 2


def test_pages_record_refusals_too(client, registered_model, outsider):
    client.force_login(outsider)
    assert client.get("/models/churn/").status_code == 404
    assert AuditEvent.objects.get(action="access.refused").details["method"] == "GET"


def test_a_burst_is_recorded_once_and_counted_into_the_next_event(api, registered_model, outsider):
    client = api(outsider)
    for _ in range(5):
        assert client.get("/api/v1/models/churn/").status_code == 404
    assert AuditEvent.objects.filter(action="access.refused").count() == 1
    # The window passes:
    cache.delete(f"modelgate:refusal:access.refused:127.0.0.1:{outsider.pk}:{registered_model.pk}")
    client.get("/api/v1/models/churn/")
    latest = AuditEvent.objects.filter(action="access.refused").latest("sequence")
    assert latest.details["suppressed_before"] == 4


def test_failed_logins_and_rejected_tokens_are_recorded(client, api, viewer):
    r = client.post("/login/", {"username": "victor", "password": "wrong"})
    assert r.status_code == 200
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.details == {"username": "victor"} and event.channel == "web"
    r = api().get("/api/v1/models/", HTTP_AUTHORIZATION="Bearer mg_notarealtoken")
    assert r.status_code == 401
    event = AuditEvent.objects.get(action="auth.token_rejected")
    assert event.details["prefix"] == "notareal" and event.channel == "api"
