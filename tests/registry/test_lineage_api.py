from __future__ import annotations

import pytest

from governance import permissions
from governance.models import AuditEvent
from governance.permissions import Perm
from tests.factories import make_model

pytestmark = pytest.mark.django_db


def test_full_lineage_chain_answers_which_models_used_a_dataset(api, data_scientist, outsider):
    client = api(data_scientist)
    source = client.post("/api/v1/feature-sources/", {"name": "dwh.customers", "kind": "table"},
                         format="json").json()
    feature = client.post("/api/v1/features/", {"source": source["id"], "name": "age",
                                                "dtype": "int"}, format="json").json()
    dataset = client.post("/api/v1/datasets/", {"name": "customers", "version": "2026-10",
                                                "digest": "sha256:ab", "features": [
                                                    feature["id"]]}, format="json").json()
    assert dataset["features"] == [feature["id"]]
    code = client.post("/api/v1/code-refs/", {"repository": "git@x:ml.git", "commit": "abc123",
                                              "path": "train.py"}, format="json").json()
    run = client.post("/api/v1/training-runs/", {
        "run_id": "run-1", "code_ref": code["id"],
        "datasets": [{"dataset": dataset["id"], "role": "training"}],
        "started_at": "2026-11-01T10:00:00Z", "ended_at": "2026-11-01T11:00:00Z"},
        format="json")
    assert run.status_code == 201, run.content
    secret, shared = make_model(data_scientist, "secret"), make_model(data_scientist, "shared")
    for name in ("secret", "shared"):
        r = client.post(f"/api/v1/models/{name}/versions/", {"training_run": "run-1"},
                        format="json")
        assert r.json()["training_run"] == "run-1"
    permissions.grant(Perm.VIEW, shared, user=outsider)
    mine = client.get(f"/api/v1/datasets/{dataset['id']}/model-versions/").json()["results"]
    assert sorted(v["name"] for v in mine) == ["secret", "shared"]
    theirs = api(outsider).get(f"/api/v1/datasets/{dataset['id']}/model-versions/").json()
    assert [v["name"] for v in theirs["results"]] == ["shared"]
    run_view = api(outsider).get(f"/api/v1/training-runs/{run.json()['id']}/").json()
    assert run_view["model_versions"] == [{"name": "shared", "version": 1}]
    assert run_view["datasets"][0]["role"] == "training"
    assert secret.pk
    assert AuditEvent.objects.filter(action__in=[
        "feature_source.created", "feature.created", "dataset.created", "code_ref.created",
        "training_run.created"]).count() == 5


def test_lineage_errors(api, data_scientist, viewer):
    client = api(data_scientist)
    client.post("/api/v1/datasets/", {"name": "d"}, format="json")
    dup = client.post("/api/v1/datasets/", {"name": "d"}, format="json")
    assert dup.status_code == 409 and dup.json()["code"] == "dataset_exists"
    backwards = client.post("/api/v1/training-runs/", {
        "run_id": "r", "started_at": "2026-11-02T00:00:00Z",
        "ended_at": "2026-11-01T00:00:00Z"}, format="json")
    assert backwards.status_code == 400 and "ended_at" in backwards.json()["fields"]
    assert api(viewer).post("/api/v1/datasets/", {"name": "x"}, format="json").status_code == 403
    assert client.get("/api/v1/datasets/999/").json()["code"] == "dataset_not_found"
    bad_fk = client.post("/api/v1/features/", {"source": 999, "name": "x"}, format="json")
    assert bad_fk.status_code == 400 and "source" in bad_fk.json()["fields"]


def test_deployments_record_and_retire(api, data_scientist, viewer):
    make_model(data_scientist, "m")
    client = api(data_scientist)
    client.post("/api/v1/models/m/versions/", {}, format="json")
    r = client.post("/api/v1/deployments/", {"name": "m", "version": 1, "environment": "prod",
                                             "target": "https://serve/m"}, format="json")
    assert r.status_code == 201 and r.json()["status"] == "active"
    pk = r.json()["id"]
    assert api(viewer).post(f"/api/v1/deployments/{pk}/retire/").status_code == 403
    retired = client.post(f"/api/v1/deployments/{pk}/retire/")
    assert retired.json()["status"] == "retired" and retired.json()["retired_at"]
    again = client.post(f"/api/v1/deployments/{pk}/retire/")
    assert again.status_code == 409 and again.json()["code"] == "deployment_retired"
    listed = client.get("/api/v1/deployments/", {"status": "retired"}).json()["results"]
    assert [d["id"] for d in listed] == [pk]
    assert client.get("/api/v1/deployments/", {"status": "nope"}).status_code == 400
    missing = client.post("/api/v1/deployments/", {"name": "m", "version": 5,
                                                   "environment": "prod", "target": "t"},
                          format="json")
    assert missing.status_code == 404


def test_catalogue_detail_endpoints(api, data_scientist):
    client = api(data_scientist)
    source = client.post("/api/v1/feature-sources/", {"name": "s"}, format="json").json()
    feature = client.post("/api/v1/features/", {"source": source["id"], "name": "f"},
                          format="json").json()
    code = client.post("/api/v1/code-refs/", {"repository": "r", "commit": "c"},
                       format="json").json()
    for url, body in ((f"/api/v1/feature-sources/{source['id']}/", source),
                      (f"/api/v1/features/{feature['id']}/", feature),
                      (f"/api/v1/code-refs/{code['id']}/", code)):
        assert client.get(url).json() == body
    assert client.get("/api/v1/features/999/").json()["code"] == "feature_not_found"
    listed = client.get("/api/v1/feature-sources/").json()
    assert [s["name"] for s in listed["results"]] == ["s"]
    bad_kind = client.post("/api/v1/feature-sources/", {"name": "x", "kind": "lake"},
                           format="json")
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json()["fields"]
