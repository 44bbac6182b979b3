"""The audit log through the API: filters, cursor pages, exports, and who sees which events."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.utils import timezone

from core import permissions
from core.permissions import Perm
from registry import services
from tests.factories import actor_for, make_model, make_version

pytestmark = pytest.mark.django_db
E = "/api/v1/audit/events/"


@pytest.fixture
def story(data_scientist):
    churn = make_model(data_scientist, "churn")
    fraud = make_model(data_scientist, "fraud")
    make_version(data_scientist, churn)
    services.registered_model_tag_set(
        actor=actor_for(data_scientist), registered_model=churn, key="team", value="growth"
    )
    make_version(data_scientist, fraud)
    return churn, fraud


def _all(client, **params):
    rows, url, query = [], E, {"page_size": 3, **params}
    while url:
        body = client.get(url, query).json()
        rows += body["results"]
        url, query = body["next"], None
    return rows


def test_filters_and_cursor_pages(api, admin_user, story):
    client = api(admin_user)
    everything = _all(client)
    assert [r["sequence"] for r in everything] == sorted(
        (r["sequence"] for r in everything), reverse=True
    )
    assert len({r["sequence"] for r in everything}) == len(everything)
    churn = _all(client, model="churn")
    assert {r["model"] for r in churn} == {"churn"}
    assert {"registered_model.created", "version.created", "registered_model.tag_set"} <= {
        r["action"] for r in churn
    }
    versions = _all(client, action="version.created")
    assert [r["model"] for r in versions] == ["fraud", "churn"]
    prefixed = _all(client, action="registered_model.")
    assert {r["action"] for r in prefixed} == {
        "registered_model.created",
        "registered_model.tag_set",
    }
    assert _all(client, actor="alice") and not _all(client, actor="nobody")
    assert _all(client, since=timezone.now().isoformat()) == []
    assert len(_all(client, until=timezone.now().isoformat())) == len(everything)
    row = everything[0]
    assert set(row) >= {
        "sequence",
        "occurred_at",
        "actor",
        "action",
        "target_type",
        "target_id",
        "details",
        "request_id",
        "prev_hash",
        "hash",
    }
    r = client.get(E, {"since": "last tuesday"})
    assert r.status_code == 400 and r.json()["fields"]["since"]
    assert client.get(E, {"ordering": "actor"}).status_code == 400


def test_non_administrators_see_only_events_of_models_they_may_view(api, story, outsider, viewer):
    churn, _ = story
    assert _all(api(outsider)) == []
    permissions.grant(Perm.VIEW, churn, user=outsider)
    assert {r["model"] for r in _all(api(outsider))} == {"churn"}
    # role.synced and other events tied to no model are for administrators and auditors.
    assert all(r["model"] for r in _all(api(viewer)))


def test_exports_stream_the_filtered_log_in_sequence_order(api, admin_user, story):
    client = api(admin_user)
    r = client.get(f"{E}export.jsonl", {"model": "churn"})
    assert r.status_code == 200 and r["Content-Type"] == "application/x-ndjson"
    assert r["Content-Disposition"] == 'attachment; filename="audit.jsonl"'
    lines = [json.loads(line) for line in b"".join(r.streaming_content).splitlines()]
    assert [x["sequence"] for x in lines] == sorted(x["sequence"] for x in lines)
    assert {x["model"] for x in lines} == {"churn"} and len(lines) >= 3
    r = client.get(f"{E}export.csv", {"model": "churn"})
    assert r["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert [int(t["sequence"]) for t in table] == [x["sequence"] for x in lines]
    assert json.loads(table[0]["details"]) == lines[0]["details"]
    assert client.get(f"{E}export.xml").status_code == 404
    assert api().get(f"{E}export.csv").status_code == 401
