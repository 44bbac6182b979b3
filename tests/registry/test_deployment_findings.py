"""Deployments on the model page and the deployment check: production versions with no active
deployment in a production environment, and active production deployments of versions no
longer approved (registry.deployments), through the check itself, the API and the page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from core import permissions
from core.errors import NotFound
from core.models import AuditEvent
from core.permissions import Perm
from registry import deployments, services
from registry.deployments import (
    DEPLOYED_NOT_APPROVED,
    PRODUCTION_NOT_DEPLOYED,
    deployment_findings,
    deployment_findings_bulk,
)
from registry.models import Deployment, ModelVersion, RegisteredModel
from tests.factories import actor_for, make_model, make_version, no_approval, place, superuser

pytestmark = pytest.mark.django_db

PRODUCTION = ModelVersion.Stage.PRODUCTION


def _deploy(
    user: User, version: ModelVersion, environment: str = "prod", target: str = ""
) -> Deployment:
    return services.deployment_create(
        actor=actor_for(user),
        version=version,
        environment=environment,
        target=target or f"https://serve/{version.registered_model.name}/v{version.version}",
    )


def _retire(user: User, deployment: Deployment) -> Deployment:
    return services.deployment_retire(actor=actor_for(user), deployment=deployment)


def _kinds(user: User, registered_model: RegisteredModel) -> list[tuple[str, int]]:
    return [
        (f.kind, f.version)
        for f in deployment_findings(user=user, registered_model=registered_model)
    ]


def _serving_model(user: User, name: str = "churn") -> tuple[RegisteredModel, ModelVersion]:
    """A model whose version 1 is in production and deployed to prod: all is well."""
    registered_model = make_model(user, name)
    v1 = place(make_version(user, registered_model), PRODUCTION)
    _deploy(user, v1)
    return registered_model, v1


# --- The check ------------------------------------------------------------------------------


def test_all_is_well_yields_no_findings(data_scientist):
    registered_model, _ = _serving_model(data_scientist)
    candidate = place(make_version(data_scientist, registered_model), ModelVersion.Stage.STAGING)
    _deploy(data_scientist, candidate, "staging")  # any version may serve outside production
    _deploy(data_scientist, make_version(data_scientist, registered_model), "dev")
    assert deployment_findings(user=data_scientist, registered_model=registered_model) == []


def test_a_production_version_without_a_deployment_is_flagged(data_scientist, settings):
    settings.PRODUCTION_ENVIRONMENTS = ["prod", "live"]
    registered_model = make_model(data_scientist, "churn")
    v1 = place(make_version(data_scientist, registered_model), PRODUCTION)
    [finding] = deployment_findings(user=data_scientist, registered_model=registered_model)
    assert finding.kind == PRODUCTION_NOT_DEPLOYED and finding.version == 1
    assert finding.deployment_id is None and finding.environment is None
    assert finding.message == (
        "Version 1 is in production but has no active deployment in a production environment "
        "(prod, live)."
    )
    # Serving only outside production does not count; a production environment does.
    _deploy(data_scientist, v1, "staging")
    assert _kinds(data_scientist, registered_model) == [(PRODUCTION_NOT_DEPLOYED, 1)]
    _deploy(data_scientist, v1, "LIVE")
    assert _kinds(data_scientist, registered_model) == []


def test_retired_deployments_are_ignored(data_scientist):
    registered_model, v1 = _serving_model(data_scientist)
    _retire(data_scientist, Deployment.objects.get(version=v1))
    assert _kinds(data_scientist, registered_model) == [(PRODUCTION_NOT_DEPLOYED, 1)]
    # A retired deployment of a version since archived is history, not a finding.
    v2 = place(make_version(data_scientist, registered_model), PRODUCTION, archive_existing=True)
    _deploy(data_scientist, v2)
    assert ModelVersion.objects.get(pk=v1.pk).stage == ModelVersion.Stage.ARCHIVED
    assert _kinds(data_scientist, registered_model) == []


def test_a_deployment_whose_version_was_archived_is_flagged(data_scientist):
    registered_model, v1 = _serving_model(data_scientist)
    deployment = Deployment.objects.get(version=v1)
    place(make_version(data_scientist, registered_model), PRODUCTION, archive_existing=True)
    findings = deployment_findings(user=data_scientist, registered_model=registered_model)
    assert [(f.kind, f.version) for f in findings] == [
        (PRODUCTION_NOT_DEPLOYED, 2),
        (DEPLOYED_NOT_APPROVED, 1),
    ]
    flagged = findings[1]
    assert (flagged.deployment_id, flagged.environment, flagged.target) == (
        deployment.pk,
        "prod",
        "https://serve/churn/v1",
    )
    assert flagged.message == (
        "Version 1 serves in production environment 'prod' at https://serve/churn/v1 but is no "
        "longer approved: it is not in production (stage: archived) and holds no protected "
        "alias. Retire this deployment or promote the version again."
    )
    _retire(data_scientist, deployment)
    assert _kinds(data_scientist, registered_model) == [(PRODUCTION_NOT_DEPLOYED, 2)]


def test_a_deployment_whose_protected_alias_moved_away_is_flagged(data_scientist):
    registered_model = make_model(data_scientist, "churn")
    no_approval(registered_model, protected_aliases=["champion"])
    v1 = make_version(data_scientist, registered_model)
    v2 = make_version(data_scientist, registered_model)
    admin = actor_for(superuser())
    services.alias_set(actor=admin, registered_model=registered_model, name="champion", version=v1)
    services.alias_set(actor=admin, registered_model=registered_model, name="candidate", version=v2)
    deployment = _deploy(data_scientist, v1)  # approved: holds the protected alias
    assert _kinds(data_scientist, registered_model) == []
    services.alias_set(actor=admin, registered_model=registered_model, name="champion", version=v2)
    services.alias_set(actor=admin, registered_model=registered_model, name="other", version=v1)
    [finding] = deployment_findings(user=data_scientist, registered_model=registered_model)
    assert (finding.kind, finding.version, finding.deployment_id) == (
        DEPLOYED_NOT_APPROVED,
        1,
        deployment.pk,
    )
    assert "stage: none" in finding.message
    # Protected alias names compare without case, as the policy does.
    services.alias_set(actor=admin, registered_model=registered_model, name="CHAMPION", version=v1)
    assert _kinds(data_scientist, registered_model) == []


def test_versions_serving_outside_production_are_not_flagged(data_scientist):
    registered_model = make_model(data_scientist, "churn")
    v1 = make_version(data_scientist, registered_model)
    _deploy(data_scientist, v1, "staging")
    place(v1, ModelVersion.Stage.ARCHIVED)
    assert _kinds(data_scientist, registered_model) == []


def test_a_deleted_version_is_ignored_unless_a_deployment_still_serves_it(data_scientist):
    registered_model, _ = _serving_model(data_scientist)
    v2 = make_version(data_scientist, registered_model)
    old = _deploy(data_scientist, v2, "staging")
    _retire(data_scientist, old)
    services.version_delete(actor=actor_for(superuser()), version=v2)
    assert _kinds(data_scientist, registered_model) == []
    # Services refuse to delete a deployed version, so an active deployment of a deleted one
    # comes from outside them (a database edit): it serves what the registry no longer shows.
    Deployment.objects.filter(pk=old.pk).update(status=Deployment.Status.ACTIVE, retired_at=None)
    [finding] = deployment_findings(user=data_scientist, registered_model=registered_model)
    assert (finding.kind, finding.version, finding.deployment_id) == (
        DEPLOYED_NOT_APPROVED,
        2,
        old.pk,
    )
    assert finding.message == (
        "Version 2 was deleted but still serves in 'staging' at https://serve/churn/v2: retire "
        "this deployment."
    )


def test_the_check_answers_only_about_models_the_user_may_view(data_scientist, outsider):
    registered_model = make_model(data_scientist, "churn")
    place(make_version(data_scientist, registered_model), PRODUCTION)
    with pytest.raises(NotFound):
        deployment_findings(user=outsider, registered_model=registered_model)
    assert deployment_findings_bulk(RegisteredModel.objects.filter(pk=registered_model.pk)) == {
        registered_model.pk: deployment_findings(
            user=data_scientist, registered_model=registered_model
        )
    }


def _mixed_catalogue(user: User, copies: int) -> list[RegisteredModel]:
    """Models in every state the check distinguishes, `copies` of each."""
    made = []
    for i in range(copies):
        fine, _ = _serving_model(user, f"fine-{i}")
        idle = make_model(user, f"idle-{i}")
        place(make_version(user, idle), PRODUCTION)
        stale, v1 = _serving_model(user, f"stale-{i}")
        place(make_version(user, stale), PRODUCTION, archive_existing=True)
        aliased = make_model(user, f"aliased-{i}")
        no_approval(aliased, protected_aliases=["champion"])
        a1 = make_version(user, aliased)
        services.alias_set(
            actor=actor_for(superuser()), registered_model=aliased, name="champion", version=a1
        )
        _deploy(user, a1)
        _deploy(user, a1, "staging")
        moved = make_model(user, f"moved-{i}")
        no_approval(moved, protected_aliases=["champion"])
        m1, m2 = make_version(user, moved), make_version(user, moved)
        admin = actor_for(superuser())
        services.alias_set(actor=admin, registered_model=moved, name="champion", version=m1)
        _deploy(user, m1)
        services.alias_set(actor=admin, registered_model=moved, name="champion", version=m2)
        empty = make_model(user, f"empty-{i}")
        made += [fine, idle, stale, aliased, moved, empty]
    return made


def test_the_bulk_form_equals_the_per_model_form_in_a_constant_number_of_queries(
    data_scientist, django_assert_max_num_queries
):
    made = _mixed_catalogue(data_scientist, 3)
    with django_assert_max_num_queries(5):
        bulk = deployment_findings_bulk(RegisteredModel.objects.all())
    assert bulk == {
        m.pk: deployment_findings(user=data_scientist, registered_model=m) for m in made
    }
    names = dict(RegisteredModel.objects.values_list("pk", "name"))
    assert {names[pk]: [f.kind for f in found] for pk, found in bulk.items()} == {
        **{f"fine-{i}": [] for i in range(3)},
        **{f"idle-{i}": [PRODUCTION_NOT_DEPLOYED] for i in range(3)},
        **{f"stale-{i}": [PRODUCTION_NOT_DEPLOYED, DEPLOYED_NOT_APPROVED] for i in range(3)},
        **{f"aliased-{i}": [] for i in range(3)},
        **{f"moved-{i}": [DEPLOYED_NOT_APPROVED] for i in range(3)},
        **{f"empty-{i}": [] for i in range(3)},
    }
    with django_assert_max_num_queries(5):
        one = deployment_findings_bulk(RegisteredModel.objects.filter(name="stale-0"))
    assert list(one.values()) == [bulk[made[2].pk]]
    assert deployment_findings_bulk(RegisteredModel.objects.none()) == {}


# --- API ------------------------------------------------------------------------------------


def test_api_lists_deployments_with_retirements_and_findings(api, data_scientist, viewer):
    registered_model, v1 = _serving_model(data_scientist)
    staging = _deploy(data_scientist, v1, "staging", "https://staging/churn")
    _retire(data_scientist, staging)
    place(make_version(data_scientist, registered_model), PRODUCTION, archive_existing=True)
    r = api(viewer).get("/api/v1/models/churn/deployments/")
    assert r.status_code == 200
    body = r.json()
    assert [(d["environment"], d["status"], d["retired_by"]) for d in body["deployments"]] == [
        ("staging", "retired", "alice"),
        ("prod", "active", None),
    ]
    retired = body["deployments"][0]
    assert retired["name"] == "churn" and retired["version"] == 1
    assert retired["deployed_by"] == "alice" and retired["retired_at"] is not None
    prod = body["deployments"][1]["id"]
    assert body["findings"] == [
        {
            "kind": "production_not_deployed",
            "version": 2,
            "deployment": None,
            "environment": None,
            "target": None,
            "message": "Version 2 is in production but has no active deployment in a production "
            "environment (prod, production).",
        },
        {
            "kind": "deployed_not_approved",
            "version": 1,
            "deployment": prod,
            "environment": "prod",
            "target": "https://serve/churn/v1",
            "message": deployment_findings(user=viewer, registered_model=registered_model)[
                1
            ].message,
        },
    ]
    active = api(viewer).get("/api/v1/models/churn/deployments/", {"status": "active"}).json()
    assert [d["id"] for d in active["deployments"]] == [prod]
    bad = api(viewer).get("/api/v1/models/churn/deployments/", {"status": "gone"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_filter"


def test_api_answers_404_for_a_model_the_user_may_not_view(api, data_scientist, outsider):
    _serving_model(data_scientist)
    for name in ("churn", "missing"):
        r = api(outsider).get(f"/api/v1/models/{name}/deployments/")
        assert r.status_code == 404 and r.json()["code"] == "registered_model_not_found"
    assert api(None).get("/api/v1/models/churn/deployments/").status_code in (401, 403)


@pytest.mark.parametrize("many", [False, True])
def test_api_answers_in_a_constant_number_of_queries(
    api, data_scientist, django_assert_max_num_queries, many
):
    registered_model, v1 = _serving_model(data_scientist)
    for i in range(12 if many else 0):
        version = make_version(data_scientist, registered_model)
        _retire(data_scientist, _deploy(data_scientist, version, "staging", f"t{i}"))
        _deploy(data_scientist, v1, "prod", f"replica-{i}")
    client = api(data_scientist)
    with django_assert_max_num_queries(6):
        r = client.get("/api/v1/models/churn/deployments/")
    assert len(r.json()["deployments"]) == (25 if many else 1)


# --- The model page -------------------------------------------------------------------------


def _page(user: User, name: str = "churn") -> str:
    client = Client()
    client.force_login(user)
    r = client.get(f"/models/{name}/")
    assert r.status_code == 200
    return r.content.decode()


def _section(html: str) -> str:
    return html[
        html.index('id="deployments"') : html.index("</section>", html.index('id="deployments"'))
    ]


def test_page_shows_where_each_version_serves_retirements_and_warnings(data_scientist, viewer):
    registered_model, v1 = _serving_model(data_scientist)
    old = _deploy(data_scientist, v1, "staging", "https://old/<b>churn</b>")
    _retire(data_scientist, old)
    place(make_version(data_scientist, registered_model), PRODUCTION, archive_existing=True)
    section = _section(_page(viewer))
    active, retired = section.split('<details class="retired">')
    assert "v1" in active and "https://serve/churn/v1" in active and "alice" in active
    assert 'class="flagged"' in active and "not approved" in active
    assert (
        "Retired deployments (1)" in retired and "https://old/&lt;b&gt;churn&lt;/b&gt;" in retired
    )
    assert "<b>churn</b>" not in section
    assert (
        "Not deployed:</strong> Version 2 is in production but has no active deployment" in active
    )
    assert (
        "Not approved:</strong> Version 1 serves in production environment &#x27;prod&#x27;"
        in active
    )
    assert "Retire</button>" not in section  # a viewer may not change the model


def test_page_without_deployments_says_so(data_scientist):
    make_model(data_scientist, "churn")
    section = _section(_page(data_scientist))
    assert "No active deployment." in section and "<details" not in section
    assert 'class="findings"' not in section


@pytest.mark.parametrize("many", [False, True])
def test_page_renders_in_a_constant_number_of_queries(
    data_scientist, django_assert_max_num_queries, many
):
    registered_model, v1 = _serving_model(data_scientist)
    for i in range(12 if many else 0):
        version = make_version(data_scientist, registered_model)
        _retire(data_scientist, _deploy(data_scientist, version, "staging", f"t{i}"))
        _deploy(data_scientist, v1, "prod", f"replica-{i}")
    if many:
        place(make_version(data_scientist, registered_model), PRODUCTION, archive_existing=True)
    client = Client()
    client.force_login(data_scientist)
    with django_assert_max_num_queries(20):
        r = client.get("/models/churn/")
    section = _section(r.content.decode())
    assert section.count("<tr") == (1 + 13 + 1 + 12 if many else 2)


@pytest.mark.parametrize("many", [False, True])
def test_the_section_takes_six_queries_however_many_deployments(
    data_scientist, django_assert_num_queries, many
):
    registered_model, v1 = _serving_model(data_scientist)
    for i in range(12 if many else 0):
        version = make_version(data_scientist, registered_model)
        _retire(data_scientist, _deploy(data_scientist, version, "staging", f"t{i}"))
        _deploy(data_scientist, v1, "prod", f"replica-{i}")
    place(make_version(data_scientist, registered_model), PRODUCTION, archive_existing=True)
    user = User.objects.get(pk=data_scientist.pk)
    permissions.has(user, Perm.VIEW, registered_model)  # the page has loaded the user's perms
    # deployments, their aliases, the policy, production versions; active and retired rows
    with django_assert_num_queries(6):
        overview = deployments.deployment_overview(user=user, registered_model=registered_model)
    assert (
        len(overview.active) == (13 if many else 1)
        and len(overview.findings) == len(overview.active) + 1
    )
    assert len(overview.retired) == overview.retired_total == (12 if many else 0)


def test_page_lists_at_most_fifty_retired_deployments_and_counts_all(data_scientist):
    registered_model, v1 = _serving_model(data_scientist)
    now = timezone.now()
    Deployment.objects.bulk_create(
        Deployment(
            version=v1,
            environment="staging",
            target=f"t{i}",
            status=Deployment.Status.RETIRED,
            deployed_at=now,
            retired_at=now,
        )
        for i in range(deployments.RETIRED_SHOWN + 3)
    )
    section = _section(_page(data_scientist))
    assert "Retired deployments (53, newest 50 shown)" in section


# --- Retiring from the page (route: models/<name>/deployments/<pk>/retire/) ------------------


def test_retire_from_the_page_retires_audits_and_redirects_with_a_message(data_scientist):
    _, v1 = _serving_model(data_scientist)
    deployment = Deployment.objects.get(version=v1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(data_scientist)
    url = f"/models/churn/deployments/{deployment.pk}/retire/"
    section = _section(client.get("/models/churn/").content.decode())
    form = section[section.index(f'action="{url}"') :]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token is not None and "Retire</button>" in form
    r = client.post(url, {"csrfmiddlewaretoken": token.group(1)})
    assert r.status_code == 302 and r["Location"] == "/models/churn/#deployments"
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.RETIRED
    assert deployment.retired_by == data_scientist and deployment.retired_at is not None
    event = AuditEvent.objects.get(action="deployment.retired")
    assert event.details == {"version": 1, "environment": "prod"} and event.actor_label == "alice"
    page = client.get(r["Location"]).content.decode()
    assert (
        "Retired the deployment of version 1 in &#x27;prod&#x27; at https://serve/churn/v1." in page
    )
    assert "Version 1 is in production but has no active deployment" in page
    assert "Retired deployments (1)" in _section(page)
    again = client.post(url, {"csrfmiddlewaretoken": token.group(1)}, follow=True)
    assert "This deployment is already retired." in again.content.decode()
    assert AuditEvent.objects.filter(action="deployment.retired").count() == 1


def test_retire_from_the_page_is_refused_as_the_permissions_say(data_scientist, viewer, outsider):
    _, v1 = _serving_model(data_scientist)
    _serving_model(data_scientist, "fraud")
    deployment = Deployment.objects.get(version=v1)
    url = f"/models/churn/deployments/{deployment.pk}/retire/"
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(data_scientist)
    assert guarded.post(url).status_code == 403  # no CSRF token
    c = Client()
    c.force_login(viewer)
    assert c.post(url).status_code == 403  # may view, not change
    c.force_login(outsider)
    assert c.post(url).status_code == 404  # may not even view
    c.force_login(data_scientist)
    assert c.get(url).status_code == 405
    assert c.post(f"/models/fraud/deployments/{deployment.pk}/retire/").status_code == 404
    assert c.post("/models/churn/deployments/999999/retire/").status_code == 404
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="deployment.retired").exists()
    anonymous = Client().post(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
