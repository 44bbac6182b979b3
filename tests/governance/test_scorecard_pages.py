"""The maturity scorecard's pages and API: what each user sees and counts, the trend only for
organisation viewers, the export (and its spreadsheet-safe CSV), the access review button,
and a constant number of queries for the list endpoints."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from core import permissions
from core.models import AuditEvent
from core.permissions import Perm
from governance.api.scorecard_views import spreadsheet_safe
from governance.maturity import catalogue, scorecard, snapshots
from governance.models import MaturitySnapshot
from tests.factories import GroupFactory, make_model, make_version, superuser

pytestmark = pytest.mark.django_db
API = "/api/v1/scorecard/"
N = len(catalogue.metrics())


@pytest.fixture
def root(roles: dict[str, Group]) -> User:
    return superuser()


@pytest.fixture
def catalogue_models(root: User) -> dict[str, Any]:
    risk = GroupFactory(name="risk")
    seen = make_model(root, "seen", team=risk)
    make_version(root, seen)
    hidden = make_model(root, "hidden", team=risk)
    loose = make_model(root, "=cmd|' -C calc'!A0")  # a name a spreadsheet would run
    return {"team": risk, "seen": seen, "hidden": hidden, "loose": loose}


def web(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Pages ------------------------------------------------------------------------------------


def test_the_dashboard_shows_domains_teams_and_worst_models(
    viewer: User, catalogue_models: dict[str, Any]
) -> None:
    response = web(viewer).get("/scorecard/")
    assert response.status_code == 200
    body = response.content.decode()
    for title in ("Documentation", "Lineage", "Governance", "Operations", "Quality"):
        assert title in body
    assert "Counts the 3 live models you may view" in body
    assert f'href="/scorecard/teams/{catalogue_models["team"].pk}/"' in body
    assert 'href="/scorecard/teams/0/"' in body  # No team
    assert 'href="/models/seen/scorecard/"' in body
    assert "Trend" in body and "No snapshot yet" in body
    assert "<script" not in body.split("</head>")[1] and " style=" not in body  # CSP
    assert 'href="/scorecard/"' in body  # the nav link


def test_the_dashboard_counts_only_granted_models_and_hides_the_trend(
    root: User, outsider: User, catalogue_models: dict[str, Any]
) -> None:
    snapshots.maturity_snapshot_take()
    body = web(outsider).get("/scorecard/").content.decode()
    assert "Counts the 0 live models you may view" in body and "Trend" not in body
    permissions.grant(Perm.VIEW, catalogue_models["seen"], user=outsider, granted_by=root)
    body = web(outsider).get("/scorecard/").content.decode()
    assert "Counts the 1 live model you may view" in body
    assert "/models/seen/scorecard/" in body
    assert "/models/hidden/scorecard/" not in body and "calc" not in body
    assert "Trend" not in body


def test_the_team_page_and_its_404s(
    root: User, viewer: User, outsider: User, catalogue_models: dict[str, Any]
) -> None:
    team = catalogue_models["team"]
    response = web(viewer).get(f"/scorecard/teams/{team.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Scorecard of risk" in body and "Counts the 2 live models" in body
    assert "calc" not in body
    assert web(viewer).get("/scorecard/teams/0/").status_code == 200
    assert web(viewer).get("/scorecard/teams/999999/").status_code == 404
    assert web(outsider).get(f"/scorecard/teams/{team.pk}/").status_code == 404


def test_the_model_page_names_what_is_missing_and_where_to_fix_it(
    viewer: User, outsider: User, catalogue_models: dict[str, Any]
) -> None:
    response = web(viewer).get("/models/seen/scorecard/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "What is missing" in body
    assert "Model card approved" in body and 'href="/models/seen/versions/1/card/"' in body
    assert 'href="/models/seen/access/"' in body  # access never reviewed
    assert "Record the training run&#x27;s code reference" in body
    assert web(outsider).get("/models/seen/scorecard/").status_code == 404
    assert web(viewer).get("/models/nope/scorecard/").status_code == 404


def test_mark_access_as_reviewed_from_the_access_page(
    root: User, data_scientist: User, viewer: User
) -> None:
    make_model(data_scientist, "mine")
    client = web(data_scientist)
    page = client.get("/models/mine/access/").content.decode()
    assert "Mark access as reviewed" in page and 'action="/models/mine/access/review/"' in page
    response = client.post("/models/mine/access/review/")
    assert response.status_code == 302 and response["Location"] == "/models/mine/access/"
    event = AuditEvent.objects.get(action="access.reviewed")
    assert event.actor == data_scientist and event.channel == "web"
    assert web(viewer).post("/models/mine/access/review/").status_code == 403
    assert web(viewer).get("/models/mine/access/review/").status_code == 405
    assert AuditEvent.objects.filter(action="access.reviewed").count() == 1


# --- API --------------------------------------------------------------------------------------


def test_the_api_answers_the_organisation_teams_and_worst_models(
    api: Any, viewer: User, catalogue_models: dict[str, Any]
) -> None:
    response = api(viewer).get(API)
    assert response.status_code == 200
    body = response.json()
    assert body["organisation"]["models"] == 3
    assert sum(body["organisation"]["distribution"].values()) == 3 * N
    assert {t["name"] for t in body["teams"]} == {"risk", "No team"}
    assert body["models_total"] == 3 and len(body["models"]) == 3
    scores = [m["score"] for m in body["models"]]
    assert scores == sorted(scores)
    assert len(body["catalogue"]) == N and body["trend_available"] is True
    limited = api(viewer).get(API, {"limit": 1}).json()
    assert len(limited["models"]) == 1 and limited["models_total"] == 3
    assert api(viewer).get(API, {"limit": 0}).status_code == 400
    assert api(viewer).get(API, {"limit": "x"}).json()["code"] == "invalid_filter"
    assert api(None).get(API).status_code in (401, 403)


def test_the_api_counts_only_what_the_caller_may_view(
    api: Any, root: User, outsider: User, catalogue_models: dict[str, Any]
) -> None:
    body = api(outsider).get(API).json()
    assert body["organisation"]["models"] == 0 and body["models"] == [] and body["teams"] == []
    assert body["trend_available"] is False
    permissions.grant(Perm.VIEW, catalogue_models["seen"], user=outsider, granted_by=root)
    body = api(outsider).get(API).json()
    assert [m["name"] for m in body["models"]] == ["seen"]
    assert body["organisation"]["models"] == 1
    team = catalogue_models["team"].pk
    team_body = api(outsider).get(f"{API}teams/{team}/").json()
    assert team_body["team"]["models"] == 1 and team_body["team"]["name"] == "risk"
    assert api(outsider).get(f"{API}models/hidden/").status_code == 404
    assert api(outsider).get(f"{API}models/seen/").status_code == 200


def test_the_model_endpoint_lists_every_metric_with_its_fix(
    api: Any, viewer: User, catalogue_models: dict[str, Any]
) -> None:
    body = api(viewer).get(f"{API}models/seen/").json()
    assert body["name"] == "seen" and body["focus_version"] == 1
    assert [m["key"] for m in body["metrics"]] == [m.key for m in catalogue.metrics()]
    owner = next(m for m in body["metrics"] if m["key"] == "owner_set")
    assert owner["bucket"] == 2 and owner["fix_url"] is None
    card = next(m for m in body["metrics"] if m["key"] == "card_approved")
    assert card["bucket"] == 0 and card["fix_url"] == "/models/seen/versions/1/card/"


def test_the_team_endpoint_and_the_models_without_a_team(
    api: Any, viewer: User, catalogue_models: dict[str, Any]
) -> None:
    body = api(viewer).get(f"{API}teams/0/").json()
    assert body["team"] | {"distribution": None, "domains": None, "metrics": None} == {
        "team_id": 0,
        "name": "No team",
        "models": 1,
        "score": body["team"]["score"],
        "distribution": None,
        "domains": None,
        "metrics": None,
    }
    assert api(viewer).get(f"{API}teams/999999/").json()["code"] == "team_not_found"


def test_the_trend_is_only_for_organisation_viewers(
    api: Any, root: User, viewer: User, outsider: User, catalogue_models: dict[str, Any]
) -> None:
    snapshots.maturity_snapshot_take()
    permissions.grant(Perm.VIEW, catalogue_models["seen"], user=outsider, granted_by=root)
    refused = api(outsider).get(f"{API}trend/")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    body = api(viewer).get(f"{API}trend/").json()
    assert body["team_id"] is None and body["days"] == 90
    (point,) = body["points"]
    assert point["models"] == 3 and point["taken_on"] == str(timezone.localdate())
    team = catalogue_models["team"].pk
    assert api(viewer).get(f"{API}trend/", {"team": team}).json()["points"][0]["models"] == 2
    assert api(viewer).get(f"{API}trend/", {"team": 0}).json()["points"][0]["models"] == 1
    assert api(viewer).get(f"{API}trend/", {"days": 0}).status_code == 400


def test_the_export_has_a_row_per_model_and_metric(
    api: Any, viewer: User, catalogue_models: dict[str, Any]
) -> None:
    rows = api(viewer).get(f"{API}export/", {"format": "json"}).json()
    assert len(rows) == 3 * N
    assert {r["model"] for r in rows} == {"seen", "hidden", "=cmd|' -C calc'!A0"}
    response = api(viewer).get(f"{API}export/", {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(table[0]) == scorecard.EXPORT_COLUMNS
    assert len(table) == 1 + 3 * N
    names = {row[0] for row in table[1:]}
    assert names == {"seen", "hidden", "'=cmd|' -C calc'!A0"}  # escaped: shown as text
    assert api(viewer).get(f"{API}export/", {"format": "xml"}).json()["code"] == "invalid_filter"


def test_spreadsheet_formulas_are_escaped() -> None:
    for cell in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert spreadsheet_safe(cell) == f"'{cell}"
    assert spreadsheet_safe("plain") == "plain"
    assert spreadsheet_safe(None) == ""
    assert spreadsheet_safe(2) == 2


def test_the_api_costs_the_same_queries_for_few_or_many_models(
    api: Any, root: User, viewer: User, django_assert_max_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api(viewer).get(path).status_code == 200
        return len(captured.captured_queries)

    make_version(root, make_model(root, "m-0"))
    paths = [API, f"{API}export/?format=json", f"{API}teams/0/"]
    count(API)  # the first request of the process reads what Django caches (content types)
    few = [count(p) for p in paths]
    for i in range(1, 20):
        make_version(root, make_model(root, f"m-{i}"))
    assert [count(p) for p in paths] == few
    with django_assert_max_num_queries(few[0]):
        api(viewer).get(API)


# --- Snapshots --------------------------------------------------------------------------------


def test_a_snapshot_a_day_whatever_the_runs(root: User, catalogue_models: dict[str, Any]) -> None:
    from governance.tasks import take_maturity_snapshot

    assert take_maturity_snapshot.delay().get() == 2  # the organisation and the team
    assert take_maturity_snapshot.delay().get() == 2
    rows = {s.team_id: s for s in MaturitySnapshot.objects.all()}
    assert set(rows) == {None, catalogue_models["team"].pk}
    organisation = rows[None].data
    assert organisation["models"] == 3  # every live model, whoever may see it
    assert sum(organisation["distribution"].values()) == 3 * N
    assert organisation["no_team"]["models"] == 1
    assert rows[catalogue_models["team"].pk].data["models"] == 2
    assert set(organisation["domains"]) == set(catalogue.DOMAIN_KEYS)
    tomorrow = timezone.now() + timezone.timedelta(days=1)
    snapshots.maturity_snapshot_take(now=tomorrow)
    assert MaturitySnapshot.objects.filter(team__isnull=True).count() == 2


def test_the_snapshot_runs_daily_on_the_beat(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["maturity-snapshot"]
    assert entry["task"] == "governance.take_maturity_snapshot"
    assert entry["schedule"] == 24 * 3600


def test_snapshots_are_read_only_in_the_admin_and_only_for_organisation_viewers(
    root: User, outsider: User, catalogue_models: dict[str, Any]
) -> None:
    snapshots.maturity_snapshot_take()
    snapshot = MaturitySnapshot.objects.get(team__isnull=True)
    client = web(root)
    assert client.get("/admin/governance/maturitysnapshot/").status_code == 200
    assert (
        client.get(f"/admin/governance/maturitysnapshot/{snapshot.pk}/change/").status_code == 200
    )
    assert client.get("/admin/governance/maturitysnapshot/add/").status_code == 403
    response = client.post(
        f"/admin/governance/maturitysnapshot/{snapshot.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403 and MaturitySnapshot.objects.filter(pk=snapshot.pk).exists()
    outsider.is_staff = True
    outsider.save(update_fields=["is_staff"])
    assert web(outsider).get("/admin/governance/maturitysnapshot/").status_code == 403
