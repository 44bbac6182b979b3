"""Issue 13: one time rule in the API. A time in a request body is read as a query filter's is
(core.edge.instant): with its time zone, or refused with a 400 naming the field; never taken
as UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.models import AuditEvent
from registry.models import TrainingRun
from tests.factories import make_model

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/training-runs/"


def _post(client, **fields):
    return client.post(RUNS, {"run_id": "run-1", **fields}, format="json")


@pytest.mark.parametrize("field", ["started_at", "ended_at"])
def test_a_time_without_an_offset_is_refused_and_nothing_is_created(api, data_scientist, field):
    r = _post(api(data_scientist), **{field: "2026-11-01T10:00:00"})

    assert r.status_code == 400, r.content
    body = r.json()
    wording = f"{field} needs a time zone, like 2026-03-01T12:00:00Z."
    assert body == {"code": "validation_failed", "message": wording, "fields": {field: [wording]}}
    assert not TrainingRun.objects.exists()
    assert not AuditEvent.objects.filter(action="training_run.created").exists()


def test_the_query_filters_say_the_same_about_the_same_time(api, data_scientist):
    """The history filter (core.edge.instant) refuses the same text in the same words."""
    make_model(data_scientist, "churn")
    client = api(data_scientist)
    query = client.get("/api/v1/models/churn/history/", {"at": "2026-11-01T10:00:00"})
    body = _post(client, started_at="2026-11-01T10:00:00").json()
    assert query.status_code == 400
    assert query.json()["message"].removeprefix("at ") == body["message"].removeprefix(
        "started_at "
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("yesterday", "started_at must be an ISO 8601 time like 2026-03-01T12:00:00Z."),
        (1762000000, "started_at must be an ISO 8601 time like 2026-03-01T12:00:00Z."),
        ("2026-02-30T10:00:00Z", "started_at must be an ISO 8601 time like 2026-03-01T12:00:00Z."),
        ("0001-01-01T00:00:00+01:00", "started_at is outside the years 1 to 9999 in UTC."),
    ],
)
def test_what_is_no_time_is_refused_with_instants_words(api, data_scientist, raw, message):
    r = _post(api(data_scientist), started_at=raw)
    assert r.status_code == 400 and r.json()["fields"] == {"started_at": [message]}
    assert not TrainingRun.objects.exists()


def test_times_with_an_offset_are_taken_and_stored_in_utc(api, data_scientist):
    r = _post(
        api(data_scientist),
        started_at="2026-11-01T11:00:00+01:00",
        ended_at="2026-11-01T11:30:00Z",
    )
    assert r.status_code == 201, r.content
    run = TrainingRun.objects.get(run_id="run-1")
    assert run.started_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert run.ended_at == datetime(2026, 11, 1, 11, 30, tzinfo=UTC)
    assert r.json()["started_at"] == "2026-11-01T10:00:00Z"
    # Left out, or null: no time.
    r = api(data_scientist).post(RUNS, {"run_id": "run-2", "started_at": None}, format="json")
    assert r.status_code == 201 and r.json()["started_at"] is None
