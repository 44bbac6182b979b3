"""POST /api/v1/lineage/register/ and services.lineage_register: one idempotent call records a
training run with its code reference, datasets (with roles), features and feature sources,
and links the versions it produced, by natural keys."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection

from core import permissions
from core.errors import Conflict, ValidationFailed
from core.models import AuditEvent
from core.permissions import Perm
from registry import services
from registry.models import (
    CodeRef,
    Dataset,
    FeatureSource,
    LogicalFeature,
    ModelVersion,
    TrainingRun,
    TrainingRunDataset,
)
from registry.services.lineage_bulk import (
    MAX_DATASETS,
    MAX_FEATURES,
    MAX_VERSIONS,
    DatasetSpec,
    FeatureSpec,
    RunSpec,
    SourceSpec,
    VersionSpec,
)
from tests.concurrency import all_at_once
from tests.factories import actor_for, make_model, make_version, place, superuser

URL = "/api/v1/lineage/register/"
TABLES = (
    FeatureSource,
    LogicalFeature,
    Dataset,
    Dataset.features.through,
    CodeRef,
    TrainingRun,
    TrainingRunDataset,
)
# Refused accesses are audited by the edge after the rollback; every other event counts.
REFUSALS = ("access.refused", "gate.refused")
CREATED_EVENTS = [
    "feature_source.created",
    "feature.created",
    "dataset.created",
    "code_ref.created",
    "training_run.created",
    "training_run.datasets_linked",
    "version.updated",
]


def _payload() -> dict[str, Any]:
    return {
        "run": {
            "run_id": "r-1",
            "name": "nightly",
            "params": {"lr": 0.1, "depth": 6},
            "status": "finished",
            "started_at": "2026-11-01T10:00:00Z",
            "ended_at": "2026-11-01T11:00:00Z",
        },
        "code_ref": {"repository": "git@x:ml.git", "commit": "abc123", "path": "train.py"},
        "feature_sources": [{"name": "warehouse.events", "kind": "table", "uri": "s3://dwh/ev"}],
        "datasets": [
            {
                "name": "events",
                "version": "3",
                "uri": "s3://data/events/3",
                "digest": "sha256:aa",
                "role": "training",
                "features": [
                    {"source": "warehouse.events", "name": "clicks", "dtype": "int"},
                    {"source": "warehouse.events", "name": "views", "dtype": "int"},
                ],
            },
            {
                "name": "events-holdout",
                "version": "3",
                "role": "validation",
                "features": [{"source": "warehouse.events", "name": "clicks", "dtype": "int"}],
            },
        ],
        "model_versions": [{"name": "churn", "version": 1}],
    }


def _counts() -> dict[str, int]:
    counts = {table.__name__: table.objects.count() for table in TABLES}
    counts["AuditEvent"] = AuditEvent.objects.exclude(action__in=REFUSALS).count()
    counts["linked versions"] = ModelVersion.objects.filter(training_run__isnull=False).count()
    return counts


def _events() -> dict[str, int]:
    return {action: AuditEvent.objects.filter(action=action).count() for action in CREATED_EVENTS}


@pytest.fixture
def churn(data_scientist) -> Any:
    registered_model = make_model(data_scientist, "churn")
    make_version(data_scientist, registered_model)
    return registered_model


@pytest.fixture
def post(api, data_scientist) -> Any:
    client = api(data_scientist)

    def send(body: Any) -> Any:
        return client.post(URL, body, format="json")

    return send


def _registered(post: Any) -> dict[str, Any]:
    first = post(_payload())
    assert first.status_code == 201, first.content
    return first.json()


# --- Happy path and idempotency -------------------------------------------------------------


@pytest.mark.django_db
def test_register_records_every_record_and_links_the_version(post, churn):
    body = _registered(post)
    assert body["changed"] is True
    run = TrainingRun.objects.get(run_id="r-1")
    assert body["training_run"] == {"id": run.pk, "run_id": "r-1", "created": True}
    assert body["code_ref"] == {
        "id": run.code_ref_id,
        "repository": "git@x:ml.git",
        "commit": "abc123",
        "path": "train.py",
        "created": True,
    }
    assert [(s["name"], s["created"]) for s in body["feature_sources"]] == [
        ("warehouse.events", True)
    ]
    assert [(f["source"], f["name"], f["created"]) for f in body["features"]] == [
        ("warehouse.events", "clicks", True),
        ("warehouse.events", "views", True),
    ]
    assert [(d["name"], d["role"], d["created"], d["linked"]) for d in body["datasets"]] == [
        ("events", "training", True, True),
        ("events-holdout", "validation", True, True),
    ]
    version = churn.versions.get()
    assert body["model_versions"] == [
        {"id": version.pk, "name": "churn", "version": 1, "created": False, "linked": True}
    ]
    assert version.training_run_id == run.pk
    assert run.params == {"lr": 0.1, "depth": 6} and run.name == "nightly"
    events = Dataset.objects.get(name="events")
    assert (events.uri, events.digest) == ("s3://data/events/3", "sha256:aa")
    assert sorted(events.features.values_list("name", flat=True)) == ["clicks", "views"]
    assert sorted(run.dataset_links.values_list("dataset__name", "role")) == [
        ("events", "training"),
        ("events-holdout", "validation"),
    ]
    assert FeatureSource.objects.get().uri == "s3://dwh/ev"
    assert _events() == {
        "feature_source.created": 1,
        "feature.created": 2,
        "dataset.created": 2,
        "code_ref.created": 1,
        "training_run.created": 1,
        "training_run.datasets_linked": 0,
        "version.updated": 1,
    }
    update = AuditEvent.objects.get(action="version.updated")
    assert update.details["changes"]["training_run"]["to"] == "nightly"


@pytest.mark.django_db
def test_repeating_the_call_changes_nothing(post, churn):
    first = _registered(post)
    before = _counts()
    again = post(_payload())
    assert again.status_code == 200, again.content
    body = again.json()
    assert body["changed"] is False
    assert _counts() == before
    records = [
        body["training_run"],
        body["code_ref"],
        *body["feature_sources"],
        *body["features"],
        *body["datasets"],
    ]
    assert not any(r["created"] for r in records)
    assert not any(d["linked"] for d in body["datasets"])
    assert not any(v["linked"] for v in body["model_versions"])
    for kind in ("feature_sources", "features", "datasets", "model_versions"):
        assert [r["id"] for r in body[kind]] == [r["id"] for r in first[kind]]


@pytest.mark.django_db
def test_attributes_left_out_are_not_compared(post, churn):
    _registered(post)
    before = _counts()
    minimal = {
        "run": {"run_id": "r-1"},
        "datasets": [{"name": "events", "version": "3"}],
        "model_versions": [{"name": "churn", "version": 1}],
    }
    r = post(minimal)
    assert r.status_code == 200, r.content
    assert r.json()["code_ref"] is None
    assert _counts() == before


@pytest.mark.django_db
@pytest.mark.parametrize("features", [1, 40])
def test_a_repeat_costs_a_bounded_number_of_queries(
    api, data_scientist, churn, django_assert_max_num_queries, features
):
    body = _payload()
    body["datasets"][0]["features"] = [
        {"source": "warehouse.events", "name": f"f{i}", "dtype": "int"} for i in range(features)
    ]
    body["datasets"] = body["datasets"][:1]
    assert api(data_scientist).post(URL, body, format="json").status_code == 201
    client = api(User.objects.get(pk=data_scientist.pk))  # no grants remembered
    # The user's global permissions, then one query per kind of record (the run, the
    # models, the versions, sources, features, datasets, their features, the code
    # reference, the run's links), plus the savepoint: the same for 1 feature or 40.
    with django_assert_max_num_queries(12):
        r = client.post(URL, body, format="json")
    assert r.status_code == 200, r.content


@pytest.mark.django_db
def test_partial_overlap_reuses_existing_records_and_creates_only_new_ones(
    post, churn, data_scientist
):
    first = _registered(post)
    make_version(data_scientist, churn)
    before, events_before = _counts(), _events()
    body = _payload()
    body["run"] = {"run_id": "r-2", "params": {"lr": 0.05}}
    body["datasets"] = [
        {"name": "events", "version": "3", "role": "training"},  # features left out: reused
        {
            "name": "events",
            "version": "4",
            "role": "training",
            "features": [
                {"source": "warehouse.events", "name": "clicks", "dtype": "int"},
                {"source": "warehouse.events", "name": "scrolls", "dtype": "float"},
            ],
        },
    ]
    body["model_versions"] = [{"name": "churn", "version": 2}]
    r = post(body)
    assert r.status_code == 201, r.content
    out = r.json()
    assert out["training_run"]["created"] is True
    assert out["code_ref"] == {**first["code_ref"], "created": False}
    assert [(s["id"], s["created"]) for s in out["feature_sources"]] == [
        (first["feature_sources"][0]["id"], False)
    ]
    clicks = next(f for f in first["features"] if f["name"] == "clicks")
    assert [(f["name"], f["created"]) for f in out["features"]] == [
        ("clicks", False),
        ("scrolls", True),
    ]
    assert out["features"][0]["id"] == clicks["id"]
    assert [(d["version"], d["created"], d["linked"]) for d in out["datasets"]] == [
        ("3", False, True),
        ("4", True, True),
    ]
    after = _counts()
    assert after["FeatureSource"] == before["FeatureSource"]
    assert after["CodeRef"] == before["CodeRef"]
    assert after["LogicalFeature"] == before["LogicalFeature"] + 1
    assert after["Dataset"] == before["Dataset"] + 1
    assert after["TrainingRun"] == before["TrainingRun"] + 1
    events = _events()
    assert {k: events[k] - events_before[k] for k in events} == {
        "feature_source.created": 0,
        "feature.created": 1,
        "dataset.created": 1,
        "code_ref.created": 0,
        "training_run.created": 1,
        "training_run.datasets_linked": 0,
        "version.updated": 1,
    }
    assert churn.versions.get(version=2).training_run.run_id == "r-2"
    assert churn.versions.get(version=1).training_run.run_id == "r-1"


@pytest.mark.django_db
def test_an_existing_run_gains_missing_dataset_links_and_keeps_the_others(post, churn):
    _registered(post)
    body = _payload()
    body["datasets"] = [
        {"name": "events", "version": "3", "role": "training"},
        {"name": "events", "version": "3", "role": "test"},
    ]
    r = post(body)
    assert r.status_code == 201, r.content
    assert [(d["role"], d["linked"]) for d in r.json()["datasets"]] == [
        ("training", False),
        ("test", True),
    ]
    assert r.json()["training_run"]["created"] is False
    run = TrainingRun.objects.get(run_id="r-1")
    assert sorted(run.dataset_links.values_list("dataset__name", "role")) == [
        ("events", "test"),
        ("events", "training"),
        ("events-holdout", "validation"),
    ]
    event = AuditEvent.objects.get(action="training_run.datasets_linked")
    events = Dataset.objects.get(name="events")
    assert event.details == {"run_id": "r-1", "datasets": [[events.pk, "test"]]}
    assert post(body).status_code == 200


@pytest.mark.django_db
def test_the_service_reports_created_and_existing_ids(data_scientist, churn):
    act = actor_for(data_scientist)
    source = services.feature_source_create(actor=act, name="s")
    kwargs: dict[str, Any] = {
        "run": RunSpec(run_id="svc"),
        "feature_sources": [SourceSpec(name="s"), SourceSpec(name="t", kind="stream")],
        "datasets": [
            DatasetSpec(name="d", features=[FeatureSpec(source="t", name="x", dtype="str")])
        ],
        "model_versions": [VersionSpec(name="churn", version=1)],
    }
    registration = services.lineage_register(actor=act, **kwargs)
    assert registration.changed
    assert registration.existing["feature_source"] == [source.pk]
    assert registration.created["feature_source"] == [FeatureSource.objects.get(name="t").pk]
    assert registration.created["training_run"] == [TrainingRun.objects.get(run_id="svc").pk]
    assert registration.linked_versions == [churn.versions.get().pk]
    assert registration.code_ref is None
    again = services.lineage_register(actor=act, **kwargs)
    assert not again.changed
    assert not any(again.created.values())
    assert again.existing["dataset"] == registration.created["dataset"]


# --- Mismatches: 409, nothing written -------------------------------------------------------


def _change(body: dict[str, Any], what: str) -> tuple[str, dict[str, Any]]:
    """Describe one recorded thing differently; returns the field the refusal names and the
    record it names."""
    if what == "source kind":
        body["feature_sources"][0]["kind"] = "stream"
        return "kind", {"kind": "feature_source", "name": "warehouse.events"}
    if what == "source uri":
        body["feature_sources"][0]["uri"] = "s3://elsewhere"
        return "uri", {"kind": "feature_source", "name": "warehouse.events"}
    if what == "feature dtype":
        body["datasets"][0]["features"][0]["dtype"] = "float"
        body["datasets"][1]["features"][0]["dtype"] = "float"
        return "dtype", {"kind": "feature", "source": "warehouse.events", "name": "clicks"}
    dataset = {"kind": "dataset", "name": "events", "version": "3"}
    if what == "dataset digest":
        body["datasets"][0]["digest"] = "sha256:bb"
        return "digest", dataset
    if what == "dataset uri":
        body["datasets"][0]["uri"] = ""
        return "uri", dataset
    if what == "dataset description":
        body["datasets"][0]["description"] = "now described"
        return "description", dataset
    if what == "dataset features":
        body["datasets"][0]["features"].pop()
        return "features", dataset
    run = {"kind": "training_run", "run_id": "r-1"}
    if what == "run code ref":
        body["code_ref"]["commit"] = "def456"
        return "code_ref", run
    if what == "run without code ref":
        body["code_ref"] = None
        return "code_ref", run
    if what == "run params":
        body["run"]["params"] = {"lr": 0.2}
        return "params", run
    if what == "run status":
        body["run"]["status"] = "failed"
        return "status", run
    if what == "run start":
        body["run"]["started_at"] = None
        return "started_at", run
    raise AssertionError(what)


MISMATCHES = [
    "source kind",
    "source uri",
    "feature dtype",
    "dataset digest",
    "dataset uri",
    "dataset description",
    "dataset features",
    "run code ref",
    "run without code ref",
    "run params",
    "run status",
    "run start",
]


@pytest.mark.django_db
@pytest.mark.parametrize("what", MISMATCHES)
def test_a_record_described_differently_is_refused_and_nothing_is_written(post, churn, what):
    _registered(post)
    before = _counts()
    body = _payload()
    # Something new as well, to show the refusal leaves it out too.
    body["feature_sources"].append({"name": "fresh.source"})
    body["datasets"].append({"name": "fresh", "role": "test"})
    field, record = _change(body, what)
    r = post(body)
    assert r.status_code == 409, r.content
    assert r.json()["code"] == "lineage_mismatch"
    assert r.json()["field"] == field and r.json()["record"] == record
    assert "not changed once written" in r.json()["message"]
    assert _counts() == before


@pytest.mark.django_db
def test_a_version_trained_by_another_run_is_refused(post, churn, data_scientist):
    _registered(post)
    before = _counts()
    body = _payload()
    body["run"] = {"run_id": "r-2"}
    r = post(body)
    assert r.status_code == 409, r.content
    assert r.json()["code"] == "lineage_mismatch"
    assert r.json()["record"] == {"kind": "model_version", "name": "churn", "version": 1}
    assert r.json()["field"] == "training_run"
    assert _counts() == before
    assert not TrainingRun.objects.filter(run_id="r-2").exists()


@pytest.mark.django_db
def test_a_dataset_whose_features_were_left_out_then_given_must_match(post, churn):
    body = _payload()
    del body["datasets"][1]["features"]
    assert post(body).status_code == 201
    # events-holdout was recorded without features: giving some now is a different record.
    r = post(_payload())
    assert r.status_code == 409 and r.json()["record"]["name"] == "events-holdout"
    assert r.json()["field"] == "features"


# --- Permissions ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_may_not_register_lineage(api, viewer, churn):
    before = _counts()
    r = api(viewer).post(URL, _payload(), format="json")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert _counts() == before
    assert api().post(URL, _payload(), format="json").status_code in (401, 403)


def _add_lineage(user: User, *codenames: str) -> User:
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="registry", codename__in=codenames)
    )
    return User.objects.get(pk=user.pk)  # no permissions remembered


ALL_ADD = ("add_featuresource", "add_logicalfeature", "add_dataset", "add_coderef")


@pytest.mark.django_db
def test_creating_a_kind_needs_its_add_permission(api, outsider, churn):
    user = _add_lineage(outsider, "add_trainingrun", "view_registeredmodel")
    body = _payload()
    body["model_versions"] = []
    before = _counts()
    r = api(user).post(URL, body, format="json")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert "feature sources" in r.json()["message"]
    assert _counts() == before


@pytest.mark.django_db
def test_a_version_of_a_model_you_cannot_see_is_not_found(api, outsider, data_scientist, churn):
    user = _add_lineage(outsider, "add_trainingrun", *ALL_ADD)
    make_version(data_scientist, make_model(data_scientist, "mine"))
    permissions.grant(Perm.CHANGE, churn.__class__.objects.get(name="mine"), user=user)
    permissions.grant(Perm.VIEW, churn.__class__.objects.get(name="mine"), user=user)
    before = _counts()
    body = _payload()
    body["model_versions"] = [{"name": "mine", "version": 1}, {"name": "churn", "version": 1}]
    r = api(user).post(URL, body, format="json")
    assert r.status_code == 404 and r.json()["code"] == "registered_model_not_found"
    assert _counts() == before
    assert AuditEvent.objects.filter(action="access.refused").count() == 1
    body["model_versions"] = [{"name": "mine", "version": 7}]
    r = api(user).post(URL, body, format="json")
    assert r.status_code == 404 and r.json()["code"] == "version_not_found"
    assert _counts() == before


@pytest.mark.django_db
def test_viewing_a_model_is_not_enough_to_link_its_versions(api, outsider, churn):
    user = _add_lineage(outsider, "add_trainingrun", *ALL_ADD)
    permissions.grant(Perm.VIEW, churn, user=user)
    before = _counts()
    r = api(user).post(URL, _payload(), format="json")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert _counts() == before


@pytest.mark.django_db
def test_records_you_cannot_see_are_answered_like_missing_ones(
    api, outsider, data_scientist, churn
):
    # fraud's dataset leads only to fraud, which the recorder may not see.
    fraud = make_model(data_scientist, "fraud")
    act = actor_for(superuser())
    hidden = services.dataset_create(actor=act, name="fraud-data")
    run = services.training_run_create(actor=act, run_id="fraud-run", datasets=[(hidden, "test")])
    make_version(data_scientist, fraud, training_run=run)
    user = _add_lineage(outsider, "add_trainingrun", *ALL_ADD)
    permissions.grant(Perm.CHANGE, churn, user=user)
    before = _counts()
    cases = [
        ({"run": {"run_id": "x"}, "datasets": [{"name": "fraud-data"}]}, "datasets"),
        ({"run": {"run_id": "fraud-run"}}, "run"),
    ]
    for body, field in cases:
        r = api(user).post(URL, body, format="json")
        assert r.status_code == 400, r.content
        assert field in r.json()["fields"] and "not found" in r.json()["message"]
        assert b"fraud-detector" not in r.content
    assert _counts() == before


# --- Sealed versions ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sealed_version_refuses_a_new_training_run(post, churn):
    place(churn.versions.get(), "staging")
    before = _counts()
    r = post(_payload())
    assert r.status_code == 409, r.content
    assert r.json()["code"] == "version_sealed"
    assert _counts() == before
    # Only the refusal is recorded (gate.refused, after the rollback).
    assert AuditEvent.objects.filter(action="gate.refused").count() == 1


@pytest.mark.django_db
def test_a_sealed_version_already_trained_by_the_run_is_left_alone(post, churn):
    _registered(post)
    place(churn.versions.get(), "staging")
    before = _counts()
    r = post(_payload())
    assert r.status_code == 200, r.content
    assert _counts() == before


@pytest.mark.django_db
def test_a_run_that_trained_a_sealed_version_gains_no_dataset(post, churn):
    _registered(post)
    place(churn.versions.get(), "staging")
    body = _payload()
    body["datasets"].append({"name": "late-data", "role": "validation"})
    before = _counts()
    r = post(body)
    assert r.status_code == 409, r.content
    assert r.json()["code"] == "version_sealed"
    assert "training datasets" in r.json()["message"]
    assert _counts() == before


# --- Validation -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_feature_of_an_unlisted_unknown_source_is_refused_naming_it(post, churn):
    body = _payload()
    body["datasets"][0]["features"].append({"source": "lake.clicks", "name": "n"})
    before = _counts()
    r = post(body)
    assert r.status_code == 400, r.content
    assert r.json()["code"] == "feature_source_not_found"
    assert "lake.clicks" in r.json()["message"] and "datasets" in r.json()["fields"]
    assert _counts() == before


def _invalid(body: dict[str, Any], case: str) -> None:
    if case == "unknown nested field":
        body["datasets"][0]["features"][0]["colour"] = "red"
    elif case == "bad role":
        body["datasets"][0]["role"] = "tuning"
    elif case == "no run":
        del body["run"]
    elif case == "bad name":
        body["feature_sources"][0]["name"] = "a/b"
        body["datasets"][0]["features"][0]["source"] = "a/b"
    elif case == "same dataset and role twice":
        body["datasets"][1] = {**body["datasets"][0]}
    elif case == "same source listed two ways":
        body["feature_sources"].append({"name": "warehouse.events", "kind": "stream"})
    elif case == "same feature two ways":
        body["datasets"][1]["features"][0]["dtype"] = "float"
    elif case == "ends before it starts":
        body["run"]["ended_at"] = "2026-10-01T00:00:00Z"
    elif case == "version zero":
        body["model_versions"][0]["version"] = 0
    elif case == "time without zone":
        body["run"]["started_at"] = "2026-11-01T10:00:00"
    elif case == "not an object":
        body["datasets"] = ["events"]
    else:
        raise AssertionError(case)


INVALID = {
    "unknown nested field": ("validation_failed", "datasets.0.features.0.colour"),
    "bad role": ("validation_failed", "datasets.0.role"),
    "no run": ("validation_failed", "run"),
    "bad name": ("invalid_name", "feature_sources"),
    "same dataset and role twice": ("duplicate_record", "datasets"),
    "same source listed two ways": ("duplicate_record", "feature_sources"),
    "same feature two ways": ("duplicate_record", "datasets"),
    "ends before it starts": ("validation_failed", "ended_at"),
    "version zero": ("validation_failed", "model_versions.0.version"),
    "time without zone": ("validation_failed", "started_at"),
    "not an object": ("validation_failed", "datasets.0.non_field_errors"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", INVALID)
def test_invalid_payloads_are_a_400_with_a_code(post, churn, case):
    body = _payload()
    _invalid(body, case)
    before = _counts()
    r = post(body)
    assert r.status_code == 400, r.content
    code, field = INVALID[case]
    assert r.json()["code"] == code, r.json()
    assert field in r.json()["fields"], r.json()
    assert _counts() == before


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_is_refused(post):
    r = post(["run"])
    assert r.status_code == 400 and r.json()["code"] == "invalid_payload"


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["datasets", "features", "model_versions", "feature_sources"])
def test_too_many_records_in_one_call_are_refused(post, churn, kind):
    body = _payload()
    if kind == "datasets":
        body["datasets"] = [{"name": f"d{i}"} for i in range(MAX_DATASETS + 1)]
    elif kind == "features":
        body["datasets"][0]["features"] = [
            {"source": "warehouse.events", "name": f"f{i}"} for i in range(MAX_FEATURES + 1)
        ]
    elif kind == "model_versions":
        body["model_versions"] = [{"name": "churn", "version": 1}] * (MAX_VERSIONS + 1)
    else:
        body["feature_sources"] = [{"name": f"s{i}"} for i in range(101)]
    before = _counts()
    r = post(body)
    assert r.status_code == 400, r.content
    assert r.json()["code"] == "too_many"
    assert _counts() == before


@pytest.mark.django_db
def test_the_service_bounds_its_input_too(data_scientist):
    with pytest.raises(ValidationFailed) as exc:
        services.lineage_register(
            actor=actor_for(data_scientist),
            run=RunSpec(run_id="r"),
            datasets=[
                DatasetSpec(
                    name="d", features=[FeatureSpec(source="s", name=f"f{i}") for i in range(1001)]
                )
            ],
        )
    assert exc.value.code == "too_many"


@pytest.mark.django_db
def test_inside_a_callers_transaction_a_mismatch_leaves_its_savepoint(data_scientist, churn):
    from django.db import transaction

    act = actor_for(data_scientist)
    services.lineage_register(actor=act, run=RunSpec(run_id="r", status="running"))
    with transaction.atomic():
        with pytest.raises(Conflict):
            services.lineage_register(
                actor=act,
                run=RunSpec(run_id="r", status="finished"),
                feature_sources=[SourceSpec(name="kept-out")],
            )
        assert not FeatureSource.objects.exists()


# --- Concurrency ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("with_versions", [True, False])
def test_two_identical_calls_at_once_record_one_set_of_rows(api, data_scientist, with_versions):
    registered_model = make_model(data_scientist, "churn")
    make_version(data_scientist, registered_model)
    body = _payload()
    if not with_versions:
        body["model_versions"] = []  # the race is on the first insert, not on a version lock

    def call(i: int) -> int:
        client = api(User.objects.get(pk=data_scientist.pk))
        return client.post(URL, copy.deepcopy(body), format="json").status_code

    # One answer first, so the OpenAPI check builds its schema before the threads share it.
    assert api(data_scientist).get("/api/v1/training-runs/").status_code == 200
    statuses = all_at_once(2, call, close_connections=True)
    assert sorted(statuses) == [200, 201]
    assert connection.vendor == "postgresql"
    assert FeatureSource.objects.count() == 1
    assert LogicalFeature.objects.count() == 2
    assert Dataset.objects.count() == 2
    assert CodeRef.objects.count() == 1
    assert TrainingRun.objects.count() == 1
    assert TrainingRunDataset.objects.count() == 2
    assert AuditEvent.objects.filter(action="training_run.created").count() == 1
    assert AuditEvent.objects.filter(action="dataset.created").count() == 2


@pytest.mark.django_db
def test_a_per_model_recorder_registers_a_new_run_for_their_version(api, outsider, churn):
    user = _add_lineage(outsider, "add_trainingrun", *ALL_ADD)
    permissions.grant(Perm.VIEW, churn, user=user)
    permissions.grant(Perm.CHANGE, churn, user=user)
    body = {
        "run": {"run_id": "mine"},
        "datasets": [{"name": "mine-data"}],
        "model_versions": [{"name": "churn", "version": 1}],
    }
    r = api(user).post(URL, body, format="json")
    assert r.status_code == 201, r.content
