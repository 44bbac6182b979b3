from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User

from core import permissions
from core.models import AuditEvent
from core.permissions import Perm
from registry import services
from registry.models import CodeRef
from tests.factories import actor_for, make_model, make_version, superuser

pytestmark = pytest.mark.django_db


def test_full_lineage_chain_answers_which_models_used_a_dataset(api, data_scientist, outsider):
    client = api(data_scientist)
    source = client.post(
        "/api/v1/feature-sources/", {"name": "dwh.customers", "kind": "table"}, format="json"
    ).json()
    feature = client.post(
        "/api/v1/features/", {"source": source["id"], "name": "age", "dtype": "int"}, format="json"
    ).json()
    dataset = client.post(
        "/api/v1/datasets/",
        {
            "name": "customers",
            "version": "2026-10",
            "digest": "sha256:ab",
            "features": [feature["id"]],
        },
        format="json",
    ).json()
    assert dataset["features"] == [feature["id"]]
    code = client.post(
        "/api/v1/code-refs/",
        {"repository": "git@x:ml.git", "commit": "abc123", "path": "train.py"},
        format="json",
    ).json()
    run = client.post(
        "/api/v1/training-runs/",
        {
            "run_id": "run-1",
            "code_ref": code["id"],
            "datasets": [{"dataset": dataset["id"], "role": "training"}],
            "started_at": "2026-11-01T10:00:00Z",
            "ended_at": "2026-11-01T11:00:00Z",
        },
        format="json",
    )
    assert run.status_code == 201, run.content
    secret, shared = make_model(data_scientist, "secret"), make_model(data_scientist, "shared")
    for name in ("secret", "shared"):
        r = client.post(
            f"/api/v1/models/{name}/versions/", {"training_run": "run-1"}, format="json"
        )
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
    assert (
        AuditEvent.objects.filter(
            action__in=[
                "feature_source.created",
                "feature.created",
                "dataset.created",
                "code_ref.created",
                "training_run.created",
            ]
        ).count()
        == 5
    )


def test_lineage_errors(api, data_scientist, viewer):
    client = api(data_scientist)
    client.post("/api/v1/datasets/", {"name": "d"}, format="json")
    dup = client.post("/api/v1/datasets/", {"name": "d"}, format="json")
    assert dup.status_code == 409 and dup.json()["code"] == "dataset_exists"
    backwards = client.post(
        "/api/v1/training-runs/",
        {"run_id": "r", "started_at": "2026-11-02T00:00:00Z", "ended_at": "2026-11-01T00:00:00Z"},
        format="json",
    )
    assert backwards.status_code == 400 and "ended_at" in backwards.json()["fields"]
    assert api(viewer).post("/api/v1/datasets/", {"name": "x"}, format="json").status_code == 403
    assert client.get("/api/v1/datasets/999/").json()["code"] == "dataset_not_found"
    bad_fk = client.post("/api/v1/features/", {"source": 999, "name": "x"}, format="json")
    assert bad_fk.status_code == 400 and "source" in bad_fk.json()["fields"]


def test_deployments_record_and_retire(api, data_scientist, viewer):
    make_model(data_scientist, "m")
    client = api(data_scientist)
    client.post("/api/v1/models/m/versions/", {}, format="json")
    r = client.post(
        "/api/v1/deployments/",
        {"name": "m", "version": 1, "environment": "staging", "target": "https://serve/m"},
        format="json",
    )
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
    missing = client.post(
        "/api/v1/deployments/",
        {"name": "m", "version": 5, "environment": "staging", "target": "t"},
        format="json",
    )
    assert missing.status_code == 404


def test_catalogue_detail_endpoints(api, data_scientist):
    client = api(data_scientist)
    source = client.post("/api/v1/feature-sources/", {"name": "s"}, format="json").json()
    feature = client.post(
        "/api/v1/features/", {"source": source["id"], "name": "f"}, format="json"
    ).json()
    code = client.post(
        "/api/v1/code-refs/", {"repository": "r", "commit": "c"}, format="json"
    ).json()
    for url, body in (
        (f"/api/v1/feature-sources/{source['id']}/", source),
        (f"/api/v1/features/{feature['id']}/", feature),
        (f"/api/v1/code-refs/{code['id']}/", code),
    ):
        assert client.get(url).json() == body
    assert client.get("/api/v1/features/999/").json()["code"] == "feature_not_found"
    listed = client.get("/api/v1/feature-sources/").json()
    assert [s["name"] for s in listed["results"]] == ["s"]
    bad_kind = client.post("/api/v1/feature-sources/", {"name": "x", "kind": "lake"}, format="json")
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json()["fields"]


# --- Lineage follows the gate -----------------------------------------------------------------

KINDS = {
    "feature-sources": "feature_source",
    "features": "feature",
    "datasets": "dataset",
    "code-refs": "code_ref",
    "training-runs": "training_run",
}


def _chain(name: str, *, code: CodeRef | None = None) -> dict[str, Any]:
    """Feature source → feature → dataset → training run (with code), named after `name`."""
    act = actor_for(superuser(), "cli")
    source = services.feature_source_create(actor=act, name=f"{name}-source")
    feature = services.logical_feature_create(actor=act, source=source, name=f"{name}-feature")
    dataset = services.dataset_create(actor=act, name=f"{name}-data", features=[feature])
    code = code or services.code_ref_create(
        actor=act, repository=f"git@x:{name}.git", commit="c" * 40
    )
    run = services.training_run_create(
        actor=act,
        run_id=f"{name}-run",
        code_ref=code,
        datasets=[(dataset, "training")],
        params={"owner": name},
    )
    return {
        "feature-sources": source.pk,
        "features": feature.pk,
        "datasets": dataset.pk,
        "code-refs": code.pk,
        "training-runs": run.pk,
        "run": run,
        "dataset": dataset,
    }


@pytest.fixture
def world(data_scientist, outsider) -> dict[str, Any]:
    """churn (granted to the outsider) and fraud-detector (not), each trained from its own
    chain; a third chain leads to no version at all."""
    churn, fraud = make_model(data_scientist, "churn"), make_model(data_scientist, "fraud-detector")
    chains = {
        "churn": _chain("churn"),
        "fraud": _chain("fraud-detector"),
        "orphan": _chain("orphan"),
    }
    make_version(data_scientist, churn, training_run=chains["churn"]["run"])
    make_version(data_scientist, fraud, training_run=chains["fraud"]["run"])
    permissions.grant(Perm.VIEW, churn, user=outsider)
    return {"churn_model": churn, "fraud_model": fraud, **chains}


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return sorted(row["id"] for row in response.json()["results"])


@pytest.mark.parametrize("kind", KINDS)
def test_lineage_lists_show_only_records_leading_to_a_visible_version(
    api, world, outsider, viewer, kind
):
    mine = api(outsider).get(f"/api/v1/{kind}/", {"page_size": 100})
    assert _ids(mine) == [world["churn"][kind]]
    assert b"fraud" not in mine.content and b"orphan" not in mine.content
    # A role's view grant is the whole catalogue, records linked to no version included.
    everything = api(viewer).get(f"/api/v1/{kind}/", {"page_size": 100})
    assert _ids(everything) == sorted(world[c][kind] for c in ("churn", "fraud", "orphan"))


@pytest.mark.parametrize("kind", KINDS)
def test_lineage_details_of_other_models_are_not_found(api, world, outsider, viewer, kind):
    client = api(outsider)
    assert client.get(f"/api/v1/{kind}/{world['churn'][kind]}/").status_code == 200
    for chain in ("fraud", "orphan"):
        r = client.get(f"/api/v1/{kind}/{world[chain][kind]}/")
        assert r.status_code == 404 and r.json()["code"] == f"{KINDS[kind]}_not_found"
        assert api(viewer).get(f"/api/v1/{kind}/{world[chain][kind]}/").status_code == 200
    assert api().get(f"/api/v1/{kind}/{world['churn'][kind]}/").status_code in (401, 403)


def test_a_dataset_of_another_model_does_not_say_which_versions_used_it(api, world, outsider):
    client = api(outsider)
    hidden = client.get(f"/api/v1/datasets/{world['fraud']['datasets']}/model-versions/")
    assert hidden.status_code == 404 and hidden.json()["code"] == "dataset_not_found"
    mine = client.get(f"/api/v1/datasets/{world['churn']['datasets']}/model-versions/").json()
    assert [(v["name"], v["version"]) for v in mine["results"]] == [("churn", 1)]


def test_shared_records_leave_out_links_to_versions_you_may_not_see(
    api, data_scientist, world, outsider
):
    # fraud-detector v2 was trained by churn's run, on churn's data and code.
    make_version(data_scientist, world["fraud_model"], training_run=world["churn"]["run"])
    client = api(outsider)
    run = client.get(f"/api/v1/training-runs/{world['churn']['training-runs']}/").json()
    assert run["model_versions"] == [{"name": "churn", "version": 1}]
    assert run["params"] == {"owner": "churn"}
    used = client.get(f"/api/v1/datasets/{world['churn']['datasets']}/model-versions/")
    assert [v["name"] for v in used.json()["results"]] == ["churn"]
    for kind in KINDS:  # listed once, not once per version behind it
        assert _ids(client.get(f"/api/v1/{kind}/")) == [world["churn"][kind]]
    listing = client.get("/api/v1/training-runs/").content
    assert b"fraud-detector" not in listing
    both = api(data_scientist).get(f"/api/v1/training-runs/{world['churn']['training-runs']}/")
    assert both.json()["model_versions"] == [
        {"name": "churn", "version": 1},
        {"name": "fraud-detector", "version": 2},
    ]


def test_a_code_ref_shared_by_two_models_shows_only_your_runs(api, data_scientist, world, outsider):
    shared = CodeRef.objects.get(pk=world["churn"]["code-refs"])
    other = _chain("other", code=shared)
    make_version(data_scientist, world["fraud_model"], training_run=other["run"])
    client = api(outsider)
    assert _ids(client.get("/api/v1/code-refs/")) == [shared.pk]
    assert _ids(client.get("/api/v1/training-runs/")) == [world["churn"]["training-runs"]]
    assert client.get(f"/api/v1/training-runs/{other['training-runs']}/").status_code == 404


def test_lineage_of_a_deleted_version_is_hidden(api, world, outsider, viewer):
    services.version_delete(
        actor=actor_for(superuser()), version=world["churn_model"].versions.get()
    )
    for kind in KINDS:
        assert _ids(api(outsider).get(f"/api/v1/{kind}/")) == []
        assert api(outsider).get(f"/api/v1/{kind}/{world['churn'][kind]}/").status_code == 404
        assert api(viewer).get(f"/api/v1/{kind}/{world['churn'][kind]}/").status_code == 200


@pytest.mark.parametrize("rows", [1, 8])
@pytest.mark.parametrize("who", ["per_model", "role"])
def test_lineage_lists_have_a_constant_number_of_queries(
    api, data_scientist, outsider, viewer, django_assert_max_num_queries, rows, who
):
    registered_model = make_model(data_scientist, "churn")
    permissions.grant(Perm.VIEW, registered_model, user=outsider)
    for n in range(rows):
        chain = _chain(f"c{n}")
        make_version(data_scientist, registered_model, training_run=chain["run"])
    user = outsider if who == "per_model" else viewer
    # Each request loads its user afresh (no grants remembered): one query for its roles'
    # permissions, then the rows and their links.
    budget = {
        "feature-sources": 2,
        "features": 2,
        "datasets": 3,
        "code-refs": 2,
        "training-runs": 4,
    }
    for kind, queries in budget.items():
        client = api(User.objects.get(pk=user.pk))
        with django_assert_max_num_queries(queries):
            r = client.get(f"/api/v1/{kind}/", {"page_size": 100})
        assert len(r.json()["results"]) == rows, kind
    client = api(User.objects.get(pk=user.pk))
    with django_assert_max_num_queries(4):
        r = client.get(f"/api/v1/datasets/{chain['datasets']}/model-versions/")
    assert len(r.json()["results"]) == 1


@pytest.fixture
def recorder(outsider, world) -> Any:
    """May record lineage (global add_* permissions) and change churn, but holds no role's
    view grant: sees only churn's lineage."""
    outsider.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="registry",
            codename__in=[
                "add_featuresource",
                "add_logicalfeature",
                "add_dataset",
                "add_coderef",
                "add_trainingrun",
            ],
        )
    )
    permissions.grant(Perm.CHANGE, world["churn_model"], user=outsider)
    return outsider


def test_recording_lineage_links_only_records_the_author_can_see(api, world, recorder):
    client = api(recorder)
    fraud, churn = world["fraud"], world["churn"]
    refused = [
        ("features", {"source": fraud["feature-sources"], "name": "x"}, "source"),
        ("datasets", {"name": "x", "features": [fraud["features"]]}, "features"),
        ("training-runs", {"run_id": "x", "code_ref": fraud["code-refs"]}, "code_ref"),
        (
            "training-runs",
            {"run_id": "x", "datasets": [{"dataset": fraud["datasets"]}]},
            "datasets",
        ),
        (
            "training-runs",
            {"run_id": "x", "datasets": [{"dataset": world["orphan"]["datasets"]}]},
            "datasets",
        ),
    ]
    for kind, body, field in refused:
        r = client.post(f"/api/v1/{kind}/", body, format="json")
        assert r.status_code == 400 and field in r.json()["fields"], (kind, r.content)
        assert b"fraud" not in r.content
    r = client.post(
        "/api/v1/training-runs/",
        {
            "run_id": "churn-retrain",
            "code_ref": churn["code-refs"],
            "datasets": [{"dataset": churn["datasets"], "role": "training"}],
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    assert r.json()["datasets"] == [
        {"id": churn["datasets"], "name": "churn-data", "version": "1", "role": "training"}
    ]
    assert r.json()["model_versions"] == []
    # Linked to no version yet: shown once to its author, then only through a version.
    assert client.get(f"/api/v1/training-runs/{r.json()['id']}/").status_code == 404
    assert (
        AuditEvent.objects.filter(
            action="training_run.created", actor_label=recorder.username
        ).count()
        == 1
    )


def test_linking_a_training_run_needs_change_on_the_version(api, world, outsider, viewer):
    body = {"training_run": "churn-run"}
    # The outsider may view churn only; the viewer's role views everything, changes nothing.
    for user, status in ((outsider, 403), (viewer, 403)):
        assert (
            api(user)
            .patch("/api/v1/models/churn/versions/1/", {"training_run": None}, format="json")
            .status_code
            == status
        )
        assert (
            api(user).post("/api/v1/models/churn/versions/", body, format="json").status_code
            == status
        )
    assert (
        api(outsider)
        .patch("/api/v1/models/fraud-detector/versions/1/", body, format="json")
        .status_code
        == 404
    )
    assert world["churn_model"].versions.get().training_run_id == world["churn"]["training-runs"]
    assert not AuditEvent.objects.filter(
        action__in=["version.updated", "version.created"], actor_label=outsider.username
    ).exists()


def test_linking_a_training_run_of_another_model_is_refused(api, world, recorder):
    r = api(recorder).patch(
        "/api/v1/models/churn/versions/1/", {"training_run": "fraud-detector-run"}, format="json"
    )
    assert r.status_code == 400 and "training_run" in r.json()["fields"]
    leaked = api(recorder).get(f"/api/v1/training-runs/{world['fraud']['training-runs']}/")
    assert leaked.status_code == 404


@pytest.mark.parametrize(
    "kind", ["featuresource", "logicalfeature", "dataset", "coderef", "trainingrun"]
)
def test_the_admin_shows_staff_only_lineage_of_models_they_may_view(client, world, outsider, kind):
    """A staff account that is no superuser, with Django's view permission on every lineage
    table and a per-model grant on churn only, sees churn's chain in the admin, nothing else."""
    outsider.is_staff = True
    outsider.save(update_fields=["is_staff"])
    outsider.user_permissions.add(
        *Permission.objects.filter(  # a global view of models
            content_type__app_label="registry",
            codename__startswith="view_",  # is the catalogue
        ).exclude(codename="view_registeredmodel")
    )
    client.force_login(outsider)
    html = client.get(f"/admin/registry/{kind}/").content.decode()
    assert "churn" in html and "fraud-detector" not in html and "orphan" not in html
    plural = {
        "featuresource": "feature-sources",
        "logicalfeature": "features",
        "dataset": "datasets",
        "coderef": "code-refs",
        "trainingrun": "training-runs",
    }
    hidden = world["fraud"][plural[kind]]
    assert client.get(f"/admin/registry/{kind}/{hidden}/change/").status_code in (302, 404)


def test_reading_a_hidden_lineage_record_is_a_404_on_the_record(api, world, outsider):
    """Attack 12: a run of a model she cannot see answers 404, like a missing one, and the
    refusal is in the audit log (a missing record writes nothing)."""
    hidden = world["fraud"]["training-runs"]
    r = api(outsider).get(f"/api/v1/training-runs/{hidden}/")
    assert r.status_code == 404 and r.json()["code"] == "training_run_not_found"
    event = AuditEvent.objects.get(action="access.refused")
    assert event.actor == outsider and event.registered_model_id is None
    assert event.details["wanted"] == f"view training_run {hidden}"
    assert api(outsider).get("/api/v1/training-runs/999999/").status_code == 404
    assert AuditEvent.objects.filter(action="access.refused").count() == 1
