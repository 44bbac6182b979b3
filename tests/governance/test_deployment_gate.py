"""Deployments follow approval: a production environment takes only a version in production
or holding a protected alias, the refusal is audited, and the compliance report flags what
serves there unapproved."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from core.errors import Conflict
from core.models import AuditEvent
from governance import compliance
from registry import services
from registry.models import Deployment, ModelVersion, RegisteredModel
from tests.factories import actor_for, make_model, make_version, no_approval, place, superuser

pytestmark = pytest.mark.django_db


@pytest.fixture
def registered_model(data_scientist: User) -> RegisteredModel:
    return make_model(data_scientist, "churn")


def _serving_unapproved(registered_model: RegisteredModel) -> list[dict[str, str]]:
    """The report's findings about deployments (it has others: readiness, history)."""
    return [
        f
        for f in compliance.report(registered_model)["findings"]
        if " serves in production environment " in f["message"]
    ]


def _deploy(api, user: User, environment: str, version: int = 1, name: str = "churn"):
    return api(user).post(
        "/api/v1/deployments/",
        {
            "name": name,
            "version": version,
            "environment": environment,
            "target": "https://serve/churn",
        },
        format="json",
    )


def test_production_refuses_a_version_never_approved_and_audits_why(
    api, registered_model, data_scientist
):
    make_version(data_scientist, registered_model)
    r = _deploy(api, data_scientist, "production")
    assert r.status_code == 409 and r.json()["code"] == "not_approved"
    assert "neither in production nor holding a protected alias" in r.json()["message"]
    assert not Deployment.objects.exists()
    assert not AuditEvent.objects.filter(action="deployment.created").exists()
    event = AuditEvent.objects.get(action="gate.refused")
    assert event.registered_model_id == registered_model.pk and event.actor_label == "alice"
    assert event.details["wanted"] == "deploy" and event.details["code"] == "not_approved"
    assert event.details["status"] == 409 and "Promote it first" in event.details["reason"]


@pytest.mark.parametrize("environment", ["prod", "production", "PROD", "Production", " prod "])
def test_production_environment_names_compare_without_case(
    api, registered_model, data_scientist, environment
):
    make_version(data_scientist, registered_model)
    assert _deploy(api, data_scientist, environment).json()["code"] == "not_approved"


@pytest.mark.parametrize("environment", ["staging", "prod-eu", "production2", "preprod"])
def test_other_environments_take_any_version(api, registered_model, data_scientist, environment):
    make_version(data_scientist, registered_model)
    r = _deploy(api, data_scientist, environment)
    assert r.status_code == 201 and r.json()["environment"] == environment
    assert AuditEvent.objects.filter(action="deployment.created").count() == 1
    assert not AuditEvent.objects.filter(action="gate.refused").exists()


def test_the_production_environments_come_from_the_setting(
    api, registered_model, data_scientist, settings
):
    settings.PRODUCTION_ENVIRONMENTS = ["live", "Serving"]
    make_version(data_scientist, registered_model)
    assert _deploy(api, data_scientist, "prod").status_code == 201
    assert _deploy(api, data_scientist, "LIVE").json()["code"] == "not_approved"
    assert _deploy(api, data_scientist, "serving").json()["code"] == "not_approved"


def test_production_takes_a_version_in_production(api, registered_model, data_scientist):
    place(make_version(data_scientist, registered_model), ModelVersion.Stage.PRODUCTION)
    r = _deploy(api, data_scientist, "prod")
    assert r.status_code == 201 and r.json()["version"] == 1
    event = AuditEvent.objects.get(action="deployment.created")
    assert event.details == {"version": 1, "environment": "prod", "target": "https://serve/churn"}


def test_production_takes_a_version_holding_a_protected_alias(
    api, registered_model, data_scientist
):
    make_version(data_scientist, registered_model)
    make_version(data_scientist, registered_model)
    no_approval(registered_model, protected_aliases=["Live"])
    admin = actor_for(superuser())
    services.alias_set(
        actor=admin,
        registered_model=registered_model,
        name="live",
        version=registered_model.versions.get(version=1),
    )
    services.alias_set(
        actor=admin,
        registered_model=registered_model,
        name="champion",
        version=registered_model.versions.get(version=2),
    )
    assert _deploy(api, data_scientist, "prod", version=1).status_code == 201
    # An alias the policy does not protect is not an approval.
    assert _deploy(api, data_scientist, "prod", version=2).json()["code"] == "not_approved"


def test_the_service_marks_the_refusal_for_the_gate_audit(registered_model, data_scientist):
    version = make_version(data_scientist, registered_model)
    with pytest.raises(Conflict) as exc:
        services.deployment_create(
            actor=actor_for(data_scientist), version=version, environment="production", target="t"
        )
    assert exc.value.code == "not_approved"
    assert exc.value.refusal == {
        "registered_model_id": registered_model.pk,
        "registered_model_name": "churn",
        "wanted": "deploy",
        "action": "gate.refused",
    }


def test_a_user_who_may_not_change_the_model_is_refused_before_the_gate(
    api, registered_model, data_scientist, viewer, outsider
):
    make_version(data_scientist, registered_model)
    assert _deploy(api, viewer, "prod").status_code == 403
    assert _deploy(api, outsider, "prod").status_code == 404
    assert not AuditEvent.objects.filter(action="gate.refused").exists()


def test_deployments_have_no_edit_route_and_are_read_only_in_the_admin(
    api, client, registered_model, data_scientist
):
    make_version(data_scientist, registered_model)
    pk = _deploy(api, data_scientist, "staging").json()["id"]
    for method in ("put", "patch"):
        r = getattr(api(data_scientist), method)(
            f"/api/v1/deployments/{pk}/", {"environment": "prod"}, format="json"
        )
        assert r.status_code == 405
    client.force_login(superuser())
    change = f"/admin/registry/deployment/{pk}/change/"
    assert client.get(change).status_code == 200  # browse, yes
    r = client.post(
        change,
        {
            "environment": "prod",
            "target": "t",
            "version": registered_model.versions.get(version=1).pk,
        },
    )
    assert r.status_code == 403
    assert client.get("/admin/registry/deployment/add/").status_code == 403
    assert Deployment.objects.get().environment == "staging"


def test_compliance_flags_active_production_deployments_of_unapproved_versions(
    registered_model, data_scientist
):
    admin = actor_for(superuser())
    v1, v2 = (
        make_version(data_scientist, registered_model),
        make_version(data_scientist, registered_model),
    )
    place(v1, ModelVersion.Stage.PRODUCTION)
    services.deployment_create(actor=admin, version=v1, environment="prod", target="a")
    services.deployment_create(actor=admin, version=v2, environment="staging", target="b")
    assert _serving_unapproved(registered_model) == []
    # v2 replaces v1 in production; v1's deployment was never retired.
    place(v2, ModelVersion.Stage.PRODUCTION, archive_existing=True)
    services.deployment_create(actor=admin, version=v2, environment="production", target="c")
    findings = _serving_unapproved(registered_model)
    assert [f["severity"] for f in findings] == ["error"]
    assert findings[0]["message"].startswith(
        "Version 1 serves in production environment 'prod' at a but is no longer approved"
    )
    assert not compliance.report(registered_model)["compliant"]
    services.deployment_retire(actor=admin, deployment=Deployment.objects.get(target="a"))
    assert _serving_unapproved(registered_model) == []


def test_compliance_flags_a_record_from_before_the_gate_but_not_a_protected_alias(
    registered_model, data_scientist
):
    v1, v2 = (
        make_version(data_scientist, registered_model),
        make_version(data_scientist, registered_model),
    )
    # Rows recorded before deployments were gated (plain rows: no service would write them).
    for version, target in ((v1, "legacy"), (v2, "aliased")):
        Deployment.objects.create(
            version=version, environment="PROD", target=target, deployed_at=timezone.now()
        )
    no_approval(registered_model, protected_aliases=["live"])
    services.alias_set(
        actor=actor_for(superuser()), registered_model=registered_model, name="live", version=v2
    )
    findings = _serving_unapproved(registered_model)
    assert [f["message"].split(" serves")[0] for f in findings] == ["Version 1"]
    assert "'PROD' at legacy" in findings[0]["message"] and findings[0]["severity"] == "error"


def test_compliance_report_through_the_api_shows_the_finding(
    api, registered_model, data_scientist, reviewer
):
    version = make_version(data_scientist, registered_model)
    Deployment.objects.create(
        version=version, environment="production", target="t", deployed_at=timezone.now()
    )
    report = api(reviewer).get("/api/v1/models/churn/compliance/").json()
    assert not report["compliant"]
    assert any(
        "is not in production (stage: none) and holds no protected alias" in f["message"]
        and f["severity"] == "error"
        for f in report["findings"]
    )
