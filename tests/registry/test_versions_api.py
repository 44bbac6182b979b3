from __future__ import annotations

import pytest

from core import permissions
from core.permissions import Perm
from registry import services
from registry.models import ModelVersion
from tests.factories import (
    SIGNATURE,
    actor_for,
    make_artifact,
    make_model,
    make_version,
    no_approval,
    place,
)

pytestmark = pytest.mark.django_db
M = "/api/v1/models/credit-risk"


@pytest.fixture
def registered_model(data_scientist):
    return make_model(data_scientist, "credit-risk")


def test_create_version_returns_201_with_the_next_number(api, data_scientist, registered_model):
    client = api(data_scientist)
    payload = {
        "source": "s3://bucket/model",
        "params": {"depth": 3},
        "metrics": {"auc": 0.91},
        "signature": SIGNATURE,
        "tags": {"k": "v"},
    }
    first = client.post(f"{M}/versions/", payload, format="json")
    second = client.post(f"{M}/versions/", payload, format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    body = first.json()
    assert body["metrics"] == [{"name": "auc", "value": 0.91, "dataset": "", "split": ""}]
    assert body["stage"] == "none" and body["status"] == "ready"
    assert body["created_by"] == "alice" and body["tags"] == {"k": "v"}


def test_idempotency_key_header_returns_the_same_version(api, data_scientist, registered_model):
    client = api(data_scientist)
    first = client.post(
        f"{M}/versions/", {"source": "s3://a"}, format="json", HTTP_IDEMPOTENCY_KEY="retry-1"
    )
    retry = client.post(
        f"{M}/versions/", {"source": "s3://a"}, format="json", HTTP_IDEMPOTENCY_KEY="retry-1"
    )
    assert (first.status_code, retry.status_code) == (201, 200)
    assert first.json()["version"] == retry.json()["version"] == 1
    assert ModelVersion.objects.count() == 1
    other = client.post(
        f"{M}/versions/", {"source": "s3://b"}, format="json", HTTP_IDEMPOTENCY_KEY="retry-1"
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"


@pytest.mark.parametrize("field", ["version", "stage", "created_by", "created_at"])
def test_server_owned_version_fields_are_refused(api, data_scientist, registered_model, field):
    r = api(data_scientist).post(f"{M}/versions/", {field: 7}, format="json")
    assert r.status_code == 400 and r.json()["code"] == "read_only_field"
    assert not ModelVersion.objects.exists()


def test_stage_cannot_be_patched(api, data_scientist, registered_model):
    make_version(data_scientist, registered_model)
    r = api(data_scientist).patch(f"{M}/versions/1/", {"stage": "production"}, format="json")
    assert r.status_code == 400 and r.json()["code"] == "read_only_field"
    assert ModelVersion.objects.get().stage == "none"


def test_unknown_version_is_404(api, data_scientist, registered_model):
    r = api(data_scientist).get(f"{M}/versions/9/")
    assert r.status_code == 404 and r.json()["code"] == "version_not_found"


def test_signature_errors_name_the_field(api, data_scientist, registered_model):
    r = api(data_scientist).post(f"{M}/versions/", {"signature": {"inputs": "x"}}, format="json")
    assert r.status_code == 400 and "signature" in r.json()["fields"]


def test_patch_and_stage_endpoints(api, data_scientist, ml_engineer, viewer, registered_model):
    make_version(data_scientist, registered_model)
    client = api(data_scientist)
    r = client.patch(f"{M}/versions/1/", {"description": "better"}, format="json")
    assert r.json()["description"] == "better"
    r = api(viewer).post(f"{M}/versions/1/stage/", {"stage": "production"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    r = api(ml_engineer).post(f"{M}/versions/1/stage/", {"stage": "production"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "approval_required"
    no_approval(registered_model)
    r = api(ml_engineer).post(f"{M}/versions/1/stage/", {"stage": "production"}, format="json")
    assert r.status_code == 200 and r.json()["stage"] == "production"
    r = client.delete(f"{M}/versions/1/")
    assert r.status_code == 409 and r.json()["code"] == "version_in_use"


def test_version_tags_and_metrics_endpoints(api, data_scientist, registered_model):
    make_version(data_scientist, registered_model, metrics={"auc": 0.8})
    client = api(data_scientist)
    assert client.put(f"{M}/versions/1/tags/k/", {"value": "v"}, format="json").json()["tags"] == {
        "k": "v"
    }
    r = client.post(
        f"{M}/versions/1/metrics/",
        {"metrics": [{"name": "f1", "value": 0.5, "split": "test"}]},
        format="json",
    )
    assert {m["name"] for m in r.json()["metrics"]} == {"auc", "f1"}
    assert client.delete(f"{M}/versions/1/tags/k/").status_code == 204


def test_compare_gives_side_by_side_and_changes(api, data_scientist, registered_model):
    make_version(
        data_scientist, registered_model, params={"depth": 3, "lr": 0.1}, metrics={"auc": 0.8}
    )
    make_version(
        data_scientist,
        registered_model,
        params={"depth": 5, "lr": 0.1},
        metrics={"auc": 0.88, "f1": 0.6},
    )
    r = api(data_scientist).get(f"{M}/compare/", {"versions": "1,2"})
    body = r.json()
    assert body["baseline"] == 1
    params = {p["name"]: p for p in body["params"]}
    assert params["depth"] == {"name": "depth", "values": [3, 5], "differs": True}
    assert params["lr"]["differs"] is False
    auc = next(m for m in body["metrics"] if m["name"] == "auc")
    assert auc["values"] == [0.8, 0.88]
    assert auc["changes"][0]["absolute"] == pytest.approx(0.08)
    assert auc["changes"][0]["percent"] == pytest.approx(10.0)
    f1 = next(m for m in body["metrics"] if m["name"] == "f1")
    assert f1["changes"] == [{"absolute": None, "percent": None, "verdict": None}]


@pytest.mark.parametrize("versions,status", [("1", 400), ("1,x", 400), ("1,1", 400), ("1,9", 404)])
def test_compare_rejects_bad_version_lists(api, data_scientist, registered_model, versions, status):
    make_version(data_scientist, registered_model)
    make_version(data_scientist, registered_model)
    assert api(data_scientist).get(f"{M}/compare/", {"versions": versions}).status_code == status


def test_validate_reports_schema_errors(api, data_scientist, registered_model):
    make_version(data_scientist, registered_model, signature=SIGNATURE)
    client = api(data_scientist)
    ok = client.post(
        f"{M}/versions/1/validate/",
        {"dataframe_records": [{"age": 30, "income": 1.5, "region": "n"}]},
        format="json",
    )
    assert ok.json() == {"valid": True, "rows": 1, "errors": []}
    bad = client.post(
        f"{M}/versions/1/validate/",
        {"dataframe_split": {"columns": ["age", "income", "colour"], "data": [["old", 2, "red"]]}},
        format="json",
    )
    codes = {(e["code"], e.get("column")) for e in bad.json()["errors"]}
    assert codes == {
        ("wrong_type", "age"),
        ("missing_column", "region"),
        ("extra_column", "colour"),
    }


def test_validate_checks_tensor_shapes(api, data_scientist, registered_model):
    make_version(
        data_scientist,
        registered_model,
        signature={
            "inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2, 2]}}]
        },
    )
    client = api(data_scientist)
    ok = client.post(
        f"{M}/versions/1/validate/", {"instances": [[[1, 2], [3, 4.5]]]}, format="json"
    )
    assert ok.json()["valid"] is True
    bad = client.post(
        f"{M}/versions/1/validate/", {"instances": [[[1, 2, 3]], [["a", 1], [1, 1]]]}, format="json"
    )
    assert [e["code"] for e in bad.json()["errors"]] == ["wrong_shape", "wrong_type"]


def test_validate_without_signature_or_with_bad_payload_is_400(
    api, data_scientist, registered_model
):
    make_version(data_scientist, registered_model)
    r = api(data_scientist).post(f"{M}/versions/1/validate/", {"rows": []}, format="json")
    assert r.status_code == 400 and r.json()["code"] == "no_signature"
    make_version(data_scientist, registered_model, signature=SIGNATURE)
    r = api(data_scientist).post(
        f"{M}/versions/2/validate/", {"rows": [], "instances": []}, format="json"
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_payload"


def test_resolve_stage_and_alias(api, data_scientist, reviewer, registered_model):
    v1 = make_version(data_scientist, registered_model)
    make_artifact(data_scientist, v1, b"weights")
    make_version(data_scientist, registered_model)
    place(v1, "production")
    services.alias_set(
        actor=actor_for(data_scientist),
        registered_model=registered_model,
        name="champion",
        version=v1,
    )
    client = api(data_scientist)
    body = client.get(f"{M}/resolve/", {"stage": "production"}).json()
    assert body["version"] == 1 and body["aliases"] == ["champion"]
    artifact = body["artifacts"][0]
    assert len(artifact["sha256"]) == 64
    assert artifact["download_url"].endswith(f"/versions/1/artifacts/{artifact['id']}/download/")
    assert client.get(f"{M}/resolve/", {"alias": "champion"}).json()["version"] == 1
    assert client.get(f"{M}/resolve/", {"stage": "staging"}).status_code == 404
    assert client.get(f"{M}/resolve/", {"alias": "nope"}).json()["code"] == "alias_not_found"
    assert client.get(f"{M}/resolve/").status_code == 400


def test_aliases_endpoints(api, data_scientist, registered_model):
    make_version(data_scientist, registered_model)
    make_version(data_scientist, registered_model)
    client = api(data_scientist)
    assert (
        client.put(f"{M}/aliases/champion/", {"version": 1}, format="json").json()["version"] == 1
    )
    assert (
        client.put(f"{M}/aliases/champion/", {"version": 2}, format="json").json()["version"] == 2
    )
    listed = client.get(f"{M}/aliases/").json()
    assert [(a["name"], a["version"]) for a in listed] == [("champion", 2)]
    assert (
        client.put(f"{M}/aliases/latest/", {"version": 1}, format="json").json()["code"]
        == "invalid_alias"
    )
    assert client.put(f"{M}/aliases/x/", {"version": 9}, format="json").status_code == 404
    assert client.delete(f"{M}/aliases/champion/").status_code == 204
    assert client.delete(f"{M}/aliases/champion/").status_code == 404


def test_version_search_across_models(api, data_scientist, outsider):
    a, b = make_model(data_scientist, "a"), make_model(data_scientist, "b")
    make_version(data_scientist, a, metrics={"auc": 0.95})
    make_version(data_scientist, b, metrics={"auc": 0.7})
    permissions.grant(Perm.VIEW, b, user=outsider)
    found = api(data_scientist).get("/api/v1/versions/", {"q": "metrics.auc > 0.9"}).json()
    assert [(v["name"], v["version"]) for v in found["results"]] == [("a", 1)]
    mine = api(outsider).get("/api/v1/versions/").json()
    assert [v["name"] for v in mine["results"]] == ["b"]


@pytest.mark.parametrize("rows", [1, 25])
def test_version_list_query_count_is_constant(
    api, data_scientist, registered_model, rows, django_assert_max_num_queries
):
    for _ in range(rows):
        v = make_version(
            data_scientist, registered_model, tags={"a": "b"}, metrics={"auc": 0.1, "f1": 0.2}
        )
        make_artifact(data_scientist, v, f"bytes{v.version}".encode())
    client = api(data_scientist)
    with django_assert_max_num_queries(12):
        r = client.get(f"{M}/versions/", {"page_size": 100})
    assert len(r.json()["results"]) == rows


def test_validate_rejects_a_ragged_dataframe_split(api, data_scientist, registered_model):
    make_version(data_scientist, registered_model, signature=SIGNATURE)
    r = api(data_scientist).post(
        f"{M}/versions/1/validate/",
        {"dataframe_split": {"columns": ["age", "income"], "data": [[1, 2.0], [3]]}},
        format="json",
    )
    assert r.status_code == 400 and r.json()["code"] == "invalid_payload"
