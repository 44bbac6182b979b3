"""The promotion workflow through its services and its API: approvals under each policy,
separation of duties, readiness checks, superseding, rollback, history and compliance."""

from __future__ import annotations

import pytest
from django.utils import timezone

from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.models import AuditEvent
from governance import policies, promotions
from governance.models import Policy, PromotionRequest, StageHistory
from registry import services
from registry.models import ModelVersion
from tests.factories import (
    SIGNATURE,
    UserFactory,
    actor_for,
    make_model,
    make_version,
    ready_version,
    superuser,
)

pytestmark = pytest.mark.django_db
R = "/api/v1/promotion-requests/"


def ask(user, version, target="production", **kwargs) -> PromotionRequest:
    return promotions.promotion_request_create(
        actor=actor_for(user), version=version, target_stage=target, **kwargs
    )


def decide(user, request, decision="approve", comment="") -> PromotionRequest:
    request.refresh_from_db()
    return promotions.promotion_request_review(
        actor=actor_for(user),
        promotion_request=request,
        decision=decision,
        comment=comment or ("ok" if decision == "approve" else "no"),
    )


def second_reviewer(roles) -> object:
    user = UserFactory(username="dave")
    user.groups.add(roles["reviewer"])
    return user


@pytest.fixture
def registered_model(data_scientist):
    return make_model(data_scientist, "churn")


def test_approval_applies_the_request_and_archives_the_previous_version(
    registered_model, data_scientist, ml_engineer, reviewer
):
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    decide(reviewer, ask(ml_engineer, v1))
    request = ask(ml_engineer, v2, justification="better recall")
    assert request.status == "pending"
    decide(reviewer, request)
    request.refresh_from_db()
    assert request.status == "applied" and request.replaced_version == v1
    assert dict(registered_model.versions.values_list("version", "stage")) == {
        1: "archived",
        2: "production",
    }
    actions = list(
        AuditEvent.objects.filter(
            target_type="governance.promotionrequest", target_id=str(request.pk)
        )
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "promotion.requested",
        "promotion.reviewed",
        "promotion.approved",
        "promotion.applied",
    ]
    moved = AuditEvent.objects.filter(action="version.stage_changed").latest("sequence")
    assert moved.details["promotion_request"] == request.pk
    assert moved.details["archived_versions"] == [1]
    open_rows = StageHistory.objects.filter(
        registered_model=registered_model, ended_at__isnull=True
    )
    assert sorted(open_rows.values_list("version__version", "name")) == [
        (1, "archived"),
        (2, "production"),
    ]


def test_requester_and_author_may_not_approve(
    registered_model, data_scientist, ml_engineer, reviewer, roles
):
    data_scientist.groups.add(roles["reviewer"])  # the author is now also a reviewer
    ml_engineer.groups.add(roles["reviewer"])  # and so is the requester
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    for user, who in ((ml_engineer, "You requested"), (data_scientist, "You created version")):
        with pytest.raises(Forbidden) as exc:
            decide(user, request)
        assert exc.value.code == "separation_of_duties" and who in exc.value.message
    assert request.reviews.count() == 0
    decide(reviewer, request)
    request.refresh_from_db()
    assert request.status == "applied"


def test_reviewers_without_the_permission_are_refused(
    registered_model, data_scientist, ml_engineer, viewer, outsider
):
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    with pytest.raises(Forbidden):
        decide(viewer, request)
    with pytest.raises(NotFound):  # cannot even see the model
        decide(outsider, request)


def test_high_risk_needs_two_distinct_reviewers(data_scientist, ml_engineer, reviewer, roles):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    decide(reviewer, request)
    request.refresh_from_db()
    assert request.status == "pending"
    with pytest.raises(Conflict) as exc:
        decide(reviewer, request)
    assert exc.value.code == "already_reviewed"
    decide(second_reviewer(roles), request)
    request.refresh_from_db()
    assert request.status == "applied"


def test_critical_needs_an_administrator_among_the_approvers(
    data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "fraud", risk_tier="critical")
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    decide(reviewer, request)
    decide(second_reviewer(roles), request)
    request.refresh_from_db()
    assert request.status == "pending"
    evaluation = promotions.evaluate(request)
    assert len(evaluation.approvers) == 2 and not evaluation.admin_approved
    decide(superuser(), request)
    request.refresh_from_db()
    assert request.status == "applied"


def test_failing_required_checks_block_approval(
    registered_model, data_scientist, ml_engineer, reviewer
):
    bare = make_version(data_scientist, registered_model)  # no artifact, no signature
    request = ask(ml_engineer, bare)
    with pytest.raises(Conflict) as exc:
        decide(reviewer, request)
    assert exc.value.code == "checks_failing"
    assert set(exc.value.extra["checks"]) == {"artifact", "signature"}
    assert request.reviews.count() == 0
    # Rejecting is always possible.
    decide(reviewer, request, "reject", "no artifact")
    request.refresh_from_db()
    assert request.status == "rejected"


def test_signature_compatibility_compares_with_the_production_version(
    registered_model, data_scientist, ml_engineer, reviewer
):
    decide(reviewer, ask(ml_engineer, ready_version(data_scientist, registered_model)))
    narrower = {
        "inputs": [{"name": "age", "type": "double"}, {"name": "region", "type": "string"}],
        "outputs": SIGNATURE["outputs"],
    }
    request = ask(ml_engineer, ready_version(data_scientist, registered_model, signature=narrower))
    evaluation = promotions.evaluate(request)
    check = next(c for c in evaluation.checks if c.name == "signature_compatible")
    assert not check.passed and check.required
    assert "removed income" in check.message and "age type long → double" in check.message
    assert evaluation.schema_diff["removed"] == ["income"]
    with pytest.raises(Conflict):
        decide(reviewer, request)


def test_request_changes_blocks_until_that_reviewer_approves(
    data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    dave = second_reviewer(roles)
    decide(reviewer, request, "request_changes", "explain the drop in precision")
    decide(dave, request)
    request.refresh_from_db()
    assert request.status == "pending"
    assert [u.username for u in promotions.evaluate(request).changes_requested_by] == ["carol"]
    decide(reviewer, request)
    request.refresh_from_db()
    assert request.status == "applied"


def test_a_decided_request_cannot_be_acted_on(
    registered_model, data_scientist, ml_engineer, reviewer, roles
):
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    decide(reviewer, request, "reject", "not yet")
    for act in (
        lambda: decide(second_reviewer(roles), request),
        lambda: promotions.promotion_request_cancel(
            actor=actor_for(ml_engineer), promotion_request=request
        ),
        lambda: promotions.promotion_request_apply(
            actor=actor_for(ml_engineer), promotion_request=request
        ),
    ):
        with pytest.raises(Conflict) as exc:
            act()
        assert exc.value.code == "request_not_pending"
        assert "rejected" in exc.value.message


def test_applying_supersedes_competing_requests(
    registered_model, data_scientist, ml_engineer, reviewer
):
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    first, second = ask(ml_engineer, v1), ask(ml_engineer, v2)
    decide(reviewer, second)
    first.refresh_from_db()
    assert first.status == "superseded" and f"#{second.pk}" in first.status_message
    with pytest.raises(Conflict) as exc:
        decide(reviewer, first)
    assert exc.value.code == "request_not_pending"
    assert (
        ModelVersion.objects.filter(registered_model=registered_model, stage="production").count()
        == 1
    )


def test_duplicate_and_pointless_requests_are_refused(
    registered_model, data_scientist, ml_engineer, reviewer, viewer
):
    v = ready_version(data_scientist, registered_model)
    request = ask(ml_engineer, v)
    with pytest.raises(Conflict) as exc:
        ask(ml_engineer, v)
    assert exc.value.code == "duplicate_request" and exc.value.extra["request"] == request.pk
    decide(reviewer, request)
    with pytest.raises(Conflict) as exc:
        ask(ml_engineer, v)
    assert exc.value.code == "already_in_target"
    with pytest.raises(ValidationFailed):
        promotions.promotion_request_create(
            actor=actor_for(ml_engineer), version=v, target_stage="qa"
        )
    with pytest.raises(Forbidden):
        ask(viewer, v)


def test_without_auto_apply_an_approved_request_waits_for_apply(
    registered_model, data_scientist, ml_engineer, reviewer
):
    policies.policy_override_set(
        actor=actor_for(superuser()), registered_model=registered_model, auto_apply=False
    )
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    assert not promotions.may_apply(ml_engineer, request)  # pages hide the button: not yet
    with pytest.raises(Conflict) as exc:
        promotions.promotion_request_apply(actor=actor_for(ml_engineer), promotion_request=request)
    assert exc.value.code == "request_not_approved"
    decide(reviewer, request)
    request.refresh_from_db()
    assert request.status == "approved" and request.version.stage == "none"
    # The one rule the page and the service share: approved, and may request promotions.
    assert promotions.may_apply(ml_engineer, request)
    assert not promotions.may_apply(reviewer, request)
    with pytest.raises(Forbidden):
        promotions.promotion_request_apply(actor=actor_for(reviewer), promotion_request=request)
    promotions.promotion_request_apply(actor=actor_for(ml_engineer), promotion_request=request)
    request.refresh_from_db()
    assert request.status == "applied" and request.applied_by == ml_engineer
    assert request.version.stage == "production"


def test_cancel_is_for_the_requester_or_a_manager(
    registered_model, data_scientist, ml_engineer, reviewer
):
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    with pytest.raises(Forbidden):
        promotions.promotion_request_cancel(actor=actor_for(reviewer), promotion_request=request)
    promotions.promotion_request_cancel(
        actor=actor_for(ml_engineer), promotion_request=request, reason="oops"
    )
    request.refresh_from_db()
    assert request.status == "cancelled" and request.status_message == "oops"
    # The model's creator manages access to it, so may cancel anyone's request.
    other = ask(ml_engineer, request.version)
    promotions.promotion_request_cancel(actor=actor_for(data_scientist), promotion_request=other)


def test_rollback_restores_the_previous_production_version_on_a_fast_track(
    data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    dave = second_reviewer(roles)
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    for v in (v1, v2):
        request = ask(ml_engineer, v)
        decide(reviewer, request)
        decide(dave, request)
    assert promotions.rollback_candidate(registered_model) == v1
    with pytest.raises(ValidationFailed):  # a rollback must say why
        promotions.promotion_request_rollback(
            actor=actor_for(ml_engineer), registered_model=registered_model, justification=" "
        )
    rollback = promotions.promotion_request_rollback(
        actor=actor_for(ml_engineer),
        registered_model=registered_model,
        justification="v2 drifts on new traffic",
    )
    assert rollback.kind == "rollback" and rollback.version == v1
    assert promotions.evaluate(rollback).fast_track
    decide(reviewer, rollback)  # one approval is enough: v1 was approved for production before
    rollback.refresh_from_db()
    assert rollback.status == "applied"
    assert dict(registered_model.versions.values_list("version", "stage")) == {
        1: "production",
        2: "archived",
    }


def test_rollback_without_history_is_a_clear_404(registered_model, ml_engineer):
    with pytest.raises(NotFound) as exc:
        promotions.promotion_request_rollback(
            actor=actor_for(ml_engineer), registered_model=registered_model, justification="why"
        )
    assert exc.value.code == "no_rollback_target"


def test_protected_aliases_move_only_through_requests(
    registered_model, data_scientist, ml_engineer, reviewer
):
    policies.policy_override_set(
        actor=actor_for(superuser()),
        registered_model=registered_model,
        protected_aliases=["champion"],
    )
    v = ready_version(data_scientist, registered_model)
    with pytest.raises(Forbidden) as exc:
        services.alias_set(
            actor=actor_for(data_scientist),
            registered_model=registered_model,
            name="champion",
            version=v,
        )
    assert exc.value.code == "approval_required"
    services.alias_set(
        actor=actor_for(data_scientist), registered_model=registered_model, name="shadow", version=v
    )  # unprotected aliases still move freely
    request = promotions.promotion_request_create(
        actor=actor_for(ml_engineer), version=v, target_alias="champion"
    )
    decide(reviewer, request)
    assert registered_model.aliases.get(name="champion").version == v
    row = StageHistory.objects.get(kind="alias", name="champion")
    assert row.promotion_request == request and row.started_by == reviewer


def test_a_no_approval_policy_applies_requests_at_once(
    registered_model, data_scientist, ml_engineer
):
    Policy.objects.filter(risk_tier="medium").update(production_approvals=0)
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    assert request.status == "applied"
    assert (
        AuditEvent.objects.get(action="promotion.approved").details["note"]
        == "the policy needs no approval"
    )


def test_policy_changes_are_for_admins_validated_and_audited(registered_model, data_scientist):
    with pytest.raises(Forbidden):
        policies.policy_override_set(
            actor=actor_for(data_scientist),
            registered_model=registered_model,
            production_approvals=0,
        )
    admin = actor_for(superuser())
    for bad in (
        {"production_approvals": -1},
        {"required_checks": ["vibes"]},
        {"protected_aliases": ["bad name!"]},
    ):
        with pytest.raises(ValidationFailed):
            policies.policy_override_set(actor=admin, registered_model=registered_model, **bad)
    assert not Policy.objects.filter(registered_model=registered_model).exists()
    policies.policy_override_set(
        actor=admin, registered_model=registered_model, production_approvals=3
    )
    event = AuditEvent.objects.get(action="policy.created", registered_model_id=registered_model.pk)
    assert event.details["changes"]["production_approvals"] == {"from": 1, "to": 3}
    assert policies.policy_for(registered_model).production_approvals == 3


def test_reviewers_are_emailed_and_the_requester_hears_the_decision(
    registered_model,
    data_scientist,
    ml_engineer,
    reviewer,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    version = ready_version(data_scientist, registered_model)  # its card's review e-mail aside
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request = ask(ml_engineer, version)
    assert len(mailoutbox) == 1
    sent = mailoutbox[0]
    assert "Review requested: churn v1 → production" in sent.subject
    assert "carol@example.com" in sent.to  # a reviewer
    assert "bob@example.com" not in sent.to and "alice@example.com" not in sent.to
    assert f"/api/v1/promotion-requests/{request.pk}/" in sent.body
    assert f"/requests/{request.pk}/" in sent.body
    with django_capture_on_commit_callbacks(execute=True):
        decide(reviewer, request)
    assert [m.to for m in mailoutbox[1:]] == [["bob@example.com"]]
    assert "Applied" in mailoutbox[1].subject


def test_point_in_time_history_names_versions_and_approvers(
    registered_model, data_scientist, ml_engineer, reviewer, api
):
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    decide(reviewer, ask(ml_engineer, v1))
    between = timezone.now()
    decide(reviewer, ask(ml_engineer, v2))
    r = api(reviewer).get(
        "/api/v1/models/churn/history/", {"at": between.isoformat().replace("+00:00", "Z")}
    )
    assert r.status_code == 200
    production = r.json()["stages"]["production"]
    assert [p["version"] for p in production] == [1]
    assert production[0]["approved_by"][0]["user"] == "carol"
    assert production[0]["started_by"] == "carol"
    now = api(reviewer).get("/api/v1/models/churn/history/").json()["timeline"]
    assert [(t["version"], t["name"], t["ended_at"] is None) for t in now] == [
        (2, "production", True),
        (1, "archived", True),
        (1, "production", False),
    ]
    r = api(reviewer).get("/api/v1/models/churn/history/", {"at": "yesterday"})
    assert r.status_code == 400 and r.json()["fields"]["at"]


def test_compliance_report(registered_model, data_scientist, ml_engineer, reviewer, api):
    decide(reviewer, ask(ml_engineer, ready_version(data_scientist, registered_model)))
    report = api(reviewer).get("/api/v1/models/churn/compliance/").json()
    assert report["compliant"] and report["findings"] == []
    assert report["production_version"] == 1
    assert report["registered"]["by"] == "alice"
    assert report["production_history"][0]["approved_by"][0]["user"] == "carol"
    assert all(c["passed"] for c in report["production_readiness"] if c["required"])
    # A direct move under a no-approval policy is reported, not hidden.
    from tests.factories import place

    place(ready_version(data_scientist, registered_model), "production", archive_existing=True)
    report = api(reviewer).get("/api/v1/models/churn/compliance/").json()
    assert report["findings"][0]["severity"] == "warning"
    assert "without a promotion request" in report["findings"][0]["message"]


def test_seeded_tier_policies_match_the_shipped_defaults():
    for tier, fields in policies.TIER_DEFAULTS.items():
        row = Policy.objects.get(risk_tier=tier)
        assert {f: getattr(row, f) for f in fields} == fields
    Policy.objects.filter(risk_tier="critical").delete()
    fallback = policies.policy_for(make_model(superuser(), "crit", risk_tier="critical"))
    assert fallback.admin_approval_required and fallback.production_approvals == 2


def test_model_page_shows_policy_production_history_and_a_point_in_time(
    client, registered_model, data_scientist, ml_engineer, reviewer, django_assert_max_num_queries
):
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    decide(reviewer, ask(ml_engineer, v1))
    between = timezone.now()
    decide(reviewer, ask(ml_engineer, v2))
    client.force_login(reviewer)
    with django_assert_max_num_queries(20):
        page = client.get("/models/churn/").content.decode()
    assert "medium-risk policy: 1 approval for production" in page
    history = page.split("Production history")[1].split("At a point in time")[0]
    assert history.index("v2") < history.index("v1") and "carol" in history
    at = between.strftime("%Y-%m-%dT%H:%M:%S.%f")
    page = client.get("/models/churn/", {"at": at}).content.decode()
    table = page.split('id="at"')[1]
    assert "<td>production</td><td>v1</td>" in table and "v2" not in table
    page = client.get("/models/churn/", {"at": "soon"})
    assert page.status_code == 200 and "Give a date and time" in page.content.decode()
