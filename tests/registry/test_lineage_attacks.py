"""Attack review of the lineage graph, impact analysis and lineage index (issue 15).

Every road by which a user with a per-model grant, an outsider, an inactive user, an anonymous
client or a token could learn of records, models, versions or deployments they may not view, or
make the server fail (5xx) or work without bound. A passing test is a road found closed and
kept as a regression check (the roads found open in review were closed and their tests kept).

The world (names of everything the grantee may not see contain "secret"):

  warehouse.shared ─ clicks ─────────┬─ shared@1 ─┬─ run-a (shared.git) ─ visible-model v1
                  └ secret-feature ─┐│            │      (production) ─ prod k8s/visible
  secret.source ─ secret-feature-2 ─┴┴ shared@2-secret ─ secret-run-b2 (secret.git) ─ secret v3
                                                  ├─ run-both ─ visible-model v2 (retired
                                                  │            deployment), secret-model v2
                                                  │            (@champion, protected)
                                                  └─ secret-run-b (shared.git) ─ secret-model v1
                                                               (production) ─ k8s/secret-target
  secret.orphan (no features)
  secret-gone-data ─ secret-run-gone ─ secret-gone-model v1 (model deleted, version live,
                                       retired deployment)
  secret-deleted-version-data ─ secret-run-a3 ─ visible-model v3 (deleted; retired deployment)

The grantee holds view on visible-model and (before it was deleted) secret-gone-model.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.db import transaction
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from core import permissions, tokens
from core.actors import Actor
from core.errors import NotFound
from core.permissions import Perm
from governance.roles import roles_sync
from registry import lineage_graph, services
from tests import openapi_check
from tests.factories import (
    actor_for,
    make_model,
    make_version,
    no_approval,
    place,
    superuser,
)

pytestmark = pytest.mark.django_db

KIND_OF = {
    "s": "source",
    "f": "feature",
    "d": "dataset",
    "c": "code",
    "run": "run",
    "a": "version",
    "b": "version",
    "g": "version",
    "dep": "deployment",
}

# What the grantee may see, what it may not, and what nobody sees (soft-deleted).
VISIBLE = ["s_shared", "f_shared", "d_shared", "c_shared", "run_a", "run_both"]
VISIBLE += ["a1", "a2", "dep_a", "dep_a_old"]
HIDDEN = ["s_secret", "s_orphan", "f_secret", "f_secret2", "d_secret", "d_gone", "d_a3"]
HIDDEN += ["c_secret", "run_b", "run_b2", "run_g", "run_a3", "b1", "b2", "b3", "g1", "a3"]
HIDDEN += ["dep_b", "dep_g", "dep_a3"]
DELETED = ["g1", "a3", "dep_g", "dep_a3"]
# A hidden name, model page or target leaking into an answer.
SECRET = re.compile(r"secret[-.]|-secret", re.IGNORECASE)
LINK = re.compile(r"/lineage/([a-z]+)/([0-9]+)/")
MISSING = 987654321


def kind_of(key: str) -> str:
    return KIND_OF[key.split("_")[0].rstrip("0123456789")]


def _world() -> dict[str, Any]:
    admin = superuser()
    act = actor_for(admin, "cli")
    w: dict[str, Any] = {"admin": admin}
    w["s_shared"] = services.feature_source_create(actor=act, name="warehouse.shared")
    w["s_secret"] = services.feature_source_create(actor=act, name="secret.source")
    w["s_orphan"] = services.feature_source_create(actor=act, name="secret.orphan")
    feature = services.logical_feature_create
    w["f_shared"] = feature(actor=act, source=w["s_shared"], name="clicks")
    w["f_secret"] = feature(actor=act, source=w["s_shared"], name="secret-feature")
    w["f_secret2"] = feature(actor=act, source=w["s_secret"], name="secret-feature-2")
    dataset = services.dataset_create
    w["d_shared"] = dataset(actor=act, name="shared", features=[w["f_shared"]])
    w["d_secret"] = dataset(
        actor=act,
        name="shared",
        version="2-secret",
        features=[w["f_shared"], w["f_secret"], w["f_secret2"]],
    )
    w["d_gone"] = dataset(actor=act, name="secret-gone-data")
    w["d_a3"] = dataset(actor=act, name="secret-deleted-version-data")
    code = services.code_ref_create
    w["c_shared"] = code(actor=act, repository="git@example.com:ml/shared.git", commit="a" * 40)
    w["c_secret"] = code(actor=act, repository="git@example.com:ml/secret.git", commit="b" * 40)
    run = services.training_run_create
    w["run_a"] = run(
        actor=act, run_id="run-a", code_ref=w["c_shared"], datasets=[(w["d_shared"], "training")]
    )
    w["run_both"] = run(actor=act, run_id="run-both", datasets=[(w["d_shared"], "validation")])
    w["run_b"] = run(
        actor=act,
        run_id="secret-run-b",
        code_ref=w["c_shared"],
        datasets=[(w["d_shared"], "training")],
    )
    w["run_b2"] = run(
        actor=act,
        run_id="secret-run-b2",
        code_ref=w["c_secret"],
        datasets=[(w["d_secret"], "training")],
    )
    w["run_g"] = run(actor=act, run_id="secret-run-gone", datasets=[(w["d_gone"], "training")])
    w["run_a3"] = run(actor=act, run_id="secret-run-a3", datasets=[(w["d_a3"], "training")])
    a = w["model_a"] = make_model(admin, "visible-model")
    b = w["model_b"] = make_model(admin, "secret-model")
    g = w["model_g"] = make_model(admin, "secret-gone-model")
    w["a1"] = place(make_version(admin, a, training_run=w["run_a"]), "production")
    w["a2"] = make_version(admin, a, training_run=w["run_both"])
    w["b1"] = place(make_version(admin, b, training_run=w["run_b"]), "production")
    w["b2"] = make_version(admin, b, training_run=w["run_both"])
    no_approval(b, protected_aliases=["champion"])
    services.alias_set(actor=act, registered_model=b, name="champion", version=w["b2"])
    w["b3"] = make_version(admin, b, training_run=w["run_b2"])
    w["g1"] = make_version(admin, g, training_run=w["run_g"])
    w["a3"] = make_version(admin, a, training_run=w["run_a3"])
    deploy, retire = services.deployment_create, services.deployment_retire
    w["dep_a"] = deploy(actor=act, version=w["a1"], environment="production", target="k8s/visible")
    w["dep_a_old"] = retire(
        actor=act,
        deployment=deploy(
            actor=act, version=w["a2"], environment="staging", target="k8s/visible-old"
        ),
    )
    w["dep_b"] = deploy(
        actor=act, version=w["b1"], environment="production", target="k8s/secret-target"
    )
    w["dep_g"] = retire(
        actor=act,
        deployment=deploy(actor=act, version=w["g1"], environment="dev", target="k8s/secret-gone"),
    )
    w["dep_a3"] = retire(
        actor=act,
        deployment=deploy(actor=act, version=w["a3"], environment="dev", target="k8s/secret-a3"),
    )
    grantee = w["grantee"] = User.objects.create_user("grace")
    permissions.grant(Perm.VIEW, a, user=grantee, granted_by=admin)
    permissions.grant(Perm.VIEW, g, user=grantee, granted_by=admin)
    services.version_delete(actor=act, version=w["a3"])
    services.registered_model_delete(actor=act, registered_model=g)
    return w


@pytest.fixture(scope="module")
def _built(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """The world, built once for the module inside a transaction that is rolled back at its
    end; each test runs in a savepoint within it (pytest-django's own), so what a test writes
    is undone before the next (none of these tests commits)."""
    with django_db_blocker.unblock(), transaction.atomic():
        roles_sync(actor=Actor.system("cli"))
        yield _world()
        transaction.set_rollback(True)


@pytest.fixture
def world(_built: dict[str, Any], db: None) -> dict[str, Any]:
    """The module's world with every row fetched again, so no test sees what an earlier one
    cached on an instance (permissions on a user, the policy on a model)."""
    return {
        name: type(value)._base_manager.get(pk=value.pk) if isinstance(value, Model) else value
        for name, value in _built.items()
    }


def key(w: dict[str, Any], name: str) -> tuple[str, int]:
    return (kind_of(name), w[name].pk)


def node_id(w: dict[str, Any], name: str) -> str:
    kind, pk = key(w, name)
    return f"{kind}:{pk}"


def api_client(user: User | None) -> APIClient:
    client = APIClient()
    client.raise_request_exception = False
    if user is not None:
        client.force_authenticate(user)
    return client


def page_client(user: User | None) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def graph_url(kind: str, pk: int | str) -> str:
    return f"/api/v1/lineage/{kind}/{pk}/graph/"


def impact_url(kind: str, pk: int | str) -> str:
    return f"/api/v1/lineage/{kind}/{pk}/impact/"


def page_url(kind: str, pk: int | str) -> str:
    return f"/lineage/{kind}/{pk}/"


def impact_page_url(kind: str, pk: int | str) -> str:
    return f"/lineage/{kind}/{pk}/impact/"


def visible_ids(w: dict[str, Any], names: list[str] = VISIBLE) -> set[str]:
    """The grantee's records, and a folded group of any kind."""
    return {node_id(w, n) for n in names} | {f"{k}:more" for k in lineage_graph.KINDS}


def assert_nothing_hidden(w: dict[str, Any], text: str) -> None:
    """No hidden name, page or target in `text`, and every lineage link leads to a record the
    grantee may see."""
    assert not SECRET.search(text), SECRET.search(text)
    allowed = {key(w, n) for n in VISIBLE}
    for kind, pk in LINK.findall(text):
        assert (kind, int(pk)) in allowed, (kind, pk)


# --- Hidden and missing look alike --------------------------------------------------------


def _unmasked(content: bytes) -> bytes:
    """A page without its CSRF token (masked afresh on every answer)."""
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", content)


def _same_refusal(hidden: Any, missing: Any, hidden_pk: int) -> None:
    assert hidden.status_code == missing.status_code == 404
    body, other = hidden.json(), missing.json()
    assert body["code"] == other["code"] == "lineage_record_not_found"
    assert body["message"].replace(str(hidden_pk), "N") == other["message"].replace(
        str(MISSING), "N"
    )
    assert set(hidden.headers) == set(missing.headers)


@pytest.mark.parametrize("name", HIDDEN)
def test_a_hidden_record_answers_exactly_as_a_missing_one(world: dict[str, Any], name: str) -> None:
    kind, pk = key(world, name)
    api, pages = api_client(world["grantee"]), page_client(world["grantee"])

    _same_refusal(api.get(graph_url(kind, pk)), api.get(graph_url(kind, MISSING)), pk)
    # Bad options are refused before the record is looked up, for hidden and missing alike.
    for query in ({"depth": "0"}, {"collapse": "nothing"}):
        hidden, missing = (
            api.get(graph_url(kind, pk), query),
            api.get(graph_url(kind, MISSING), query),
        )
        assert hidden.status_code == missing.status_code == 400
        assert hidden.json() == missing.json()
    if kind in lineage_graph.IMPACT_KINDS:
        _same_refusal(api.get(impact_url(kind, pk)), api.get(impact_url(kind, MISSING)), pk)
        hidden = api.get(impact_url(kind, pk), {"all_versions": "true", "only": "serving"})
        assert hidden.status_code == 404
    for url in (page_url, impact_page_url) if kind in lineage_graph.IMPACT_KINDS else (page_url,):
        hidden_page, missing_page = pages.get(url(kind, pk)), pages.get(url(kind, MISSING))
        assert hidden_page.status_code == missing_page.status_code == 404
        assert _unmasked(hidden_page.content) == _unmasked(missing_page.content)


@pytest.mark.parametrize("name", DELETED)
def test_deleted_versions_and_their_deployments_are_missing_for_everyone(
    world: dict[str, Any], viewer: User, name: str
) -> None:
    kind, pk = key(world, name)
    for user in (world["admin"], viewer, world["grantee"]):
        response = api_client(user).get(graph_url(kind, pk))
        assert response.status_code == 404, (user, response.content)
        assert page_client(user).get(page_url(kind, pk)).status_code == 404
        with pytest.raises(NotFound):
            lineage_graph.graph(user, kind, pk)


# --- What a grantee sees of records it may see ---------------------------------------------


GRAPH_OPTIONS = [
    {},
    {"depth": "1"},
    {"limit": "1"},
    {"collapse": ",".join(lineage_graph.KINDS)},
    {"collapse": "feature,dataset,run", "limit": "1", "depth": "5"},
]


@pytest.mark.parametrize("name", VISIBLE)
def test_a_grantee_sees_no_trace_of_hidden_records_from_any_visible_one(
    world: dict[str, Any], name: str
) -> None:
    w = world
    kind, pk = key(w, name)
    api, pages = api_client(w["grantee"]), page_client(w["grantee"])
    for options in GRAPH_OPTIONS:
        full = api.get(graph_url(kind, pk), {"depth": options.get("depth", "5"), "limit": "500"})
        assert full.status_code == 200, full.content
        ids = {n["id"] for n in full.json()["nodes"]}
        assert ids <= visible_ids(w)
        per_kind = {k: len([i for i in ids if i.startswith(f"{k}:")]) for k in lineage_graph.KINDS}
        response = api.get(graph_url(kind, pk), options)
        assert response.status_code == 200, response.content
        assert_nothing_hidden(w, response.content.decode())
        body = response.json()
        for edge in body["edges"]:
            assert {edge["from"], edge["to"]} <= {n["id"] for n in body["nodes"]}
        # Folded groups stand for visible records only.
        for k in lineage_graph.KINDS:
            counted = sum(n["count"] for n in body["nodes"] if n["kind"] == k)
            assert counted == per_kind[k], (options, k)
        html = pages.get(page_url(kind, pk), options)
        assert html.status_code == 200
        assert_nothing_hidden(w, html.content.decode())
    if kind in lineage_graph.IMPACT_KINDS:
        for only in ("", *lineage_graph.IMPACT_FILTERS):
            for all_versions in ("false", "true"):
                query = {"only": only, "all_versions": all_versions}
                response = api.get(impact_url(kind, pk), query)
                assert response.status_code == 200, response.content
                assert_nothing_hidden(w, response.content.decode())
                for result in response.json()["results"]:
                    assert {n["id"] for n in result["path"]} <= visible_ids(w)
                html = pages.get(impact_page_url(kind, pk), query)
                assert html.status_code == 200
                assert_nothing_hidden(w, html.content.decode())


def test_impact_summary_counts_only_versions_the_user_may_see(
    world: dict[str, Any], viewer: User
) -> None:
    w = world
    mine = lineage_graph.impact(w["grantee"], "source", w["s_shared"].pk)
    everyone = lineage_graph.impact(viewer, "source", w["s_shared"].pk)

    assert mine.summary == {
        "versions": 2,
        "in_production": 1,
        "protected": 0,
        "deployed": 1,
        "serving": 1,
    }
    assert everyone.summary == {
        "versions": 5,
        "in_production": 2,
        "protected": 1,
        "deployed": 2,
        "serving": 3,
    }
    html = page_client(w["grantee"]).get(impact_page_url("source", w["s_shared"].pk)).content
    assert b"<strong>2</strong> versions" in html and b"<strong>5</strong>" not in html


def test_any_version_of_a_dataset_never_starts_from_a_hidden_one(
    world: dict[str, Any], viewer: User
) -> None:
    w = world
    mine = lineage_graph.impact(w["grantee"], "dataset", w["d_shared"].pk, all_versions=True)
    everyone = lineage_graph.impact(viewer, "dataset", w["d_shared"].pk, all_versions=True)

    assert [n.pk for n in mine.starts] == [w["d_shared"].pk]
    assert [n.pk for n in everyone.starts] == [w["d_shared"].pk, w["d_secret"].pk]
    assert {r.facts["model"] for r in mine.results} == {"visible-model"}
    assert {r.facts["model"] for r in everyone.results} == {"visible-model", "secret-model"}


def test_a_run_training_two_models_shows_only_the_visible_version(world: dict[str, Any]) -> None:
    w = world
    shown = lineage_graph.graph(w["grantee"], "run", w["run_both"].pk)
    found = lineage_graph.impact(w["grantee"], "run", w["run_both"].pk)

    assert {k for k in shown.nodes if k[0] == "version"} == {key(w, "a2")}
    assert [(r.facts["model"], r.facts["version"]) for r in found.results] == [("visible-model", 2)]
    # b2 holds the protected alias on the same run; nothing of it reaches a2's facts.
    facts = shown.nodes[key(w, "a2")].attributes
    assert facts["aliases"] == facts["protected_aliases"] == facts["deployments"] == []


def test_a_visible_record_hides_its_branches_that_lead_only_to_hidden_models(
    world: dict[str, Any],
) -> None:
    w = world
    from_source = lineage_graph.graph(w["grantee"], "source", w["s_shared"].pk)
    from_code = lineage_graph.graph(w["grantee"], "code", w["c_shared"].pk)
    upstream = lineage_graph.graph(w["grantee"], "version", w["a1"].pk)

    assert set(from_source.nodes) == {
        key(w, n)
        for n in ("s_shared", "f_shared", "d_shared", "run_a", "run_both", "a1", "a2")
        + ("dep_a", "dep_a_old")
    }
    assert set(from_code.nodes) == {key(w, n) for n in ("c_shared", "run_a", "a1", "dep_a")}
    assert key(w, "c_secret") not in upstream.nodes and key(w, "f_secret") not in upstream.nodes
    folded = lineage_graph.graph(w["grantee"], "source", w["s_shared"].pk, collapse=["feature"])
    assert folded.nodes[("feature", 0)].label == "1 feature"


def test_a_global_viewer_sees_the_catalogue_but_never_deleted_versions(
    world: dict[str, Any], viewer: User
) -> None:
    w = world
    for user in (viewer, w["admin"]):
        gone = lineage_graph.graph(user, "dataset", w["d_gone"].pk)
        deleted = lineage_graph.graph(user, "dataset", w["d_a3"].pk)
        assert set(gone.nodes) == {key(w, "d_gone"), key(w, "run_g")}
        assert set(deleted.nodes) == {key(w, "d_a3"), key(w, "run_a3")}
        found = lineage_graph.impact(user, "dataset", w["d_gone"].pk)
        assert found.results == [] and found.summary["versions"] == 0
        orphan = lineage_graph.graph(user, "source", w["s_orphan"].pk)
        assert set(orphan.nodes) == {key(w, "s_orphan")}


def test_a_retired_deployment_is_drawn_but_never_counted_as_serving(
    world: dict[str, Any],
) -> None:
    w = world
    shown = lineage_graph.graph(w["grantee"], "deployment", w["dep_a_old"].pk)
    found = lineage_graph.impact(w["grantee"], "dataset", w["d_shared"].pk, only="deployed")

    assert shown.nodes[key(w, "dep_a_old")].attributes["status"] == "retired"
    assert shown.nodes[key(w, "a2")].attributes["deployments"] == []
    assert [(r.facts["model"], r.facts["version"]) for r in found.results] == [("visible-model", 1)]


def test_a_grant_other_than_view_shows_nothing(world: dict[str, Any]) -> None:
    w = world
    changer = User.objects.create_user("chad")
    for perm in (Perm.CHANGE, Perm.REQUEST_PROMOTION, Perm.APPROVE_PROMOTION, Perm.MANAGE_ACCESS):
        permissions.grant(perm, w["model_b"], user=changer, granted_by=w["admin"])
    for name in VISIBLE + HIDDEN:
        with pytest.raises(NotFound):
            lineage_graph.graph(changer, *key(w, name))


def test_a_grant_through_a_group_sees_as_much_and_no_more(world: dict[str, Any]) -> None:
    w = world
    member = User.objects.create_user("gus")
    team = Group.objects.create(name="visible-team")
    member.groups.add(team)
    permissions.grant(Perm.VIEW, w["model_a"], group=team, granted_by=w["admin"])
    for name in VISIBLE:
        mine = lineage_graph.graph(member, *key(w, name))
        theirs = lineage_graph.graph(w["grantee"], *key(w, name))
        assert set(mine.nodes) == set(theirs.nodes)
    for name in HIDDEN:
        with pytest.raises(NotFound):
            lineage_graph.graph(member, *key(w, name))


def test_hidden_branches_cost_a_grantee_no_extra_queries(world: dict[str, Any]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    w = world
    kind, pk = key(w, "d_shared")

    def count() -> tuple[int, int, int]:
        api, pages = api_client(w["grantee"]), page_client(w["grantee"])
        with CaptureQueriesContext(connection) as graph:
            assert api.get(graph_url(kind, pk)).status_code == 200
        with CaptureQueriesContext(connection) as impact:
            assert api.get(impact_url(kind, pk), {"all_versions": "true"}).status_code == 200
        with CaptureQueriesContext(connection) as index:
            assert pages.get(reverse("registry:lineage-index")).status_code == 200
        return len(graph), len(impact), len(index)

    count()  # caches warm (content types, default policies)
    before = count()
    act = actor_for(w["admin"], "cli")
    for n in range(6):
        hidden = make_model(w["admin"], f"secret-extra-{n}")
        other = services.dataset_create(actor=act, name="shared", version=f"secret-{n}")
        run = services.training_run_create(
            actor=act,
            run_id=f"secret-extra-run-{n}",
            datasets=[(w["d_shared"], "training"), (other, "test")],
        )
        version = make_version(w["admin"], hidden, training_run=run)
        services.deployment_create(actor=act, version=version, environment="dev", target=f"t{n}")
    assert count() == before


# --- Who is asking -----------------------------------------------------------------------


def _inactive(w: dict[str, Any], superuser_too: bool) -> User:
    user = User.objects.create_user("ina", is_active=False, is_superuser=superuser_too)
    permissions.grant(Perm.VIEW, w["model_a"], user=user, granted_by=w["admin"])
    return user


@pytest.mark.parametrize("who", ["anonymous", "none", "outsider", "inactive", "inactive_root"])
def test_those_who_may_see_nothing_are_told_nothing(
    world: dict[str, Any], outsider: User, who: str
) -> None:
    w = world
    user: Any = {
        "anonymous": AnonymousUser(),
        "none": None,
        "outsider": outsider,
        "inactive": _inactive(w, False) if who == "inactive" else None,
        "inactive_root": _inactive(w, True) if who == "inactive_root" else None,
    }[who]
    for name in VISIBLE + HIDDEN:
        with pytest.raises(NotFound):
            lineage_graph.graph(user, *key(w, name))
        if kind_of(name) in lineage_graph.IMPACT_KINDS:
            with pytest.raises(NotFound):
                lineage_graph.impact(user, *key(w, name), all_versions=True)
    if who in ("anonymous", "none"):
        return
    # Over HTTP: a session of an inactive user is no session (sign in again; the API 401/403).
    api, pages = APIClient(), page_client(user)
    api.force_login(user)
    kind, pk = key(w, "d_shared")
    response = api.get(graph_url(kind, pk))
    assert response.status_code == (404 if who == "outsider" else 401), response.content
    page = pages.get(page_url(kind, pk))
    assert page.status_code == (404 if who == "outsider" else 302)
    index = pages.get(reverse("registry:lineage-index"))
    if who == "outsider":
        assert set(_counts(index.content.decode()).values()) == {0}
    else:
        assert index.status_code == 302


def test_anonymous_clients_are_refused_on_every_route(world: dict[str, Any]) -> None:
    kind, pk = key(world, "d_shared")
    for url in (graph_url(kind, pk), impact_url(kind, pk), graph_url(kind, MISSING)):
        response = api_client(None).get(url)
        assert response.status_code in (401, 403)
        assert response.json()["code"] in ("not_authenticated", "authentication_failed")
    for url in (page_url(kind, pk), impact_page_url(kind, pk), reverse("registry:lineage-index")):
        page = page_client(None).get(url)
        assert page.status_code == 302 and "login" in page["Location"]


def test_a_token_sees_what_its_user_sees_and_a_dead_users_token_nothing(
    world: dict[str, Any],
) -> None:
    w = world
    _, raw = tokens.token_create(actor=actor_for(w["grantee"]), user=w["grantee"], name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    seen = client.get(graph_url(*key(w, "d_shared")))
    assert seen.status_code == 200
    assert {n["id"] for n in seen.json()["nodes"]} <= visible_ids(w)
    assert client.get(graph_url(*key(w, "d_secret"))).status_code == 404
    assert client.get(impact_url(*key(w, "run_b"))).status_code == 404
    w["grantee"].is_active = False
    w["grantee"].save(update_fields=["is_active"])
    assert client.get(graph_url(*key(w, "d_shared"))).status_code == 401


# --- Query parameters ----------------------------------------------------------------------

HUGE_DIGITS = "9" * 5000  # past Python's 4300-digit limit for int(str)
BAD_GRAPH_QUERIES = [
    {"depth": "0"},
    {"depth": "6"},
    {"depth": "-1"},
    {"depth": "+1"},
    {"depth": "1.0"},
    {"depth": "1e0"},
    {"depth": "０"},
    {"depth": "²"},
    {"depth": "٣"},
    {"depth": "9" * 40},
    {"depth": "\u00a0"},
    {"limit": "0"},
    {"limit": "501"},
    {"limit": "0x10"},
    {"limit": "1_0"},
    {"limit": "9" * 400},
    {"collapse": "datasets"},
    {"collapse": "DATASET"},
    {"collapse": "dataset\u200b"},
    {"collapse": "dataset;run"},
]
GOOD_GRAPH_QUERIES = [
    {"depth": " 3 "},
    {"depth": "003"},
    {"depth": ""},
    {"limit": "500"},
    {"collapse": ""},
    {"collapse": ",,,"},
    {"collapse": " dataset , run "},
    {"collapse": ["dataset", "dataset", "run,run"]},
    {"collapse": ["feature"] * 900},
    {"depth": ["1", "2"]},
    {"unknown": "x"},
]


@pytest.mark.parametrize(
    "query",
    [
        *BAD_GRAPH_QUERIES,
        pytest.param(
            {"depth": HUGE_DIGITS},
        ),
        pytest.param(
            {"limit": HUGE_DIGITS},
        ),
    ],
)
def test_malformed_graph_options_are_a_400_or_a_page_notice(
    world: dict[str, Any], query: dict[str, str]
) -> None:
    kind, pk = key(world, "d_shared")
    response = api_client(world["grantee"]).get(graph_url(kind, pk), query)
    assert response.status_code == 400, response.content[:300]
    assert response.json()["code"] == "validation_failed"
    page = page_client(world["grantee"]).get(page_url(kind, pk), query)
    assert page.status_code == 200
    assert b'class="message error"' in page.content


@pytest.mark.parametrize("query", GOOD_GRAPH_QUERIES)
def test_odd_but_valid_graph_options_draw_the_graph(
    world: dict[str, Any], query: dict[str, Any]
) -> None:
    kind, pk = key(world, "d_shared")
    response = api_client(world["grantee"]).get(graph_url(kind, pk), query)
    assert response.status_code == 200, response.content[:300]
    assert {n["id"] for n in response.json()["nodes"]} <= visible_ids(world)
    page = page_client(world["grantee"]).get(page_url(kind, pk), query)
    assert page.status_code == 200 and b'class="message error"' not in page.content


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"only": "Production"}, 400),
        ({"only": " production"}, 400),
        ({"only": "production\u200b"}, 400),
        ({"only": ["serving", "nothing"]}, 400),
        ({"only": ["nothing", "serving"]}, 200),
        ({"only": ""}, 200),
        ({"all_versions": "yes"}, 400),
        ({"all_versions": "２"}, 400),
        ({"all_versions": "TRUE"}, 200),
        ({"all_versions": " 1 "}, 200),
        ({"all_versions": ""}, 200),
        ({"all_versions": HUGE_DIGITS}, 400),
        ({"depth": HUGE_DIGITS, "collapse": "x"}, 200),  # impact reads neither
    ],
)
def test_impact_options_are_a_400_or_a_page_notice(
    world: dict[str, Any], query: dict[str, Any], status: int
) -> None:
    kind, pk = key(world, "d_shared")
    response = api_client(world["grantee"]).get(impact_url(kind, pk), query)
    assert response.status_code == status, response.content[:300]
    if status == 400:
        assert response.json()["code"] == "validation_failed"
    else:
        assert_nothing_hidden(world, response.content.decode())
    page = page_client(world["grantee"]).get(impact_page_url(kind, pk), query)
    assert page.status_code == 200
    assert (b'class="message error"' in page.content) == (status == 400)


def test_more_parameters_than_django_reads_are_a_400_with_a_code(world: dict[str, Any]) -> None:
    kind, pk = key(world, "d_shared")
    query = {"collapse": ["feature"] * 2000}
    response = api_client(world["grantee"]).get(graph_url(kind, pk), query)
    assert response.status_code == 400 and response.json()["code"] == "bad_request"
    assert page_client(world["grantee"]).get(page_url(kind, pk), query).status_code == 400


def test_repeated_depth_takes_the_last_value(world: dict[str, Any]) -> None:
    kind, pk = key(world, "s_shared")
    response = api_client(world["grantee"]).get(f"{graph_url(kind, pk)}?depth=5&depth=1")
    assert response.json()["depth"] == 1
    assert {n["kind"] for n in response.json()["nodes"]} == {"source", "feature"}


# --- Kinds and keys in the path -----------------------------------------------------------

ODD_PKS = ["0", "00", str(2**31), str(2**63 - 1), str(2**63), str(2**64), "9" * 40, HUGE_DIGITS]


@pytest.mark.parametrize("pk", ODD_PKS)
def test_odd_keys_are_missing_records(world: dict[str, Any], pk: str) -> None:
    for kind in lineage_graph.KINDS:
        response = api_client(world["admin"]).get(graph_url(kind, pk))
        assert response.status_code == 404, (kind, response.content[:300])
        assert response.json()["code"] in ("lineage_record_not_found", "not_found")
        assert page_client(world["admin"]).get(page_url(kind, pk)).status_code == 404
    for kind in lineage_graph.IMPACT_KINDS:
        response = api_client(world["admin"]).get(impact_url(kind, pk))
        assert response.status_code == 404, (kind, response.content[:300])
        assert page_client(world["admin"]).get(impact_page_url(kind, pk)).status_code == 404


@pytest.mark.parametrize("pk", ["-1", "1.0", "1e3", "%201", "１", "0x1", "+1"])
def test_keys_that_are_not_whole_numbers_match_no_route(world: dict[str, Any], pk: str) -> None:
    for url in (graph_url("dataset", pk), impact_url("dataset", pk)):
        response = api_client(world["admin"]).get(url)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    for url in (page_url("dataset", pk), impact_page_url("dataset", pk)):
        assert page_client(world["admin"]).get(url).status_code == 404


ODD_KINDS = ["Dataset", "DATASET", "datasets", "dataset%20", "%E2%80%AEdataset", "more", "graph"]
ODD_KINDS += ["%3Cscript%3E", "__class__", "ROWS", "keys"]


@pytest.mark.parametrize("kind", ODD_KINDS)
def test_unknown_kinds_are_refused_without_echoing_markup(world: dict[str, Any], kind: str) -> None:
    pk = world["d_shared"].pk
    response = api_client(world["admin"]).get(graph_url(kind, pk))
    assert response.status_code == 404 and response.json()["code"] == "lineage_kind_unknown"
    response = api_client(world["admin"]).get(impact_url(kind, pk))
    assert response.status_code == 400 and response.json()["code"] == "validation_failed"
    page = page_client(world["admin"]).get(page_url(kind, pk))
    assert page.status_code == 404 and b"<script>" not in page.content


@pytest.mark.parametrize("kind", ["version", "deployment", "widget"])
def test_the_impact_page_of_a_kind_without_impact_is_not_a_500(
    world: dict[str, Any], kind: str
) -> None:
    pk = {"version": world["a1"].pk, "deployment": world["dep_a"].pk}.get(kind, 1)
    response = page_client(world["grantee"]).get(impact_page_url(kind, pk))
    assert response.status_code in (400, 404), response.status_code


def test_the_impact_page_of_a_hidden_version_reveals_nothing_either(
    world: dict[str, Any],
) -> None:
    """Whatever the impact page answers for a kind without impact, a hidden and a missing
    record answer alike (the API: 400 for both, before any lookup)."""
    api = api_client(world["grantee"])
    hidden = api.get(impact_url("version", world["b1"].pk))
    missing = api.get(impact_url("version", MISSING))
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json() == missing.json()
    pages = page_client(world["grantee"])
    hidden_page = pages.get(impact_page_url("version", world["b1"].pk))
    missing_page = pages.get(impact_page_url("version", MISSING))
    assert hidden_page.status_code == missing_page.status_code
    assert _unmasked(hidden_page.content) == _unmasked(missing_page.content)


# --- Methods -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_api_routes_only_read(world: dict[str, Any], method: str) -> None:
    kind, pk = key(world, "d_shared")
    for url in (graph_url(kind, pk), impact_url(kind, pk)):
        response = getattr(api_client(world["admin"]), method)(url, {}, format="json")
        assert response.status_code == 405, response.content
        assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_pages_only_read(world: dict[str, Any], method: str) -> None:
    kind, pk = key(world, "d_shared")
    urls = (page_url(kind, pk), impact_page_url(kind, pk), reverse("registry:lineage-index"))
    for url in urls:
        assert getattr(page_client(world["admin"]), method)(url).status_code == 405
        assert getattr(page_client(None), method)(url).status_code == 302


def test_head_answers_like_get_without_a_body(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # HEAD is no operation of the schema; the check covers the GETs these mirror.
    monkeypatch.setattr(openapi_check, "check", lambda response: None)
    kind, pk = key(world, "d_shared")
    hidden_kind, hidden_pk = key(world, "d_secret")
    api, pages = api_client(world["grantee"]), page_client(world["grantee"])
    for url in (graph_url(kind, pk), impact_url(kind, pk)):
        assert api.head(url).status_code == 200
    for url in (graph_url(hidden_kind, hidden_pk), impact_url(hidden_kind, hidden_pk)):
        assert api.head(url).status_code == 404
    for url in (page_url(kind, pk), impact_page_url(kind, pk), reverse("registry:lineage-index")):
        assert pages.head(url).status_code == 200
    assert pages.head(page_url(hidden_kind, hidden_pk)).status_code == 404


def test_other_renderings_and_options_reveal_nothing(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The browsable API's HTML and OPTIONS are no operations of the schema.
    monkeypatch.setattr(openapi_check, "check", lambda response: None)
    api = api_client(world["grantee"])
    hidden_kind, hidden_pk = key(world, "d_secret")
    for query in ({"format": "api"}, {"format": "xml"}):
        hidden = api.get(graph_url(hidden_kind, hidden_pk), query)
        missing = api.get(graph_url(hidden_kind, MISSING), query)
        assert hidden.status_code == missing.status_code == 404
    shown = api.get(graph_url(*key(world, "d_shared")), {"format": "api"})
    assert shown.status_code == 200
    assert_nothing_hidden(world, shown.content.decode())
    for url in (graph_url, impact_url):
        hidden_options = api.options(url(hidden_kind, hidden_pk))
        missing_options = api.options(url(hidden_kind, MISSING))
        assert hidden_options.status_code == missing_options.status_code
        assert hidden_options.content == missing_options.content


# --- The "As JSON" link -------------------------------------------------------------------


def _json_link(html: str) -> str:
    (href,) = re.findall(r'<a href="([^"]*)">As JSON</a>', html)
    return str(href).replace("&amp;", "&")


def test_the_json_link_carries_only_the_options_the_page_went_by(world: dict[str, Any]) -> None:
    kind, pk = key(world, "d_shared")
    query = {"depth": "2", "evil": '"><script>alert(1)</script>', "x": "a&b=c"}
    for url in (page_url(kind, pk), impact_page_url(kind, pk)):
        html = page_client(world["grantee"]).get(url, query).content.decode()
        assert "<script>alert" not in html
        href = _json_link(html)
        assert href.startswith(f"/api/v1/lineage/{kind}/{pk}/")
        assert "script" not in href and "evil" not in href and "a&b" not in href


def _page_records(html: str) -> set[tuple[str, int]]:
    table = html.split("<h2>Records in this graph</h2>", 1)[1]
    return {(k, int(p)) for k, p in LINK.findall(table)}


def test_the_json_link_answers_the_graph_the_page_draws(world: dict[str, Any]) -> None:
    w = world
    kind, pk = key(w, "s_shared")
    pages, api = page_client(w["grantee"]), api_client(w["grantee"])
    html = pages.get(page_url(kind, pk), {"depth": "2", "limit": "500"}).content.decode()
    body = api.get(_json_link(html)).json()
    drawn = {(n["kind"], n["pk"]) for n in body["nodes"]}
    assert _page_records(html) == drawn
    assert body["depth"] == 2


@pytest.mark.parametrize(
    ("route", "query"),
    [("graph", {"depth": "99"}), ("impact", {"only": "Production"})],
)
def test_the_json_link_of_a_page_shown_with_default_options_answers(
    world: dict[str, Any], route: str, query: dict[str, str]
) -> None:
    kind, pk = key(world, "d_shared")
    url = page_url(kind, pk) if route == "graph" else impact_page_url(kind, pk)
    html = page_client(world["grantee"]).get(url, query).content.decode()
    assert 'class="message error"' in html
    assert api_client(world["grantee"]).get(_json_link(html)).status_code == 200


# --- The drawing --------------------------------------------------------------------------

# Names may hold no '/' (or control characters); other text may hold anything.
NAME = "q\"uo'te <b>&amp; <script>alert(1)"
NASTY = "q\"uo'te <b>&amp; </text><script>alert(1)</script>"


def _svg(html: str) -> ET.Element:
    start = html.index('<svg class="lineage-graph"')
    end = html.index("</svg>", start) + len("</svg>")
    return ET.fromstring(html[start:end])  # well-formed XML, or this raises


def _nasty_world(w: dict[str, Any]) -> dict[str, Any]:
    act = actor_for(w["admin"], "cli")
    long = "L" * 250 + "<&>\"'"
    source = services.feature_source_create(actor=act, name=NAME, uri=NASTY)
    feature = services.logical_feature_create(
        actor=act, source=source, name=long, dtype="<int>&\"'"
    )
    dataset = services.dataset_create(
        actor=act, name="d" + NAME, version="1\n2\r\n<3>", features=[feature]
    )
    code = services.code_ref_create(
        actor=act, repository=f"https://x/{NASTY}\n{'r' * 400}", commit="<c>&" * 10, path=NASTY
    )
    run = services.training_run_create(
        actor=act,
        run_id="run\u202e1-nur",
        name="line one\nline two\u2066\u202b<i>",
        code_ref=code,
        datasets=[(dataset, "training")],
    )
    registered_model = make_model(w["admin"], "nasty-model")
    version = make_version(w["admin"], registered_model, training_run=run)
    deployment = services.deployment_create(
        actor=act, version=version, environment="dev", target=NASTY + "\u202e" + "x" * 900
    )
    return {"source": source, "run": run, "deployment": deployment, "long": long}


def test_the_drawing_escapes_every_name_and_stays_well_formed(world: dict[str, Any]) -> None:
    nasty = _nasty_world(world)
    client = page_client(world["admin"])
    for kind, pk in (("run", nasty["run"].pk), ("source", nasty["source"].pk)):
        for query in ({}, {"collapse": "feature,dataset"}, {"limit": "1"}):
            html = client.get(page_url(kind, pk), query).content.decode()
            assert "<script>alert" not in html and "<b>" not in html and "<i>" not in html
            svg = _svg(html)
            texts = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
            if "feature" not in query.get("collapse", ""):
                assert any(t.startswith("L" * 23) and t.endswith("…") for t in texts)
            assert all(len(t) <= 34 for t in texts)
            titles = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}title")]
            if "feature" not in query.get("collapse", ""):
                assert any(nasty["long"] in t for t in titles)  # the full name, escaped
    impact = client.get(impact_page_url("source", nasty["source"].pk)).content.decode()
    assert "<script>alert" not in impact and "<i>" not in impact


def _outside_isolation(html: str, char: str) -> list[int]:
    """Offsets of `char` not inside a <bdi> element."""
    found = []
    for match in re.finditer(char, html):
        before = html[: match.start()]
        if before.rfind("<bdi") <= before.rfind("</bdi>"):
            found.append(match.start())
    return found


def test_bidi_controls_in_labels_do_not_reorder_the_text_around_them(
    world: dict[str, Any],
) -> None:
    nasty = _nasty_world(world)
    client = page_client(world["admin"])
    pages = [
        client.get(impact_page_url("source", nasty["source"].pk)).content.decode(),
        client.get(page_url("run", nasty["run"].pk)).content.decode(),
        client.get(impact_page_url("run", nasty["run"].pk)).content.decode(),
    ]
    for html in pages:
        body = html.split("<body", 1)[1]
        body = body.split("<svg", 1)[0] + body.split("</svg>", 1)[-1]  # SVG text: one run each
        assert _outside_isolation(body, "\u202e") == []
        assert _outside_isolation(body, "\u202b") == []


# --- Large graphs -------------------------------------------------------------------------


def _hub(w: dict[str, Any], fan_out: int) -> Any:
    act = actor_for(w["admin"], "cli")
    hub = services.feature_source_create(actor=act, name="hub")
    features = [
        services.logical_feature_create(actor=act, source=hub, name=f"f{n}") for n in range(fan_out)
    ]
    dataset = services.dataset_create(actor=act, name="hub-data", features=features)
    run = services.training_run_create(actor=act, run_id="hub-run", datasets=[(dataset, "test")])
    make_version(w["admin"], w["model_a"], training_run=run)
    return hub


def test_a_walk_past_max_nodes_says_it_was_cut_short(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    hub = _hub(w, 12)
    monkeypatch.setattr(lineage_graph, "MAX_NODES", 5)
    shown = lineage_graph.graph(w["grantee"], "source", hub.pk)
    found = lineage_graph.impact(w["grantee"], "source", hub.pk)

    assert shown.truncated and found.truncated
    assert {k[0] for k in shown.nodes} == {"source", "feature"}  # it stopped widening
    assert found.results == []
    body = api_client(w["grantee"]).get(graph_url("source", hub.pk)).json()
    assert body["truncated"] is True


def test_a_walk_never_holds_more_than_max_nodes_records(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    hub = _hub(w, 12)
    monkeypatch.setattr(lineage_graph, "MAX_NODES", 5)
    shown = lineage_graph.graph(w["admin"], "source", hub.pk, limit=500)
    assert len(shown.nodes) <= 5 + 1


def test_folding_bounds_what_the_page_draws(world: dict[str, Any]) -> None:
    w = world
    hub = _hub(w, 30)
    html = page_client(w["grantee"]).get(page_url("source", hub.pk), {"limit": "3"})
    assert html.status_code == 200
    svg = _svg(html.content.decode())
    boxes = list(svg.iter("{http://www.w3.org/2000/svg}a"))
    # hub, 3 features + "27 features more", the dataset, the run, the version
    assert len(boxes) == 1 + 3 + 1 + 1 + 1 + 1
    assert "27 features more" in html.content.decode()


# --- The lineage index ----------------------------------------------------------------------


def _counts(html: str) -> dict[str, int]:
    return {
        section: int(count)
        for section, count in re.findall(
            r'<section class="card" id="([a-z]+)"><h2>[^<]*<span class="muted">(\d+)</span>', html
        )
    }


def test_the_index_counts_and_lists_only_visible_records(
    world: dict[str, Any], viewer: User
) -> None:
    w = world
    index = reverse("registry:lineage-index")
    html = page_client(w["grantee"]).get(index).content.decode()
    assert _counts(html) == {"source": 1, "feature": 1, "dataset": 1, "code": 1, "run": 2}
    assert_nothing_hidden(w, html)
    # A global viewer sees the whole catalogue, orphans and records of deleted versions too.
    everything = page_client(viewer).get(index).content.decode()
    assert _counts(everything) == {"source": 3, "feature": 3, "dataset": 4, "code": 2, "run": 6}


@pytest.mark.parametrize(
    "q",
    ["secret", "SECRET", "shared@2", "2-secret", "%", "_", "\\", "'", "*", "%secret%", "sec%t"],
)
def test_the_index_filter_never_finds_hidden_names(world: dict[str, Any], q: str) -> None:
    w = world
    response = page_client(w["grantee"]).get(reverse("registry:lineage-index"), {"q": q})
    assert response.status_code == 200
    html = response.content.decode()
    assert_nothing_hidden(w, html.replace(f'value="{q}"', ""))
    assert set(_counts(html).values()) <= {0}


@pytest.mark.parametrize(
    "q",
    [
        "x" * 100_000,
        "ｓｈａｒｅｄ",
        "\u202eshared",
        "shared\u200b",
        "🙂",
        "\ufffd",
        "  shared  ",
        "",
    ],
)
def test_odd_index_filters_are_answered(world: dict[str, Any], q: str) -> None:
    response = page_client(world["grantee"]).get(reverse("registry:lineage-index"), {"q": q})
    assert response.status_code == 200
    counts = _counts(response.content.decode())
    expected = 1 if q.strip() in ("shared", "") else 0
    assert counts["dataset"] == expected


def test_a_nul_in_the_index_filter_is_refused_at_the_edge(world: dict[str, Any]) -> None:
    response = page_client(world["grantee"]).get(reverse("registry:lineage-index"), {"q": "a\x00"})
    assert response.status_code == 400
    api = api_client(world["grantee"]).get(graph_url(*key(world, "d_shared")), {"depth": "\x00"})
    assert api.status_code == 400 and api.json()["code"] == "invalid_characters"
