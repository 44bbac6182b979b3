from __future__ import annotations

import io

import pytest
from django.contrib.admin.sites import site
from django.core.management import call_command
from django.urls import reverse

from core import permissions
from core.permissions import Perm
from registry.models import ModelVersion, RegisteredModel
from tests.factories import make_artifact, make_model, make_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(db, settings):
    call_command("demo", "--no-serve", stdout=io.StringIO())


def test_demo_data_has_every_stage_users_and_is_idempotent(demo):
    assert RegisteredModel.objects.count() == 6
    assert set(ModelVersion.objects.values_list("stage", flat=True)) == {
        "production",
        "staging",
        "archived",
    }
    call_command("demo", "--no-serve", stdout=io.StringIO())
    assert RegisteredModel.objects.count() == 6
    for model in RegisteredModel.objects.all():
        assert model.versions.filter(stage="production").count() == 1


def test_demo_reviewer_approves_the_waiting_request_as_the_readme_says(demo, client):
    """README: sign in as carol; Home lists the waiting request; open it, comment, Approve."""
    import re

    from core import audit

    # Through the sign-in page: login throttling needs the request client.login lacks.
    assert (
        client.post("/login/", {"username": "carol", "password": "modelgate-demo"}).status_code
        == 302
    )
    home = client.get("/").content.decode()
    waiting = home[home.index('id="awaiting"') : home.index('id="mine"')]
    links = re.findall(r'href="(/requests/\d+/)"', waiting)
    assert len(links) == 1 and "churn-predictor" in waiting
    page = client.get(links[0]).content.decode()
    assert "Readiness checks" in page and 'value="approve"' in page
    r = client.post(links[0] + "review/", {"decision": "approve", "comment": "ok"}, follow=True)
    assert "Applied" in r.content.decode()
    stages = dict(
        RegisteredModel.objects.get(name="churn-predictor").versions.values_list("version", "stage")
    )
    assert stages[4] == "production" and stages[3] == "archived"
    history = client.get("/models/churn-predictor/").content.decode()
    assert "carol" in history[history.index("Production history") :]
    assert audit.verify().ok


def test_demo_outsider_sees_only_the_granted_model(demo, client):
    assert (
        client.post("/login/", {"username": "olivia", "password": "modelgate-demo"}).status_code
        == 302
    )
    page = client.get("/models/")
    assert b"churn-predictor" in page.content and b"fraud-detector" not in page.content
    assert client.get("/models/fraud-detector/").status_code == 404


def test_pages_render_with_bounded_queries(client, data_scientist, django_assert_max_num_queries):
    registered_model = make_model(
        data_scientist, "m", description="<script>alert(1)</script> **bold**"
    )
    for _ in range(5):
        make_artifact(
            data_scientist, make_version(data_scientist, registered_model, metrics={"auc": 0.9})
        )
    client.force_login(data_scientist)
    for url in ("/", "/models/", "/models/m/", "/models/m/versions/5/", "/models/m/compare/"):
        with django_assert_max_num_queries(20):
            r = client.get(url)
        assert r.status_code == 200, url
    detail = client.get("/models/m/").content
    assert b"<script>alert" not in detail and b"<strong>bold</strong>" in detail


def test_pages_need_login_and_hide_ungranted_models(client, data_scientist, outsider):
    make_model(data_scientist, "m")
    assert client.get("/").status_code == 302
    client.force_login(outsider)
    assert client.get("/models/m/").status_code == 404
    assert b"m</a>" not in client.get("/models/").content


def test_page_artifact_download(client, data_scientist, outsider):
    registered_model = make_model(data_scientist, "m")
    artifact = make_artifact(data_scientist, make_version(data_scientist, registered_model), b"abc")
    url = f"/models/m/versions/1/artifacts/{artifact.pk}/"
    client.force_login(data_scientist)
    assert b"".join(client.get(url).streaming_content) == b"abc"
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_bad_search_on_page_shows_a_message_not_a_500(client, data_scientist):
    client.force_login(data_scientist)
    r = client.get("/models/", {"q": "name = "})
    assert r.status_code == 200 and b"position" in r.content


def test_every_admin_changelist_and_change_page_loads(client, demo):
    assert (
        client.post("/login/", {"username": "admin", "password": "modelgate-demo"}).status_code
        == 302
    )
    for model in site._registry:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert client.get(url).status_code == 200, url
        obj = model.objects.first()
        if obj is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            assert client.get(change).status_code == 200, change
        search = client.get(url, {"q": "a"})
        assert search.status_code == 200, url


def test_admin_actions_go_through_services(client, data_scientist, admin_user):
    registered_model = make_model(data_scientist, "m")
    v = make_version(data_scientist, registered_model)
    from registry import services
    from tests.factories import actor_for, place

    place(v, "production")
    client.force_login(admin_user)
    url = reverse("admin:registry_registeredmodel_changelist")
    r = client.post(
        url, {"action": "soft_delete", "_selected_action": [registered_model.pk]}, follow=True
    )
    assert b"version 1 is in production" in r.content
    registered_model.refresh_from_db()
    assert registered_model.deleted_at is None
    services.version_stage_set(actor=actor_for(admin_user), version=v, stage="archived")
    client.post(url, {"action": "soft_delete", "_selected_action": [registered_model.pk]})
    registered_model.refresh_from_db()
    assert registered_model.deleted_at is not None
    client.post(url, {"action": "restore", "_selected_action": [registered_model.pk]})
    registered_model.refresh_from_db()
    assert registered_model.deleted_at is None


def test_admin_edit_of_risk_tier_is_audited(client, data_scientist, admin_user):
    from core.models import AuditEvent

    registered_model = make_model(data_scientist, "m")
    client.force_login(admin_user)
    url = reverse("admin:registry_registeredmodel_change", args=[registered_model.pk])
    r = client.post(
        url,
        {
            "description": "",
            "risk_tier": "critical",
            "owner": data_scientist.pk,
            "team": "",
            "tags-TOTAL_FORMS": "0",
            "tags-INITIAL_FORMS": "0",
        },
    )
    assert r.status_code == 302, r.content[:2000]
    registered_model.refresh_from_db()
    assert registered_model.risk_tier == "critical"
    event = AuditEvent.objects.get(action="registered_model.updated")
    assert event.channel == "admin" and event.actor == admin_user
    assert permissions.has(admin_user, Perm.VIEW, registered_model)


def test_admin_version_actions_apply_to_every_selected_row(client, data_scientist, admin_user):
    registered_model = make_model(data_scientist, "m")
    versions = [make_version(data_scientist, registered_model) for _ in range(3)]
    client.force_login(admin_user)
    url = reverse("admin:registry_modelversion_changelist")
    client.post(url, {"action": "soft_delete", "_selected_action": [v.pk for v in versions]})
    assert ModelVersion.objects.filter(deleted_at__isnull=False).count() == 3
    client.post(url, {"action": "restore", "_selected_action": [v.pk for v in versions]})
    assert ModelVersion.objects.filter(deleted_at__isnull=True).count() == 3


def test_demo_shows_a_protected_alias_moved_through_a_request(demo, client):
    """High and critical policies protect champion: in the demo it moved by an approved
    request, and the model page says it is protected."""
    from django.contrib.auth.models import User

    from governance.models import PromotionRequest

    moved = PromotionRequest.objects.get(
        registered_model__name="credit-risk-classifier", target_alias="champion"
    )
    assert moved.status == "applied"
    client.force_login(User.objects.get(username="carol"))
    html = client.get("/models/credit-risk-classifier/").content.decode()
    assert "@champion → v5" in html and ">protected</span>" in html
    html = client.get("/models/churn-predictor/").content.decode()  # medium: none protected
    assert "@champion → v3" in html and ">protected</span>" not in html


def test_the_models_page_reads_tag_filters_with_the_api_s_rule(client, data_scientist):
    """One tag-filter parser for the API and the page; the page forgives the typist's spaces
    around the key and the value, and a filter without '=' is a message, not ignored."""
    from registry import services
    from tests.factories import actor_for

    registered_model = make_model(data_scientist, "scorer")
    make_model(data_scientist, "ranker")
    services.registered_model_tag_set(
        actor=actor_for(data_scientist), registered_model=registered_model, key="team", value="risk"
    )
    client.force_login(data_scientist)
    html = client.get("/models/", {"tag": " team = risk "}).content.decode()
    assert "scorer" in html and "ranker" not in html
    r = client.get("/models/", {"tag": "team"})
    assert r.status_code == 200 and "tag filters look like" in r.content.decode()
    api = client.get("/api/v1/models/", {"tag": "team"})
    assert api.status_code == 400 and api.json()["code"] == "invalid_filter"
