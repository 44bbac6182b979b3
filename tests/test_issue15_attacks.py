"""Attack review of issue 15's maturity scorecard, bulk lineage registration and the model
page's deployments (with the deployment check).

Every road by which a user could count, read, link or retire what they may not, make the server
answer a 5xx, or make a call change what it must not. A passing test is a road found closed and
kept as a regression check (the roads found open in review were closed and their tests kept).

The scorecard world (names of what the grantee may not see contain "secret"):

  team risk:         seen (granted), secret-hidden
  team secret-team:  secret-a
  no team:           =loose (a name a spreadsheet would run)
  deleted:           gone (granted before it was deleted)
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core import permissions, tokens
from core.models import AuditEvent
from core.permissions import Perm
from governance import access
from governance.maturity import scorecard, snapshots
from registry import deployments, services
from registry.models import (
    Dataset,
    Deployment,
    FeatureSource,
    LogicalFeature,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
    TrainingRunDataset,
)
from tests.concurrency import all_at_once
from tests.factories import (
    actor_for,
    make_model,
    make_version,
    no_approval,
    place,
    superuser,
)

pytestmark = pytest.mark.django_db

SCORECARD = "/api/v1/scorecard/"
REGISTER = "/api/v1/lineage/register/"
PRODUCTION = ModelVersion.Stage.PRODUCTION
SECRET = re.compile(r"secret", re.IGNORECASE)
HUGE = "9" * 25  # past a 64-bit column
HUGER = "9" * 5000  # past Python's 4300-digit int() limit


def web(user: User | None, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def rest(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def bearer(user: User) -> APIClient:
    _, raw = tokens.token_create(actor=actor_for(user), user=user, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _streamed(response: Any) -> str:
    return b"".join(response.streaming_content).decode()


def assert_api_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert set(body) >= {"code", "message"}, body
    if code is not None:
        assert body["code"] == code, body
    return body


# --- (a) The maturity scorecard ------------------------------------------------------------


@pytest.fixture
def world(roles: dict[str, Group], outsider: User) -> dict[str, Any]:
    root = superuser()
    risk = Group.objects.create(name="risk")
    secret_team = Group.objects.create(name="secret-team")
    w: dict[str, Any] = {"root": root, "risk": risk, "secret_team": secret_team}
    w["seen"] = make_model(root, "seen", team=risk)
    make_version(root, w["seen"])
    w["hidden"] = make_model(root, "secret-hidden", team=risk)
    make_version(root, w["hidden"])
    w["secret_a"] = make_model(root, "secret-a", team=secret_team)
    w["loose"] = make_model(root, "=loose")
    w["gone"] = make_model(root, "gone", team=secret_team)
    permissions.grant(Perm.VIEW, w["seen"], user=outsider, granted_by=root)
    permissions.grant(Perm.VIEW, w["gone"], user=outsider, granted_by=root)
    services.registered_model_delete(actor=actor_for(root), registered_model=w["gone"])
    w["grantee"] = outsider
    return w


def _names(body: dict[str, Any]) -> set[str]:
    return {m["name"] for m in body["models"]}


def _group_grantee(w: dict[str, Any]) -> User:
    user = User.objects.create_user("grouped")
    group = Group.objects.create(name="readers")
    user.groups.add(group)
    permissions.grant(Perm.VIEW, w["seen"], group=group, granted_by=w["root"])
    return user


def _change_only(w: dict[str, Any]) -> User:
    user = User.objects.create_user("changer")
    permissions.grant(Perm.CHANGE, w["secret_a"], user=user, granted_by=w["root"])
    return user


@pytest.mark.parametrize("who", ["user_grant", "group_grant", "token"])
def test_the_scorecard_counts_only_the_live_models_a_grantee_may_view(
    world: dict[str, Any], who: str
) -> None:
    user = world["grantee"] if who != "group_grant" else _group_grantee(world)
    client = bearer(user) if who == "token" else rest(user)
    body = client.get(SCORECARD).json()
    assert body["organisation"]["models"] == 1 and _names(body) == {"seen"}
    assert [t["name"] for t in body["teams"]] == ["risk"] and body["teams"][0]["models"] == 1
    assert body["trend_available"] is False
    assert not SECRET.search(str(body)) and "gone" not in str(body)
    export = client.get(f"{SCORECARD}export/?format=json").json()
    assert {row["model"] for row in export} == {"seen"}
    team = client.get(f"{SCORECARD}teams/{world['risk'].pk}/").json()
    assert team["team"]["models"] == 1 and _names(team) == {"seen"}


def test_a_grant_other_than_view_counts_nothing(world: dict[str, Any]) -> None:
    body = rest(_change_only(world)).get(SCORECARD).json()
    assert body["organisation"]["models"] == 0 and body["models"] == []


@pytest.mark.parametrize("superuser_too", [False, True])
def test_an_inactive_user_gets_no_scorecard(world: dict[str, Any], superuser_too: bool) -> None:
    user = User.objects.create_user("ina", is_active=False, is_superuser=superuser_too)
    permissions.grant(Perm.VIEW, world["seen"], user=user, granted_by=world["root"])
    client = APIClient()
    client.force_login(user)
    for url in (SCORECARD, f"{SCORECARD}trend/", f"{SCORECARD}export/?format=json"):
        assert client.get(url).status_code == 401
    assert scorecard.scorecard_for(user).organisation.models == 0
    assert not snapshots.may_see_trends(user)


def test_a_hidden_team_answers_exactly_as_a_missing_one(world: dict[str, Any]) -> None:
    client = rest(world["grantee"])
    hidden = world["secret_team"].pk
    missing = Group.objects.order_by("-pk").first().pk + 100  # type: ignore[union-attr]
    a = assert_api_error(client.get(f"{SCORECARD}teams/{hidden}/"), 404)
    b = assert_api_error(client.get(f"{SCORECARD}teams/{missing}/"), 404)
    assert a["code"] == b["code"] == "team_not_found"
    assert a["message"].replace(str(hidden), "N") == b["message"].replace(str(missing), "N")
    # A role group is a group too; a grantee learns nothing of it either.
    role = Group.objects.get(name="viewer").pk
    assert_api_error(client.get(f"{SCORECARD}teams/{role}/"), 404, "team_not_found")
    assert web(world["grantee"]).get(f"/scorecard/teams/{hidden}/").status_code == 404


@pytest.mark.parametrize("team", [HUGE, HUGER, "00001"])
@pytest.mark.parametrize("who", ["viewer", "grantee"])
def test_odd_team_ids_in_the_path_are_a_404_never_a_500(
    request: pytest.FixtureRequest, world: dict[str, Any], viewer: User, who: str, team: str
) -> None:
    user = viewer if who == "viewer" else world["grantee"]
    response = rest(user).get(f"{SCORECARD}teams/{team}/")
    if team == "00001":
        assert response.status_code in (200, 404)
    else:
        assert_api_error(response, 404)
    assert web(user).get(f"/scorecard/teams/{team}/").status_code in (
        (200, 404) if team == "00001" else (404,)
    )


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=1001",
        "limit=abc",
        "limit=1.5",
        "limit=%EF%BC%91",
        f"limit={HUGE}",
        f"limit={HUGER}",
        "limit=%00",
    ],
)
def test_malformed_limits_are_a_400_with_a_code(
    world: dict[str, Any], viewer: User, query: str
) -> None:
    code = "invalid_characters" if query.endswith("%00") else "invalid_filter"
    for url in (SCORECARD, f"{SCORECARD}teams/{world['risk'].pk}/"):
        assert_api_error(rest(viewer).get(f"{url}?{query}"), 400, code)


@pytest.mark.parametrize("query", ["limit=1", "limit=1000", "limit=", "limit=%202%20"])
def test_valid_limits_cut_the_model_list_but_not_the_counts(
    world: dict[str, Any], viewer: User, query: str
) -> None:
    body = rest(viewer).get(f"{SCORECARD}?{query}").json()
    assert body["models_total"] == body["organisation"]["models"] == 4
    assert len(body["models"]) <= 4


@pytest.mark.parametrize(
    "query",
    [
        "days=0",
        "days=-1",
        "days=3661",
        f"days={HUGE}",
        f"days={HUGER}",
        "days=1e2",
        "team=-1",
        f"team={HUGER}",
        "team=abc",
        "team=%EF%BC%91",
    ],
)
def test_malformed_trend_options_are_a_400_with_a_code(viewer: User, query: str) -> None:
    assert_api_error(rest(viewer).get(f"{SCORECARD}trend/?{query}"), 400, "invalid_filter")


@pytest.mark.parametrize("query", [f"team={HUGE}", "team=0", "team=424242", "days=3660", "days=1"])
def test_odd_but_valid_trend_options_answer(
    world: dict[str, Any], viewer: User, query: str
) -> None:
    snapshots.maturity_snapshot_take()
    response = rest(viewer).get(f"{SCORECARD}trend/?{query}")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert_api_error(response, 400, "invalid_filter")


@pytest.mark.parametrize("who", ["grantee", "group_grantee", "change_only", "token_grantee"])
def test_trends_are_only_for_whole_organisation_viewers(world: dict[str, Any], who: str) -> None:
    snapshots.maturity_snapshot_take()
    user = {
        "grantee": world["grantee"],
        "group_grantee": _group_grantee(world) if who == "group_grantee" else None,
        "change_only": _change_only(world) if who == "change_only" else None,
        "token_grantee": world["grantee"],
    }[who]
    client = bearer(user) if who == "token_grantee" else rest(user)
    for query in ("", "?team=0", f"?team={world['risk'].pk}", "?days=3660"):
        assert_api_error(client.get(f"{SCORECARD}trend/{query}"), 403, "permission_denied")
    for url in ("/scorecard/", f"/scorecard/teams/{world['risk'].pk}/"):
        page = web(user).get(url)
        assert page.status_code in (200, 404)
        assert "Trend" not in page.content.decode()


def test_a_whole_organisation_viewer_gets_the_trend_with_a_token(
    world: dict[str, Any], viewer: User
) -> None:
    snapshots.maturity_snapshot_take()
    body = bearer(viewer).get(f"{SCORECARD}trend/").json()
    assert [p["models"] for p in body["points"]] == [4]  # every live model, none deleted


@pytest.mark.parametrize("fmt", ["xml", "CSV", "csv ", "", "json;csv", "api", "txt"])
def test_unknown_export_formats_are_a_400_with_a_code(viewer: User, fmt: str) -> None:
    response = rest(viewer).get(f"{SCORECARD}export/", {"format": fmt})
    assert_api_error(response, 400, "invalid_filter")


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/*"])
def test_export_without_a_format_answers_json(
    world: dict[str, Any], viewer: User, accept: str
) -> None:
    response = rest(viewer).get(f"{SCORECARD}export/", HTTP_ACCEPT=accept)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    assert {row["model"] for row in response.json()} >= {"seen", "=loose"}


@pytest.mark.parametrize("accept", ["text/csv", "text/csv; charset=utf-8"])
def test_export_asked_for_by_accept_header_is_the_csv(
    world: dict[str, Any], viewer: User, accept: str
) -> None:
    response = rest(viewer).get(f"{SCORECARD}export/", HTTP_ACCEPT=accept)
    assert response.status_code in (200, 406)
    if response.status_code == 200:
        assert response["Content-Type"].startswith("text/csv")
        assert response.streaming
        rows = list(csv.reader(io.StringIO(_streamed(response))))
        assert rows[0][0] == "model" and "'=loose" in {r[0] for r in rows}


NASTY_CELLS = ["=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1+1", "\r=1+1", '=HYPERLINK("x")']


@pytest.mark.parametrize("cell", NASTY_CELLS)
def test_the_csv_export_quotes_formula_cells_from_team_names(
    world: dict[str, Any], viewer: User, cell: str
) -> None:
    world["risk"].name = cell
    world["risk"].save(update_fields=["name"])
    response = rest(viewer).get(f"{SCORECARD}export/?format=csv")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="scorecard.csv"'
    rows = list(csv.DictReader(io.StringIO(_streamed(response))))
    teams = {row["team"] for row in rows}
    models = {row["model"] for row in rows}
    assert f"'{cell}" in teams and "'=loose" in models
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # JSON is data, not a spreadsheet: left as it is.
    data = rest(viewer).get(f"{SCORECARD}export/?format=json").json()
    assert cell in {row["team"] for row in data} and "=loose" in {row["model"] for row in data}


@pytest.mark.parametrize("who", ["anonymous", "inactive", "post"])
def test_errors_of_the_csv_export_are_json_errors(viewer: User, who: str) -> None:
    client = APIClient()
    if who == "inactive":
        client.force_login(User.objects.create_user("ina", is_active=False))
    elif who == "post":
        client.force_authenticate(viewer)
    url = f"{SCORECARD}export/?format=csv"
    response = client.post(url) if who == "post" else client.get(url)
    assert response.status_code in (401, 403, 405)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    assert set(response.json()) >= {"code", "message"}


def test_the_csv_export_of_someone_who_sees_nothing_is_a_header(outsider: User) -> None:
    response = rest(outsider).get(f"{SCORECARD}export/?format=csv")
    text = _streamed(response)
    assert text.strip() == ",".join(scorecard.EXPORT_COLUMNS)


def test_export_routes_refuse_writes_with_a_json_error(viewer: User) -> None:
    for url in (SCORECARD, f"{SCORECARD}export/", f"{SCORECARD}trend/"):
        assert_api_error(rest(viewer).post(url, {}), 405)


def test_a_model_scorecard_of_a_hidden_deleted_or_renamed_model_is_the_missing_404(
    world: dict[str, Any], viewer: User
) -> None:
    grantee = world["grantee"]
    missing = assert_api_error(rest(grantee).get(f"{SCORECARD}models/nope/"), 404)
    for name in ("secret-hidden", "gone"):
        hidden = assert_api_error(rest(grantee).get(f"{SCORECARD}models/{name}/"), 404)
        assert hidden["code"] == missing["code"]
        assert hidden["message"].replace(name, "X") == missing["message"].replace("nope", "X")
        assert web(grantee).get(f"/models/{name}/scorecard/").status_code == 404
    assert_api_error(rest(viewer).get(f"{SCORECARD}models/gone/"), 404)
    services.registered_model_update(
        actor=actor_for(world["root"]), registered_model=world["seen"], name="seen-renamed"
    )
    assert_api_error(rest(grantee).get(f"{SCORECARD}models/seen/"), 404)
    assert rest(grantee).get(f"{SCORECARD}models/seen-renamed/").status_code == 200


def test_a_model_moved_between_teams_counts_in_its_new_team_only(
    world: dict[str, Any], viewer: User
) -> None:
    services.registered_model_update(
        actor=actor_for(world["root"]), registered_model=world["seen"], team=world["secret_team"]
    )
    risk = rest(viewer).get(f"{SCORECARD}teams/{world['risk'].pk}/").json()
    moved = rest(viewer).get(f"{SCORECARD}teams/{world['secret_team'].pk}/").json()
    assert _names(risk) == {"secret-hidden"} and _names(moved) == {"secret-a", "seen"}
    # The grantee now sees the model under the team whose name it did not know before.
    body = rest(world["grantee"]).get(SCORECARD).json()
    assert [t["name"] for t in body["teams"]] == ["secret-team"]


def test_metrics_never_read_a_deleted_focus_version(data_scientist: User) -> None:
    """The production version deleted: the focus falls back to the newest live version, and
    no metric answers from the deleted one (its approved card, its deployment)."""
    root = superuser()
    registered_model = make_model(data_scientist, "churn")
    v1 = make_version(data_scientist, registered_model)
    v2 = place(make_version(data_scientist, registered_model, signature=None), PRODUCTION)
    before = scorecard.scorecard_for(data_scientist, registered_model=registered_model)
    assert before.models[0].row.focus_number == 2
    place(v2, ModelVersion.Stage.ARCHIVED)
    services.version_delete(actor=actor_for(root), version=v2)
    after = scorecard.scorecard_for(data_scientist, registered_model=registered_model)
    row = after.models[0].row
    assert (row.focus_id, row.focus_number) == (v1.pk, 1)
    answers = {m.metric.key: m.bucket for m in after.models[0].metrics}
    assert answers["deployment_recorded"] is None and answers["production_reviewed"] is None
    services.version_delete(actor=actor_for(root), version=v1)
    empty = scorecard.scorecard_for(data_scientist, registered_model=registered_model)
    assert empty.models[0].row.focus_id is None


def test_the_organisation_roll_up_is_the_sum_of_the_visible_models(
    world: dict[str, Any], viewer: User
) -> None:
    body = rest(viewer).get(f"{SCORECARD}?limit=1000").json()
    org = body["organisation"]["distribution"]
    summed = {k: 0 for k in org}
    for model in body["models"]:
        for k, n in model["distribution"].items():
            summed[k] += n
    assert summed == org
    teams = {k: sum(t["distribution"][k] for t in body["teams"]) for k in org}
    assert teams == org


# Access review: manage_access on the model (role or grant, user or group), CSRF, 404 first.


def _access_review(client: Client, name: str) -> int:
    return client.post(f"/models/{name}/access/review/").status_code


@pytest.mark.parametrize("via", ["user_grant", "group_grant"])
def test_access_review_by_a_per_model_manager(world: dict[str, Any], via: str) -> None:
    user = User.objects.create_user("manager")
    if via == "user_grant":
        permissions.grant(Perm.VIEW, world["seen"], user=user, granted_by=world["root"])
        permissions.grant(Perm.MANAGE_ACCESS, world["seen"], user=user, granted_by=world["root"])
    else:
        group = Group.objects.create(name="managers")
        user.groups.add(group)
        permissions.grant(Perm.VIEW, world["seen"], group=group, granted_by=world["root"])
        permissions.grant(Perm.MANAGE_ACCESS, world["seen"], group=group, granted_by=world["root"])
    assert _access_review(web(user), "seen") == 302
    assert _access_review(web(user), "secret-hidden") == 404
    event = AuditEvent.objects.get(action="access.reviewed")
    assert event.registered_model_id == world["seen"].pk and event.actor == user
    answers = scorecard.scorecard_for(user, registered_model=world["seen"]).models[0].metrics
    assert {m.metric.key: m.bucket for m in answers}["access_reviewed"] == 2


def test_access_review_is_refused_without_manage_access_csrf_or_a_live_model(
    world: dict[str, Any], viewer: User, data_scientist: User
) -> None:
    assert _access_review(web(viewer), "seen") == 403
    assert _access_review(web(data_scientist), "seen") == 403  # change is not manage_access
    assert _access_review(web(world["grantee"]), "secret-hidden") == 404
    assert _access_review(web(world["root"]), "gone") == 404
    assert _access_review(web(world["root"], csrf=True), "seen") == 403
    assert _access_review(web(None), "seen") == 302  # to the sign-in page
    assert not AuditEvent.objects.filter(action="access.reviewed").exists()
    with pytest.raises(Exception) as refused:
        access.access_review_record(actor=actor_for(viewer, "web"), registered_model=world["seen"])
    assert getattr(refused.value, "code", "") in ("permission_denied", "forbidden")


# --- (b) Bulk lineage registration ----------------------------------------------------------


def _payload(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "run": {"run_id": "r-1", "name": "nightly", "params": {"lr": 0.1}},
        "code_ref": {"repository": "git@x:ml.git", "commit": "abc123", "path": "train.py"},
        "feature_sources": [{"name": "warehouse.events", "kind": "table"}],
        "datasets": [
            {
                "name": "events",
                "version": "3",
                "role": "training",
                "features": [{"source": "warehouse.events", "name": "clicks", "dtype": "int"}],
            },
            {"name": "holdout", "version": "3", "role": "validation"},
        ],
        "model_versions": [{"name": "churn", "version": 1}],
    }
    body.update(over)
    return body


def _snapshot() -> dict[str, Any]:
    return {
        "sources": sorted(FeatureSource.objects.values_list("name", "kind", "uri")),
        "features": sorted(LogicalFeature.objects.values_list("source__name", "name", "dtype")),
        "datasets": sorted(Dataset.objects.values_list("name", "version", "uri", "digest")),
        "dataset_features": sorted(Dataset.features.through.objects.values_list("pk")),
        "runs": sorted(TrainingRun.objects.values_list("run_id", "name", "code_ref_id")),
        "links": sorted(TrainingRunDataset.objects.values_list("training_run_id", "dataset_id")),
        "versions": sorted(ModelVersion.objects.values_list("pk", "training_run_id")),
        "events": AuditEvent.objects.exclude(action__in=("access.refused", "gate.refused"))
        .exclude(action__endswith=".refused")
        .count(),
    }


@pytest.fixture
def churn(data_scientist: User) -> RegisteredModel:
    registered_model = make_model(data_scientist, "churn")
    make_version(data_scientist, registered_model)
    return registered_model


def _post(user: User, body: Any) -> Any:
    return rest(user).post(REGISTER, body, format="json")


def test_a_repeat_changes_nothing_and_so_does_a_reordered_payload(
    data_scientist: User, churn: RegisteredModel
) -> None:
    assert _post(data_scientist, _payload()).status_code == 201
    before = _snapshot()
    again = _payload()
    again["datasets"] = list(reversed(again["datasets"]))
    again["model_versions"] = again["model_versions"] * 3
    for body in (_payload(), again):
        response = _post(data_scientist, body)
        assert response.status_code == 200 and response.json()["changed"] is False
    assert _snapshot() == before


@pytest.mark.parametrize(
    "change",
    [
        {"datasets": [{"name": "Events", "version": "3", "role": "training"}]},
        {"feature_sources": [{"name": "Warehouse.Events"}]},
        {"code_ref": {"repository": "git@x:ML.git", "commit": "abc123", "path": "train.py"}},
    ],
)
def test_names_differing_only_in_case_are_other_records_never_a_500(
    data_scientist: User, churn: RegisteredModel, change: dict[str, Any]
) -> None:
    assert _post(data_scientist, _payload()).status_code == 201
    body = _payload(run={"run_id": "r-2"}, model_versions=[], **change)
    first = _post(data_scientist, body)
    assert first.status_code == 201, first.content
    again = _post(data_scientist, body)
    assert again.status_code == 200 and again.json()["changed"] is False


@pytest.mark.parametrize(
    "change, field",
    [
        ({"feature_sources": [{"name": " warehouse.events"}]}, "feature_sources"),
        ({"datasets": [{"name": "events ", "version": "3"}]}, "datasets"),
        ({"datasets": [{"name": "ev\u200bents"}]}, "datasets"),
        ({"datasets": [{"name": "a/b"}]}, "datasets"),
        (
            {"datasets": [{"name": "x", "features": [{"source": "s", "name": "f\u202e"}]}]},
            "datasets",
        ),
        ({"model_versions": [{"name": "churn ", "version": 1}]}, None),
    ],
)
def test_names_with_white_space_or_controls_are_refused_with_nothing_written(
    data_scientist: User, churn: RegisteredModel, change: dict[str, Any], field: str | None
) -> None:
    before = _snapshot()
    response = _post(data_scientist, _payload(**change))
    assert response.status_code in (400, 404), response.content
    assert set(response.json()) >= {"code", "message"}
    assert _snapshot() == before


def test_white_space_around_a_dataset_version_names_the_same_dataset(
    data_scientist: User, churn: RegisteredModel
) -> None:
    assert _post(data_scientist, _payload()).status_code == 201
    body = _payload()
    body["datasets"][1]["version"] = " 3 "
    response = _post(data_scientist, body)
    assert response.status_code == 200, response.content
    assert Dataset.objects.filter(name="holdout").count() == 1


@pytest.mark.parametrize(
    "datasets",
    [
        [{"name": "events", "role": "training"}, {"name": "events", "role": "training"}],
        [
            {"name": "e", "features": [{"source": "warehouse.events", "name": "c", "dtype": "a"}]},
            {"name": "f", "features": [{"source": "warehouse.events", "name": "c", "dtype": "b"}]},
        ],
        [
            {"name": "e", "uri": "s3://a", "role": "training"},
            {"name": "e", "uri": "s3://b", "role": "test"},
        ],
    ],
)
def test_a_payload_naming_one_record_twice_differently_is_refused(
    data_scientist: User, churn: RegisteredModel, datasets: list[dict[str, Any]]
) -> None:
    before = _snapshot()
    assert_api_error(_post(data_scientist, _payload(datasets=datasets)), 400, "duplicate_record")
    assert _snapshot() == before


@pytest.mark.parametrize(
    "change",
    [
        {"code_ref": None},
        {"code_ref": {"repository": "git@x:ml.git", "commit": "other"}},
        {"run": {"run_id": "r-1", "params": {"lr": 0.2}}},
        {"run": {"run_id": "r-1", "status": "failed"}},
        {"datasets": [{"name": "events", "version": "3", "features": []}]},
        {"datasets": [{"name": "events", "version": "3", "uri": "s3://elsewhere"}]},
        {"feature_sources": [{"name": "warehouse.events", "kind": "stream"}]},
    ],
)
def test_an_existing_record_is_never_changed(
    data_scientist: User, churn: RegisteredModel, change: dict[str, Any]
) -> None:
    assert _post(data_scientist, _payload()).status_code == 201
    before = _snapshot()
    assert_api_error(_post(data_scientist, _payload(**change)), 409, "lineage_mismatch")
    assert _snapshot() == before


def test_a_sealed_version_keeps_what_it_was_trained_on(
    data_scientist: User, churn: RegisteredModel
) -> None:
    assert _post(data_scientist, _payload()).status_code == 201
    place(ModelVersion.objects.get(registered_model=churn, version=1), PRODUCTION)
    before = _snapshot()
    body = _payload()
    body["datasets"].append({"name": "new-data", "role": "test"})
    assert_api_error(_post(data_scientist, body), 409, "version_sealed")
    assert _snapshot() == before
    assert not Dataset.objects.filter(name="new-data").exists()  # all or nothing


def test_a_sealed_version_of_a_model_the_caller_cannot_see_still_seals_the_run(
    data_scientist: User, churn: RegisteredModel, outsider: User
) -> None:
    """The run trained a version the caller may see and a sealed one of a hidden model."""
    root = superuser()
    assert _post(data_scientist, _payload()).status_code == 201
    secret = make_model(root, "secret-model")
    v = make_version(root, secret)
    services.version_update(
        actor=actor_for(root), version=v, training_run=TrainingRun.objects.get(run_id="r-1")
    )
    place(v, PRODUCTION)
    body = _payload()
    body["datasets"].append({"name": "new-data", "role": "test"})
    before = _snapshot()
    refused = assert_api_error(_post(data_scientist, body), 409, "version_sealed")
    assert "secret" not in str(refused)
    assert _snapshot() == before


def test_a_sealed_version_never_gains_a_run(data_scientist: User, churn: RegisteredModel) -> None:
    place(ModelVersion.objects.get(registered_model=churn, version=1), ModelVersion.Stage.STAGING)
    before = _snapshot()
    assert_api_error(_post(data_scientist, _payload()), 409, "version_sealed")
    assert _snapshot() == before


def test_a_version_with_an_open_promotion_request_never_gains_a_run(
    data_scientist: User, ml_engineer: User, churn: RegisteredModel
) -> None:
    from governance import promotions

    version = ModelVersion.objects.get(registered_model=churn, version=1)
    permissions.grant(Perm.REQUEST_PROMOTION, churn, user=data_scientist, granted_by=superuser())
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.READY)
    promotions.promotion_request_create(
        actor=actor_for(data_scientist),
        version=version,
        target_stage=PRODUCTION,
        justification="go",
    )
    before = _snapshot()
    assert_api_error(_post(data_scientist, _payload()), 409, "version_sealed")
    assert _snapshot() == before


def _hidden_world() -> dict[str, Any]:
    root = superuser()
    act = actor_for(root)
    secret = make_model(root, "secret-model")
    sv = make_version(root, secret)
    src = services.feature_source_create(actor=act, name="secret.source")
    feat = services.logical_feature_create(actor=act, source=src, name="secret-f")
    data = services.dataset_create(actor=act, name="secret-data", features=[feat])
    ref = services.code_ref_create(actor=act, repository="secret.git", commit="c0ffee")
    run = services.training_run_create(
        actor=act, run_id="secret-run", code_ref=ref, datasets=[(data, "training")]
    )
    services.version_update(actor=act, version=sv, training_run=run)
    return {"model": secret, "version": sv}


@pytest.mark.parametrize(
    "change",
    [
        {"run": {"run_id": "secret-run"}},
        {"code_ref": {"repository": "secret.git", "commit": "c0ffee"}},
        {"feature_sources": [{"name": "secret.source"}]},
        {"datasets": [{"name": "secret-data"}]},
        {"datasets": [{"name": "d", "features": [{"source": "secret.source", "name": "x"}]}]},
        {"datasets": [{"name": "secret-data", "version": "1", "role": "test"}]},
    ],
)
def test_records_the_caller_may_not_see_are_never_linked(
    outsider: User, change: dict[str, Any]
) -> None:
    """An outsider with a role's add permissions (no view) and change on one model."""
    _hidden_world()
    mine = make_model(superuser(), "mine")
    make_version(superuser(), mine)
    outsider = _recorder(outsider, mine)
    before = _snapshot()
    base = _payload(model_versions=[{"name": "mine", "version": 1}])
    response = _post(outsider, {**base, **change})
    assert response.status_code in (400, 404), response.content
    assert set(response.json()) >= {"code", "message"}
    assert _snapshot() == before


def _recorder(user: User, registered_model: RegisteredModel) -> User:
    """A user with the lineage add permissions (as a role would give) and view and change on
    one model only."""
    root = superuser()
    for perm in (Perm.VIEW, Perm.CHANGE):
        permissions.grant(perm, registered_model, user=user, granted_by=root)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=[
                "add_featuresource",
                "add_logicalfeature",
                "add_dataset",
                "add_coderef",
                "add_trainingrun",
            ]
        )
    )
    return User.objects.get(pk=user.pk)


def test_a_version_of_a_hidden_deleted_or_missing_model_is_the_same_404(
    data_scientist: User, outsider: User, churn: RegisteredModel
) -> None:
    root = superuser()
    _hidden_world()
    gone = make_model(root, "gone")
    make_version(root, gone)
    services.registered_model_delete(actor=actor_for(root), registered_model=gone)
    v2 = make_version(data_scientist, churn)
    services.version_delete(actor=actor_for(root), version=v2)
    recorder = _recorder(outsider, churn)
    answers = {}
    cases = [("nope", 1), ("secret-model", 1), ("gone", 1), ("churn", 2), ("churn", 99)]
    for name, number in cases:
        body = _payload(model_versions=[{"name": name, "version": number}])
        refused = assert_api_error(_post(recorder, body), 404)
        answers[(name, number)] = (
            refused["code"],
            refused["message"].replace(name, "X").replace(str(number), "N"),
        )
    assert answers[("nope", 1)] == answers[("secret-model", 1)] == answers[("gone", 1)]
    assert answers[("churn", 2)] == answers[("churn", 99)]
    assert not TrainingRun.objects.filter(run_id="r-1").exists()


def test_all_or_nothing_when_the_last_version_is_forbidden(
    outsider: User, churn: RegisteredModel
) -> None:
    root = superuser()
    other = make_model(root, "other")
    make_version(root, other)
    recorder = _recorder(outsider, churn)
    permissions.grant(Perm.VIEW, other, user=recorder, granted_by=root)  # view, not change
    before = _snapshot()
    versions = [{"name": "churn", "version": 1}, {"name": "other", "version": 1}]
    assert_api_error(_post(recorder, _payload(model_versions=versions)), 403)
    assert _snapshot() == before


def test_a_per_model_changer_without_the_add_permissions_is_refused(
    outsider: User, churn: RegisteredModel
) -> None:
    for perm in (Perm.VIEW, Perm.CHANGE):
        permissions.grant(perm, churn, user=outsider, granted_by=superuser())
    before = _snapshot()
    assert_api_error(_post(outsider, _payload()), 403)
    assert _snapshot() == before


@pytest.mark.parametrize("who", ["anonymous", "inactive", "viewer"])
def test_those_without_the_right_to_record_are_refused_in_json(
    viewer: User, churn: RegisteredModel, who: str
) -> None:
    if who == "anonymous":
        client = APIClient()
    elif who == "inactive":
        user = User.objects.create_user("ina", is_active=False, is_superuser=True)
        client = APIClient()
        client.force_login(user)
    else:
        client = bearer(viewer)
    response = client.post(REGISTER, _payload(), format="json")
    assert response.status_code in (401, 403)
    assert set(response.json()) >= {"code", "message"}
    assert not TrainingRun.objects.exists()


def test_a_token_registers_as_its_user(data_scientist: User, churn: RegisteredModel) -> None:
    response = bearer(data_scientist).post(REGISTER, _payload(), format="json")
    assert response.status_code == 201
    assert TrainingRun.objects.get(run_id="r-1").created_by == data_scientist


BAD_BODIES: list[Any] = [
    [],
    "x",
    None,
    {"run": "r-1"},
    {"run": {}},
    {"run": {"run_id": ""}},
    {"run": {"run_id": "r" * 257}},
    {"run": {"run_id": "r-1", "params": "x"}},
    {"run": {"run_id": "r-1", "params": {"k": {"nested": 1}}}},
    {"run": {"run_id": "r-1", "params": {"k" * 300: 1}}},
    {"run": {"run_id": "r-1", "params": {"k\u0000": 1}}},
    {"run": {"run_id": "r-1", "started_at": "2026-01-01T00:00:00"}},
    {"run": {"run_id": "r-1", "colour": "red"}},
    {"run": {"run_id": "r-\u0000"}},
    {"run": {"run_id": "r-1"}, "code_ref": {"repository": "x" * 501, "commit": "c"}},
    {"run": {"run_id": "r-1"}, "code_ref": {"repository": "x", "commit": "c" * 65}},
    {"run": {"run_id": "r-1"}, "code_ref": {"repository": "x", "commit": "c", "path": "p" * 501}},
    {"run": {"run_id": "r-1"}, "datasets": [{"name": "d", "version": "v" * 129}]},
    {"run": {"run_id": "r-1"}, "datasets": [{"name": "d", "uri": "u" * 1001}]},
    {"run": {"run_id": "r-1"}, "datasets": [{"name": "d", "role": "TRAINING"}]},
    {"run": {"run_id": "r-1"}, "datasets": None},
    {"run": {"run_id": "r-1"}, "datasets": [{"name": "d" * 257}]},
    {"run": {"run_id": "r-1"}, "datasets": [{"name": "d"}] * 101},
    {
        "run": {"run_id": "r-1"},
        "datasets": [
            {"name": "d", "features": [{"source": "s", "name": f"f{i}"} for i in range(1001)]}
        ],
    },
    {"run": {"run_id": "r-1"}, "feature_sources": [{"name": f"s{i}"} for i in range(101)]},
    {"run": {"run_id": "r-1"}, "model_versions": [{"name": "churn", "version": 0}]},
    {"run": {"run_id": "r-1"}, "model_versions": [{"name": "churn", "version": 2**31}]},
    {"run": {"run_id": "r-1"}, "model_versions": [{"name": "churn", "version": True}]},
    {"run": {"run_id": "r-1"}, "model_versions": [{"name": "churn", "version": 1.5}]},
    {
        "run": {"run_id": "r-1"},
        "model_versions": [{"name": "c", "version": i + 1} for i in range(101)],
    },
    {"run": {"run_id": "r-1"}, "feature_sources": [{"name": "s", "kind": "nope"}]},
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_malformed_or_oversized_payloads_are_a_4xx_with_nothing_written(
    data_scientist: User, churn: RegisteredModel, body: Any
) -> None:
    before = _snapshot()
    response = _post(data_scientist, body)
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()) >= {"code", "message"}
    assert _snapshot() == before


def test_a_run_that_ends_before_it_starts_is_a_400_not_a_conflict(
    data_scientist: User, churn: RegisteredModel
) -> None:
    run = {
        "run_id": "r-1",
        "started_at": "2026-01-02T00:00:00Z",
        "ended_at": "2026-01-01T00:00:00Z",
    }
    before = _snapshot()
    assert_api_error(_post(data_scientist, _payload(run=run)), 400)
    assert _snapshot() == before


def test_unicode_names_round_trip_idempotently(
    data_scientist: User, churn: RegisteredModel
) -> None:
    body = _payload(
        feature_sources=[{"name": "倉庫.イベント"}],
        datasets=[
            {
                "name": "データ 🚀",
                "version": "é",
                "features": [{"source": "倉庫.イベント", "name": "ç"}],
            }
        ],
    )
    assert _post(data_scientist, body).status_code == 201
    assert _post(data_scientist, body).status_code == 200


RAW_BODIES = [
    '{"run": {"run_id": "r-1", "params": {"note": "\\ud800"}}}',
    '{"run": {"run_id": "r-\\udfff"}}',
    '{"run": {"run_id": "r-1", "name": "\\ud800"}}',
    '{"run": {"run_id": "r-1"}, "datasets": [{"name": "d", "description": "\\ud800"}]}',
    '{"run": {"run_id": "r-1"}, "code_ref": {"repository": "\\ud800", "commit": "c"}}',
]


@pytest.mark.parametrize("raw", RAW_BODIES, ids=range(len(RAW_BODIES)))
def test_lone_surrogates_in_the_payload_are_a_4xx(
    data_scientist: User, churn: RegisteredModel, raw: str
) -> None:
    before = _snapshot()
    response = rest(data_scientist).post(REGISTER, raw, content_type="application/json")
    assert 400 <= response.status_code < 500, response.content
    assert _snapshot() == before


@pytest.mark.postgres
@pytest.mark.parametrize(
    "params",
    [{"note": "a\u0000b"}, {"note": "\u0000"}],
)
def test_params_postgres_cannot_store_are_a_400(
    data_scientist: User, churn: RegisteredModel, params: dict[str, Any]
) -> None:
    before = _snapshot()
    response = rest(data_scientist).post(
        REGISTER,
        _payload(run={"run_id": "r-1", "params": params}),
        format="json",
    )
    assert 400 <= response.status_code < 500, response.content
    assert _snapshot() == before


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_calls_linking_different_runs_to_one_version_at_once_link_one(
    roles: dict[str, Group],
) -> None:
    user = User.objects.create_user("ds")
    user.groups.add(roles["data scientist"])
    registered_model = make_model(user, "churn")
    make_version(user, registered_model)

    def call(i: int) -> int:
        response = _post(user, _payload(run={"run_id": f"race-{i}"}))
        return int(response.status_code)

    statuses = sorted(all_at_once(2, call, close_connections=True))
    assert statuses == [201, 409], statuses
    version = ModelVersion.objects.get(registered_model=registered_model, version=1)
    assert version.training_run is not None
    assert TrainingRun.objects.count() == 1  # the loser wrote nothing


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_bulk_racing_a_promotion_request_never_changes_a_sealed_version(
    roles: dict[str, Group],
) -> None:
    """A call adding datasets to a run and a promotion request of the version it trained, at
    once: either the datasets were added before the request opened, or the call is refused."""
    from governance import promotions

    user = User.objects.create_user("ds")
    user.groups.add(roles["ml engineer"])
    registered_model = make_model(user, "churn")
    version = make_version(user, registered_model)
    assert _post(user, _payload()).status_code == 201
    ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.READY)
    body = _payload()
    body["datasets"].append({"name": "late", "role": "test"})

    def call(i: int) -> Any:
        if i == 0:
            return _post(user, body).status_code
        try:
            request = promotions.promotion_request_create(
                actor=actor_for(user),
                version=ModelVersion.objects.get(pk=version.pk),
                target_stage=PRODUCTION,
                justification="go",
            )
        except Exception as error:  # noqa: BLE001 - the answer is what is checked
            return type(error).__name__
        return request.created_at

    bulk_status, opened = all_at_once(2, call, close_connections=True)
    assert bulk_status in (201, 409), bulk_status
    link = TrainingRunDataset.objects.filter(dataset__name="late").first()
    if bulk_status == 201 and not isinstance(opened, str):
        # The datasets were linked before the request opened (its row lock waited).
        assert link is not None
        assert AuditEvent.objects.get(action="training_run.datasets_linked").occurred_at <= opened
    if bulk_status == 409:
        assert link is None


# --- (c) Deployments on the model page, and the deployment check -----------------------------


def _deploy(user: User, version: ModelVersion, environment: str = "prod") -> Deployment:
    return services.deployment_create(
        actor=actor_for(user),
        version=version,
        environment=environment,
        target=f"https://serve/{version.registered_model.name}/v{version.version}/{environment}",
    )


@pytest.fixture
def serving(data_scientist: User) -> dict[str, Any]:
    root = superuser()
    churn = make_model(root, "churn")
    v1 = place(make_version(root, churn), PRODUCTION)
    fraud = make_model(root, "fraud")
    f1 = place(make_version(root, fraud), PRODUCTION)
    return {
        "root": root,
        "churn": churn,
        "v1": v1,
        "dep": _deploy(root, v1),
        "fraud": fraud,
        "fraud_dep": _deploy(root, f1),
    }


def _retire_url(name: str, pk: int) -> str:
    return f"/models/{name}/deployments/{pk}/retire/"


def _active(pk: int) -> bool:
    return Deployment.objects.get(pk=pk).status == Deployment.Status.ACTIVE


@pytest.mark.parametrize("via", ["user_grant", "group_grant", "role"])
def test_retire_needs_change_on_the_model_that_owns_the_deployment(
    serving: dict[str, Any], roles: dict[str, Group], via: str
) -> None:
    s = serving
    user = User.objects.create_user("changer")
    if via == "role":
        user.groups.add(roles["data scientist"])
        # The role changes every model: the deployment of another model through this one's URL
        # is still not found.
    elif via == "user_grant":
        for perm in (Perm.VIEW, Perm.CHANGE):
            permissions.grant(perm, s["churn"], user=user, granted_by=s["root"])
    else:
        group = Group.objects.create(name="churners")
        user.groups.add(group)
        for perm in (Perm.VIEW, Perm.CHANGE):
            permissions.grant(perm, s["churn"], group=group, granted_by=s["root"])
    client = web(user)
    assert client.post(_retire_url("churn", s["fraud_dep"].pk)).status_code == 404
    assert client.post(_retire_url("churn", 10**18)).status_code == 404
    assert client.post(_retire_url("churn", int(HUGE))).status_code == 404
    assert _active(s["fraud_dep"].pk)
    expected_fraud = 302 if via == "role" else 404
    assert client.post(_retire_url("fraud", s["dep"].pk)).status_code == 404
    assert _active(s["dep"].pk)
    response = client.post(_retire_url("churn", s["dep"].pk))
    assert response.status_code == 302 and not _active(s["dep"].pk)
    event = AuditEvent.objects.get(action="deployment.retired")
    assert event.actor == user and event.registered_model_id == s["churn"].pk
    assert client.post(_retire_url("fraud", s["fraud_dep"].pk)).status_code == expected_fraud


def test_retire_is_refused_to_viewers_without_csrf_and_on_get(
    serving: dict[str, Any], viewer: User, outsider: User
) -> None:
    s = serving
    url = _retire_url("churn", s["dep"].pk)
    permissions.grant(Perm.CHANGE, s["churn"], user=outsider, granted_by=s["root"])
    assert web(outsider).post(url).status_code == 404  # change without view: invisible
    assert web(viewer).post(url).status_code == 403
    assert web(s["root"], csrf=True).post(url).status_code == 403
    assert web(s["root"]).get(url).status_code == 405
    assert web(None).post(url).status_code == 302
    inactive = User.objects.create_user("ina", is_active=False, is_superuser=True)
    assert web(inactive).post(url).status_code == 302
    assert _active(s["dep"].pk)


def test_retire_through_a_renamed_or_deleted_models_old_url_is_a_404(
    serving: dict[str, Any],
) -> None:
    s = serving
    services.registered_model_update(
        actor=actor_for(s["root"]), registered_model=s["churn"], name="churn-2"
    )
    assert web(s["root"]).post(_retire_url("churn", s["dep"].pk)).status_code == 404
    assert _active(s["dep"].pk)
    assert web(s["root"]).post(_retire_url("churn-2", s["dep"].pk)).status_code == 302


def test_a_flagged_deployment_of_a_deleted_version_can_be_retired_as_the_finding_says(
    serving: dict[str, Any],
) -> None:
    s = serving
    v2 = make_version(s["root"], s["churn"])
    stale = _deploy(s["root"], v2, "staging")
    ModelVersion.objects.filter(pk=v2.pk).update(deleted_at=timezone.now())  # outside services
    [finding] = [
        f
        for f in deployments.deployment_findings(user=s["root"], registered_model=s["churn"])
        if f.deployment_id == stale.pk
    ]
    assert "retire this deployment" in finding.message
    page = web(s["root"]).get("/models/churn/").content.decode()
    assert "retire this deployment" in page
    api_answer = rest(s["root"]).post(f"/api/v1/deployments/{stale.pk}/retire/")
    page_answer = web(s["root"]).post(_retire_url("churn", stale.pk))
    assert (api_answer.status_code, page_answer.status_code) != (404, 404)
    assert not _active(stale.pk)


@pytest.mark.parametrize("query", ["status=ACTIVE", "status=gone", "status=%00", f"status={HUGE}"])
def test_the_deployments_api_refuses_unknown_status_in_json(
    serving: dict[str, Any], viewer: User, query: str
) -> None:
    response = rest(viewer).get(f"/api/v1/models/churn/deployments/?{query}")
    assert_api_error(response, 400)


def test_the_deployments_api_answers_a_hidden_model_as_a_missing_one(
    serving: dict[str, Any], outsider: User
) -> None:
    hidden = assert_api_error(rest(outsider).get("/api/v1/models/churn/deployments/"), 404)
    missing = assert_api_error(rest(outsider).get("/api/v1/models/nope/deployments/"), 404)
    assert hidden["code"] == missing["code"]
    assert hidden["message"].replace("churn", "X") == missing["message"].replace("nope", "X")


def test_a_grantee_reads_deployments_with_a_token_and_only_of_its_model(
    serving: dict[str, Any], outsider: User
) -> None:
    permissions.grant(Perm.VIEW, serving["churn"], user=outsider, granted_by=serving["root"])
    client = bearer(outsider)
    body = client.get("/api/v1/models/churn/deployments/").json()
    assert [d["id"] for d in body["deployments"]] == [serving["dep"].pk]
    assert body["findings"] == []
    assert client.get("/api/v1/models/fraud/deployments/").status_code == 404


@pytest.mark.parametrize("configured", [["Prod "], [" PROD", "live"], ["prod"]])
def test_production_environments_match_whatever_their_case_or_spacing(
    data_scientist: User, settings: Any, configured: list[str]
) -> None:
    settings.PRODUCTION_ENVIRONMENTS = configured
    root = superuser()
    registered_model = make_model(root, "churn")
    v1 = place(make_version(root, registered_model), PRODUCTION)
    assert [
        f.kind
        for f in deployments.deployment_findings(user=root, registered_model=registered_model)
    ] == [deployments.PRODUCTION_NOT_DEPLOYED]
    _deploy(root, v1, "prod")
    assert deployments.deployment_findings(user=root, registered_model=registered_model) == []


def test_findings_agree_between_the_check_the_api_and_the_scorecard(
    serving: dict[str, Any], viewer: User
) -> None:
    """v1 archived while still serving in prod, v2 in production and serving only in staging."""
    s = serving
    v2 = place(make_version(s["root"], s["churn"]), PRODUCTION, archive_existing=True)
    _deploy(s["root"], v2, "staging")
    kinds = {
        (f.kind, f.version)
        for f in deployments.deployment_findings(user=viewer, registered_model=s["churn"])
    }
    assert kinds == {
        (deployments.PRODUCTION_NOT_DEPLOYED, 2),
        (deployments.DEPLOYED_NOT_APPROVED, 1),
    }
    body = rest(viewer).get("/api/v1/models/churn/deployments/").json()
    assert {(f["kind"], f["version"]) for f in body["findings"]} == kinds
    answers = {
        m["key"]: m["bucket"]
        for m in rest(viewer).get(f"{SCORECARD}models/churn/").json()["metrics"]
    }
    assert answers["deployment_recorded"] == 1  # recorded, but v2 does not serve in prod
    assert answers["deployed_version_approved"] == 0  # v1 still serves unapproved


def test_a_protected_alias_serving_in_production_is_approved_until_it_moves(
    serving: dict[str, Any],
) -> None:
    s = serving
    no_approval(s["churn"], protected_aliases=["champion"])
    v2 = make_version(s["root"], s["churn"])
    services.alias_set(
        actor=actor_for(s["root"]), registered_model=s["churn"], name="champion", version=v2
    )
    dep = _deploy(s["root"], v2)
    assert deployments.deployment_findings(user=s["root"], registered_model=s["churn"]) == []
    v3 = make_version(s["root"], s["churn"])
    services.alias_set(
        actor=actor_for(s["root"]), registered_model=s["churn"], name="champion", version=v3
    )
    [finding] = deployments.deployment_findings(user=s["root"], registered_model=s["churn"])
    assert (finding.kind, finding.deployment_id) == (deployments.DEPLOYED_NOT_APPROVED, dep.pk)


def test_the_model_page_never_shows_retire_buttons_to_viewers(
    serving: dict[str, Any], viewer: User
) -> None:
    page = web(viewer).get("/models/churn/").content.decode()
    assert _retire_url("churn", serving["dep"].pk) not in page
    page = web(serving["root"]).get("/models/churn/").content.decode()
    assert _retire_url("churn", serving["dep"].pk) in page
    assert _retire_url("churn", serving["fraud_dep"].pk) not in page
