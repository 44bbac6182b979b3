"""The lineage graph and impact analysis (registry.lineage_graph) through their pages and API:
walks across every hop, paths, how results serve, folding, depth, permissions and query
counts."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from core import permissions
from core.permissions import Perm
from registry import lineage_graph, services
from tests.factories import actor_for, make_model, make_version, no_approval, place, superuser

pytestmark = pytest.mark.django_db


def _world() -> dict[str, Any]:
    """Two sources feeding three datasets (two versions of `events`), three runs, three live
    versions of two models (one deleted), two deployments:

    warehouse.events ─ clicks ──┬─ events v1 ─┐
                     └ sessions ┘   (training) ├─ run-1 (code) ─ churn v1 (production) ─ prod
                      clicks ───── events v2 ──┼─ run-2 ─ churn v2 (@champion, protected),
    crm.accounts ─ tenure ─ accounts v1 ───────┘ (validation)     fraud v2 (deleted)
                                       └────── run-3 (code) ─ fraud v1 (staging) ─ staging env
    """
    admin = superuser()
    act = actor_for(admin, "cli")
    events = services.feature_source_create(actor=act, name="warehouse.events")
    accounts = services.feature_source_create(actor=act, name="crm.accounts", kind="stream")
    clicks = services.logical_feature_create(actor=act, source=events, name="clicks", dtype="int")
    sessions = services.logical_feature_create(actor=act, source=events, name="sessions")
    tenure = services.logical_feature_create(actor=act, source=accounts, name="tenure")
    events_v1 = services.dataset_create(actor=act, name="events", features=[clicks, sessions])
    events_v2 = services.dataset_create(actor=act, name="events", version="2", features=[clicks])
    accounts_v1 = services.dataset_create(actor=act, name="accounts", features=[tenure])
    code = services.code_ref_create(
        actor=act, repository="git@example.com:ml/churn.git", commit="a" * 40
    )
    run_1 = services.training_run_create(
        actor=act,
        run_id="run-1",
        code_ref=code,
        datasets=[(events_v1, "training"), (accounts_v1, "validation")],
    )
    run_2 = services.training_run_create(
        actor=act, run_id="run-2", datasets=[(events_v2, "training")]
    )
    run_3 = services.training_run_create(
        actor=act, run_id="run-3", code_ref=code, datasets=[(accounts_v1, "training")]
    )
    churn, fraud = make_model(admin, "churn"), make_model(admin, "fraud")
    churn_1 = place(make_version(admin, churn, training_run=run_1), "production")
    churn_2 = make_version(admin, churn, training_run=run_2)
    no_approval(churn, protected_aliases=["champion"])
    services.alias_set(actor=act, registered_model=churn, name="champion", version=churn_2)
    fraud_1 = place(make_version(admin, fraud, training_run=run_3), "staging")
    fraud_2 = make_version(admin, fraud, training_run=run_2)
    services.version_delete(actor=act, version=fraud_2)
    prod = services.deployment_create(
        actor=act, version=churn_1, environment="production", target="k8s/churn"
    )
    staging = services.deployment_create(
        actor=act, version=fraud_1, environment="staging", target="k8s/fraud"
    )
    return {
        "admin": admin, "events": events, "accounts": accounts, "clicks": clicks,
        "sessions": sessions, "tenure": tenure, "events_v1": events_v1, "events_v2": events_v2,
        "accounts_v1": accounts_v1, "code": code, "run_1": run_1, "run_2": run_2, "run_3": run_3,
        "churn": churn, "fraud": fraud, "churn_1": churn_1, "churn_2": churn_2,
        "fraud_1": fraud_1, "fraud_2": fraud_2, "prod": prod, "staging": staging,
    }  # fmt: skip


@pytest.fixture
def world() -> dict[str, Any]:
    return _world()


def _ids(found: lineage_graph.Impact) -> dict[str, list[str]]:
    """Each result as 'model vN' → the labels on its path."""
    return {
        f"{r.facts['model']} v{r.facts['version']}": [n.label for n in r.path]
        for r in found.results
    }


def test_impact_of_a_feature_source_crosses_every_hop(world: dict[str, Any]) -> None:
    found = lineage_graph.impact(world["admin"], "source", world["events"].pk)

    assert _ids(found) == {
        "churn v1": ["warehouse.events", "clicks", "events", "run-1", "churn v1"],
        "churn v2": ["warehouse.events", "clicks", "events", "run-2", "churn v2"],
    }
    assert [n.detail for n in found.results[0].path][2] == "version 1"
    assert found.summary == {
        "versions": 2,
        "in_production": 1,
        "protected": 1,
        "deployed": 1,
        "serving": 2,
    }
    churn_1, churn_2 = found.results
    assert churn_1.facts["deployments"] == [{"environment": "production", "target": "k8s/churn"}]
    assert churn_1.facts["in_production"] and churn_1.facts["approved"]
    assert churn_2.facts["protected_aliases"] == ["champion"] and churn_2.facts["approved"]
    assert not churn_2.facts["in_production"] and churn_2.facts["deployments"] == []


def test_impact_follows_validation_datasets_and_code(world: dict[str, Any]) -> None:
    by_source = lineage_graph.impact(world["admin"], "source", world["accounts"].pk)
    by_code = lineage_graph.impact(world["admin"], "code", world["code"].pk)

    assert _ids(by_source) == {
        "churn v1": ["crm.accounts", "tenure", "accounts", "run-1", "churn v1"],
        "fraud v1": ["crm.accounts", "tenure", "accounts", "run-3", "fraud v1"],
    }
    assert set(_ids(by_code)) == {"churn v1", "fraud v1"}
    assert by_code.results[1].facts["deployments"] == [
        {"environment": "staging", "target": "k8s/fraud"}
    ]
    assert not by_code.results[1].facts["approved"]


def test_impact_of_any_version_of_a_dataset(world: dict[str, Any]) -> None:
    one = lineage_graph.impact(world["admin"], "dataset", world["events_v1"].pk)
    every = lineage_graph.impact(
        world["admin"], "dataset", world["events_v1"].pk, all_versions=True
    )

    assert set(_ids(one)) == {"churn v1"}
    assert set(_ids(every)) == {"churn v1", "churn v2"}
    assert [n.detail for n in every.starts] == ["version 1", "version 2"]


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        ("production", {"churn v1"}),
        ("protected", {"churn v2"}),
        ("deployed", {"churn v1", "fraud v1"}),
        ("serving", {"churn v1", "churn v2", "fraud v1"}),
        (None, {"churn v1", "churn v2", "fraud v1"}),
    ],
)
def test_impact_keeps_only_what_serves_as_asked(
    world: dict[str, Any], only: str | None, expected: set[str]
) -> None:
    found = lineage_graph.impact(world["admin"], "feature", world["clicks"].pk, only=only)
    found_too = lineage_graph.impact(world["admin"], "dataset", world["accounts_v1"].pk, only=only)

    assert set(_ids(found)) | set(_ids(found_too)) == expected
    assert found.summary["versions"] == 2  # the summary counts before the filter


def test_a_deleted_version_is_neither_impacted_nor_drawn(world: dict[str, Any]) -> None:
    found = lineage_graph.impact(world["admin"], "run", world["run_2"].pk)
    shown = lineage_graph.graph(world["admin"], "run", world["run_2"].pk)

    assert set(_ids(found)) == {"churn v2"}
    assert ("version", world["fraud_2"].pk) not in shown.nodes


def test_graph_of_a_version_reaches_its_sources_and_deployment(world: dict[str, Any]) -> None:
    shown = lineage_graph.graph(world["admin"], "version", world["churn_1"].pk)

    labels = {(n.kind, n.label): n.distance for n in shown.nodes.values()}
    assert labels == {
        ("version", "churn v1"): 0,
        ("deployment", "production"): 1,
        ("run", "run-1"): -1,
        ("dataset", "events"): -2,
        ("dataset", "accounts"): -2,
        ("code", "churn.git"): -2,
        ("feature", "clicks"): -3,
        ("feature", "sessions"): -3,
        ("feature", "tenure"): -3,
        ("source", "warehouse.events"): -4,
        ("source", "crm.accounts"): -4,
    }
    key = lambda k, o: (k, world[o].pk)  # noqa: E731
    assert shown.edges[(key("dataset", "accounts_v1"), key("run", "run_1"))] == "validation"
    assert (key("version", "churn_1"), key("deployment", "prod")) in shown.edges
    # No sideways walk: run-3 shares the code and a dataset, but is neither ancestor nor heir.
    assert ("run", world["run_3"].pk) not in shown.nodes


def test_five_hops_from_a_source_to_a_deployment(world: dict[str, Any]) -> None:
    shown = lineage_graph.graph(world["admin"], "source", world["events"].pk)
    shallow = lineage_graph.graph(world["admin"], "source", world["events"].pk, depth=2)

    assert shown.nodes[("deployment", world["prod"].pk)].distance == 5
    assert {n.kind for n in shallow.nodes.values()} == {"source", "feature", "dataset"}


def test_folding_keeps_the_start_and_reroutes_links(world: dict[str, Any]) -> None:
    folded = lineage_graph.graph(
        world["admin"], "version", world["churn_1"].pk, collapse=["feature"]
    )
    limited = lineage_graph.graph(world["admin"], "version", world["churn_1"].pk, limit=1)

    group = folded.nodes[("feature", 0)]
    assert group.count == 3 and group.label == "3 features"
    assert not [k for k in folded.nodes if k[0] == "feature" and k[1]]
    assert (("source", world["events"].pk), ("feature", 0)) in folded.edges
    assert (("feature", 0), ("dataset", world["events_v1"].pk)) in folded.edges
    assert limited.nodes[("feature", 0)].label == "2 features more"
    assert len([k for k in limited.nodes if k[0] == "feature"]) == 2
    kept_start = lineage_graph.graph(
        world["admin"], "feature", world["clicks"].pk, collapse=["feature"]
    )
    assert ("feature", world["clicks"].pk) in kept_start.nodes


def test_a_per_model_grant_sees_only_what_leads_to_its_model(
    world: dict[str, Any], outsider: User
) -> None:
    permissions.grant(Perm.VIEW, world["fraud"], user=outsider)

    found = lineage_graph.impact(outsider, "source", world["accounts"].pk)
    shown = lineage_graph.graph(outsider, "dataset", world["accounts_v1"].pk)

    assert set(_ids(found)) == {"fraud v1"}
    assert {n.label for n in shown.nodes.values()} == {
        "accounts", "tenure", "crm.accounts", "run-3", "fraud v1", "staging"
    }  # fmt: skip
    for kind, name in [
        ("source", "events"),
        ("run", "run_1"),
        ("version", "churn_1"),
        ("deployment", "prod"),
    ]:
        with pytest.raises(lineage_graph.NotFound):
            lineage_graph.graph(outsider, kind, world[name].pk)


def test_queries_do_not_grow_with_the_graph(
    world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as walk:
            lineage_graph.graph(world["admin"], "source", world["events"].pk)
        with CaptureQueriesContext(connection) as impact:
            lineage_graph.impact(world["admin"], "source", world["events"].pk)
        return len(walk), len(impact)

    small = count()
    act = actor_for(world["admin"], "cli")
    for n in range(6):
        feature = services.logical_feature_create(actor=act, source=world["events"], name=f"f{n}")
        dataset = services.dataset_create(actor=act, name=f"d{n}", features=[feature])
        run = services.training_run_create(actor=act, run_id=f"r{n}", datasets=[(dataset, "test")])
        registered_model = make_model(world["admin"], f"m{n}")
        version = make_version(world["admin"], registered_model, training_run=run)
        services.deployment_create(actor=act, version=version, environment="dev", target=f"t{n}")
    assert count() == small


# --- API -----------------------------------------------------------------------------------


def test_graph_api_answers_nodes_and_edges(world: dict[str, Any], api: Any) -> None:
    url = reverse("registry-api:lineage-graph", args=["dataset", world["accounts_v1"].pk])
    response = api(world["admin"]).get(url, {"collapse": "source,feature", "depth": "3"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["root"] == f"dataset:{world['accounts_v1'].pk}"
    assert body["collapsed"] == ["feature", "source"]
    by_id = {n["id"]: n for n in body["nodes"]}
    assert by_id["source:more"]["count"] == 1 and by_id["feature:more"]["count"] == 1
    assert by_id[f"version:{world['churn_1'].pk}"]["url"] == "/models/churn/versions/1/"
    assert by_id[f"version:{world['churn_1'].pk}"]["attributes"]["in_production"] is True
    assert {
        "from": f"dataset:{world['accounts_v1'].pk}",
        "to": f"run:{world['run_1'].pk}",
        "role": "validation",
    } in body["edges"]


def test_impact_api_answers_paths(world: dict[str, Any], api: Any) -> None:
    url = reverse("registry-api:lineage-impact", args=["source", world["events"].pk])
    response = api(world["admin"]).get(url, {"only": "protected"})

    assert response.status_code == 200, response.content
    (result,) = response.json()["results"]
    assert (result["model"], result["version"], result["protected_aliases"]) == (
        "churn",
        2,
        ["champion"],
    )
    assert [n["id"].split(":")[0] for n in result["path"]] == [
        "source",
        "feature",
        "dataset",
        "run",
        "version",
    ]


@pytest.mark.parametrize(
    ("route", "kind", "query", "status", "code"),
    [
        ("lineage-graph", "dataset", {"depth": "0"}, 400, "validation_failed"),
        ("lineage-graph", "dataset", {"depth": "６"}, 400, "validation_failed"),
        ("lineage-graph", "dataset", {"limit": "501"}, 400, "validation_failed"),
        # zero-padded past int()'s 4,300-digit limit (was a 500)
        ("lineage-graph", "dataset", {"depth": "0" * 5000 + "3"}, 400, "validation_failed"),
        ("lineage-graph", "dataset", {"collapse": "datasets"}, 400, "validation_failed"),
        ("lineage-graph", "widget", {}, 404, "lineage_kind_unknown"),
        ("lineage-impact", "version", {}, 400, "validation_failed"),
        ("lineage-impact", "dataset", {"only": "Production"}, 400, "validation_failed"),
        ("lineage-impact", "dataset", {"all_versions": "yes please"}, 400, "validation_failed"),
    ],
)
def test_bad_requests_are_refused_with_a_code(
    world: dict[str, Any],
    api: Any,
    route: str,
    kind: str,
    query: dict[str, str],
    status: int,
    code: str,
) -> None:
    pk = world["churn_1"].pk if kind == "version" else world["accounts_v1"].pk
    response = api(world["admin"]).get(reverse(f"registry-api:{route}", args=[kind, pk]), query)

    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def test_hidden_and_missing_records_look_alike(
    world: dict[str, Any], api: Any, outsider: User
) -> None:
    hidden = reverse("registry-api:lineage-impact", args=["source", world["events"].pk])
    missing = reverse("registry-api:lineage-impact", args=["source", 999999])

    for url in (hidden, missing):
        response = api(outsider).get(url)
        assert response.status_code == 404
        assert response.json()["code"] == "lineage_record_not_found"


# --- Pages ---------------------------------------------------------------------------------


def test_graph_page_draws_every_record_as_a_link(world: dict[str, Any], client: Client) -> None:
    client.force_login(world["admin"])
    response = client.get(reverse("registry:lineage", args=["run", world["run_1"].pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<svg class="lineage-graph"' in html
    for kind, name in [
        ("dataset", "events_v1"),
        ("source", "accounts"),
        ("code", "code"),
        ("deployment", "prod"),
    ]:
        assert f'href="/lineage/{kind}/{world[name].pk}/"' in html
    assert 'href="/models/churn/versions/1/"' in html
    assert "What depends on this" in html


def test_graph_page_escapes_names_and_survives_bad_options(
    world: dict[str, Any], client: Client
) -> None:
    act = actor_for(world["admin"], "cli")
    evil = services.feature_source_create(actor=act, name='<script>alert("x")<\\script>')
    client.force_login(world["admin"])

    response = client.get(reverse("registry:lineage", args=["source", evil.pk]), {"depth": "99"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "depth must be a whole number from 1 to 5" in html


def test_impact_page_lists_versions_with_paths(world: dict[str, Any], client: Client) -> None:
    client.force_login(world["admin"])
    response = client.get(
        reverse("registry:lineage-impact", args=["source", world["accounts"].pk]),
        {"only": "deployed"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "churn v1" in html and "fraud v1" in html and "k8s/fraud" in html
    assert f'href="/lineage/run/{world["run_3"].pk}/"' in html


def test_pages_hide_what_the_user_may_not_see(
    world: dict[str, Any], client: Client, outsider: User
) -> None:
    client.force_login(outsider)
    for route in ("registry:lineage", "registry:lineage-impact"):
        assert client.get(reverse(route, args=["source", world["events"].pk])).status_code == 404


def test_lineage_index_lists_what_leads_to_visible_models(
    world: dict[str, Any], client: Client, outsider: User
) -> None:
    permissions.grant(Perm.VIEW, world["fraud"], user=outsider)
    client.force_login(outsider)

    html = client.get(reverse("registry:lineage-index")).content.decode()
    filtered = client.get(reverse("registry:lineage-index"), {"q": "acc"}).content.decode()

    assert f'href="/lineage/source/{world["accounts"].pk}/"' in html
    assert f'href="/lineage/run/{world["run_3"].pk}/"' in html
    for kind, name in [("source", "events"), ("run", "run_1"), ("dataset", "events_v1")]:
        assert f'href="/lineage/{kind}/{world[name].pk}/"' not in html
    assert f'href="/lineage/dataset/{world["accounts_v1"].pk}/"' in filtered
    assert f'href="/lineage/run/{world["run_3"].pk}/"' not in filtered


def test_lineage_index_queries_do_not_grow(
    world: dict[str, Any], client: Client, django_assert_max_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(world["admin"])
    with CaptureQueriesContext(connection) as small:
        client.get(reverse("registry:lineage-index"))
    act = actor_for(world["admin"], "cli")
    for n in range(5):
        source = services.feature_source_create(actor=act, name=f"s{n}")
        feature = services.logical_feature_create(actor=act, source=source, name=f"f{n}")
        dataset = services.dataset_create(actor=act, name=f"d{n}", features=[feature])
        services.training_run_create(actor=act, run_id=f"r{n}", datasets=[(dataset, "test")])
    with CaptureQueriesContext(connection) as large:
        client.get(reverse("registry:lineage-index"))
    assert len(large) == len(small)


def test_graph_page_shows_facts_as_a_reader_wants_them(
    world: dict[str, Any], client: Client
) -> None:
    client.force_login(world["admin"])
    html = client.get(
        reverse("registry:lineage", args=["version", world["churn_1"].pk])
    ).content.decode()

    assert "<dt>In production</dt><dd><bdi>yes</bdi></dd>" in html
    assert "<dt>Deployments</dt><dd><bdi>production: k8s/churn</bdi></dd>" in html
    assert "<dt>Aliases</dt><dd><bdi>—</bdi></dd>" in html
    assert "[{" not in html and "True" not in html
