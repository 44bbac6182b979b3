"""The attacks of issue 11, replayed through the HTTP surface against the hardened gate.

Each attack must now fail with a 4xx JSON error (`code`, `message`, `fields`, ...), leave the
database as it was, and leave one audit event naming the actor and the reason (`gate.refused`
for the gate's rules, `access.refused` for a missing permission). Set-ups go through services
and factories; the attacker's own steps go through `/api/v1/...` (or, for grants, which have
no API endpoint, the model's access page).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from core import permissions
from core.models import AuditEvent
from core.permissions import Perm
from governance import content, policies, promotions
from governance.models import (
    PromotionRequest,
    RegisteredModelUserPermission,
    Review,
    StageHistory,
)
from registry.models import Alias, Artifact, Deployment, ModelVersion, RegisteredModel
from tests.cache import clear_cache
from tests.factories import (
    SIGNATURE,
    UserFactory,
    actor_for,
    approve_card,
    make_artifact,
    make_model,
    make_version,
    ready_version,
    reviewer_named,
    superuser,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"
R = f"{API}/promotion-requests/"
# A signature the attacker would like approvers not to have seen: one more input.
WIDER_SIGNATURE = {
    "inputs": [*SIGNATURE["inputs"], {"name": "tenure", "type": "long"}],
    "outputs": SIGNATURE["outputs"],
}


# --- Helpers ----------------------------------------------------------------------------------


def refused(
    do: Callable[[], Any],
    status: int,
    code: str,
    user: User,
    registered_model: RegisteredModel,
    *,
    action: str = "gate.refused",
    page: bool = False,
) -> dict[str, Any]:
    """Run one HTTP attempt and assert it was refused with `status` and `code` and that
    exactly one new audit event records it, with the actor, the model and (for the gate) the
    reason. Refusal events are throttled per address, user, action and model: each attempt
    starts a fresh window so that every refusal must leave its own event."""
    clear_cache()
    before = set(AuditEvent.objects.filter(action=action).values_list("pk", flat=True))
    response = do()
    if page:  # pages answer the form again, with the service's message, as a 400
        assert response.status_code == 400, response.status_code
        body = {}
    else:
        body = response.json()
        assert response.status_code == status, body
        assert body["code"] == code, body
        assert body["message"] and isinstance(body["fields"], dict), body
    new = list(AuditEvent.objects.filter(action=action).exclude(pk__in=before))
    assert len(new) == 1, [(e.action, e.details) for e in new]
    event = new[0]
    assert event.actor_id == user.pk and event.actor_label == user.get_username()
    assert event.registered_model_id == registered_model.pk
    assert event.details["code"] == code and event.details["status"] == status
    if action == "gate.refused":
        assert event.details["reason"]
        if body:
            assert event.details["reason"] == body["message"][:500]
    return body


def open_request(
    api, user: User, registered_model: RegisteredModel, number: int, **target: str
) -> dict[str, Any]:
    target = target or {"target_stage": "production"}
    r = api(user).post(
        R,
        {"model": registered_model.name, "version": number, "justification": "better", **target},
        format="json",
    )
    assert r.status_code == 201, r.json()
    return r.json()


def approve(api, user: User, request_id: int) -> Any:
    return api(user).post(
        f"{R}{request_id}/reviews/", {"decision": "approve", "comment": "looks fine"}, format="json"
    )


def promote(
    registered_model: RegisteredModel,
    version: ModelVersion,
    requester: User,
    *reviewers: User,
    **target: str,
) -> PromotionRequest:
    """Set-up: a promotion the way the workflow makes it (request, enough approvals)."""
    target = target or {"target_stage": "production"}
    request = promotions.promotion_request_create(
        actor=actor_for(requester), version=version, justification="set-up", **target
    )
    for user in reviewers:
        request.refresh_from_db()
        promotions.promotion_request_review(
            actor=actor_for(user), promotion_request=request, decision="approve", comment="ok"
        )
    request.refresh_from_db()
    assert request.status == "applied"
    return request


def upload(
    api,
    user: User,
    registered_model: RegisteredModel,
    number: int,
    filename: str = "extra.pkl",
    data: bytes = b"\x80\x04K\x02.",
) -> Any:
    return api(user).post(
        f"{API}/models/{registered_model.name}/versions/{number}/artifacts/?filename={filename}",
        data=data,
        content_type="application/octet-stream",
    )


def files_of(version: ModelVersion) -> list[tuple[str, str]]:
    return sorted(version.artifacts.values_list("filename", "sha256"))


def assert_sealed_attempts_refused(
    api, user: User, registered_model: RegisteredModel, version: ModelVersion, seal: str
) -> None:
    """Signature, metrics and a new file: each refused as version_sealed, naming `seal`;
    the content digest, files, metrics and signature stay as they were."""
    digest, files, signature = content.digest(version), files_of(version), version.signature
    metrics = sorted(version.metrics.values_list("name", "value"))
    base = f"{API}/models/{registered_model.name}/versions/{version.version}/"
    client = api(user)
    attempts = [
        lambda: client.patch(base, {"signature": WIDER_SIGNATURE}, format="json"),
        lambda: client.post(f"{base}metrics/", {"metrics": {"auc": 0.99}}, format="json"),
        lambda: upload(api, user, registered_model, version.version),
    ]
    for attempt in attempts:
        body = refused(attempt, 409, "version_sealed", user, registered_model)
        assert any(seal in reason for reason in body["sealed_by"]), body
    version.refresh_from_db()
    assert version.signature == signature
    assert sorted(version.metrics.values_list("name", "value")) == metrics
    assert files_of(version) == files
    assert content.digest(version) == digest


# --- Policies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tier", ["high", "critical"])
def test_the_default_high_and_critical_policies_protect_champion_prod_and_production(
    data_scientist, tier
):
    registered_model = make_model(data_scientist, f"fresh-{tier}", risk_tier=tier)
    policy = policies.policy_for(registered_model)
    assert {a.casefold() for a in policy.protected_aliases} >= {"champion", "prod", "production"}
    for name in ("champion", "Champion", "prod", "PROD", "Prod", "production", "Production"):
        assert policies.is_protected(policy, name), name
    assert not policies.is_protected(policy, "shadow")


# --- Attack 2: changing what already serves ---------------------------------------------------


def test_a_change_rights_user_cannot_upload_a_file_to_a_version_in_production(
    api, data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(data_scientist, "churn")
    v1 = ready_version(data_scientist, registered_model)
    promote(registered_model, v1, ml_engineer, reviewer)
    resolve = f"{API}/models/churn/resolve/?stage=production"
    before = api(data_scientist).get(resolve).json()
    assert before["version"] == 1 and len(before["artifacts"]) == 1

    body = refused(
        lambda: upload(api, data_scientist, registered_model, 1, "model.pkl.bak"),
        409,
        "version_sealed",
        data_scientist,
        registered_model,
    )
    assert body["sealed_by"] == ["it is in production"]

    after = api(data_scientist).get(resolve).json()
    assert [(a["filename"], a["sha256"]) for a in after["artifacts"]] == [
        (a["filename"], a["sha256"]) for a in before["artifacts"]
    ]
    assert Artifact.objects.filter(version=v1).count() == 1
    assert not AuditEvent.objects.filter(
        action="artifact.uploaded", details__filename="model.pkl.bak"
    ).exists()


def test_a_version_holding_a_protected_alias_refuses_signature_metrics_and_file_changes(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    v1 = ready_version(data_scientist, registered_model)
    promote(
        registered_model,
        v1,
        ml_engineer,
        reviewer,
        reviewer_named(roles, "dave"),
        target_alias="champion",
    )
    v1.refresh_from_db()
    assert v1.stage == "none" and registered_model.aliases.get().name == "champion"

    assert_sealed_attempts_refused(
        api, data_scientist, registered_model, v1, "protected alias 'champion'"
    )
    # What the model is stays frozen; what it says about itself does not.
    r = api(data_scientist).patch(
        f"{API}/models/scorer/versions/1/", {"description": "still editable"}, format="json"
    )
    assert r.status_code == 200 and r.json()["description"] == "still editable"


# --- Attack 3: changing content between approvals ---------------------------------------------


def test_after_the_first_of_two_approvals_the_author_cannot_change_signature_metrics_or_files(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    v1 = ready_version(data_scientist, registered_model)
    request = open_request(api, ml_engineer, registered_model, 1)
    r = approve(api, reviewer, request["id"])
    assert r.status_code == 200 and r.json()["status"] == "pending"

    assert_sealed_attempts_refused(
        api, data_scientist, registered_model, v1, f"request #{request['id']}"
    )
    stored = PromotionRequest.objects.get(pk=request["id"])
    assert stored.status == "pending" and stored.content_digest == content.digest(v1)
    assert list(Review.objects.filter(request=stored).values_list("content_digest", flat=True)) == [
        stored.content_digest
    ]

    # The first approval still binds to the same content, so the second one applies it.
    r = approve(api, reviewer_named(roles, "dave"), request["id"])
    assert r.status_code == 200 and r.json()["status"] == "applied", r.json()


def test_editing_and_reapproving_the_card_voids_an_earlier_approval(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    ready_version(data_scientist, registered_model)
    request = open_request(api, ml_engineer, registered_model, 1)
    assert approve(api, reviewer, request["id"]).json()["status"] == "pending"

    card = f"{API}/models/scorer/versions/1/card/"
    r = api(data_scientist).patch(
        card, {"sections": {"limitations": "Rewritten after the first approval."}}, format="json"
    )
    assert r.status_code == 200 and r.json()["status"] == "draft", r.json()
    edited = AuditEvent.objects.get(action="promotion.approvals_voided")
    assert edited.actor_id == data_scientist.pk and edited.details["voided"] == ["carol"]
    assert api(data_scientist).post(f"{card}submit/").status_code == 200
    for name in ("card-reviewer-0", "card-reviewer-1"):
        r = api(User.objects.get(username=name)).post(
            f"{card}reviews/", {"decision": "approve"}, format="json"
        )
        assert r.status_code == 200, r.json()
    assert r.json()["status"] == "approved"

    voided = AuditEvent.objects.filter(
        action="promotion.approvals_voided", target_id=str(request["id"])
    )
    assert voided.exists() and all(e.details["voided"] == ["carol"] for e in voided)

    # One fresh approval is not two: carol's approval was given on the old card.
    r = approve(api, reviewer_named(roles, "dave"), request["id"])
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["status"] == "pending", body
    assert body["evaluation"]["approved_by"] == ["dave"]
    assert body["evaluation"]["approvals_needed"] == 2
    assert ModelVersion.objects.get(registered_model=registered_model, version=1).stage == "none"
    assert PromotionRequest.objects.get(pk=request["id"]).status == "pending"

    # A second approval on what the card says now is what applies it.
    r = approve(api, reviewer_named(roles, "erin"), request["id"])
    assert r.status_code == 200 and r.json()["status"] == "applied", r.json()


def test_a_reviewer_whose_approval_was_voided_may_approve_the_new_content(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    ready_version(data_scientist, registered_model)
    request = open_request(api, ml_engineer, registered_model, 1)
    assert approve(api, reviewer, request["id"]).json()["status"] == "pending"
    card = f"{API}/models/scorer/versions/1/card/"
    api(data_scientist).patch(card, {"sections": {"limitations": "Rewritten."}}, format="json")
    api(data_scientist).post(f"{card}submit/")
    for name in ("card-reviewer-0", "card-reviewer-1"):
        api(User.objects.get(username=name)).post(
            f"{card}reviews/", {"decision": "approve"}, format="json"
        )
    assert api(reviewer).get(f"{R}{request['id']}/").json()["evaluation"]["voided_approvals"] == [
        "carol"
    ]
    r = approve(api, reviewer, request["id"])  # "Reviewers must approve it again."
    assert r.status_code == 200, r.json()
    assert r.json()["evaluation"]["approved_by"] == ["carol"]


def _approved_not_applied(api, registered_model, data_scientist, ml_engineer, *reviewers) -> dict:
    """A high-risk request approved by two reviewers under a policy that does not apply on
    approval, so it waits, approved, for someone to apply it."""
    policies.policy_override_set(
        actor=actor_for(superuser()), registered_model=registered_model, auto_apply=False
    )
    ready_version(data_scientist, registered_model)
    request = open_request(api, ml_engineer, registered_model, 1)
    for user in reviewers:
        r = approve(api, user, request["id"])
        assert r.status_code == 200, r.json()
    assert r.json()["status"] == "approved", r.json()
    return request


def test_editing_the_card_of_an_approved_request_sends_it_back_to_pending(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    request = _approved_not_applied(
        api, registered_model, data_scientist, ml_engineer, reviewer, reviewer_named(roles, "dave")
    )
    r = api(data_scientist).patch(
        f"{API}/models/scorer/versions/1/card/",
        {"sections": {"limitations": "Edited once approved."}},
        format="json",
    )
    assert r.status_code == 200, r.json()
    stored = PromotionRequest.objects.get(pk=request["id"])
    assert stored.status == "pending" and stored.decided_at is None
    event = AuditEvent.objects.get(action="promotion.approvals_voided")
    assert event.details["reopened"] is True
    assert sorted(event.details["voided"]) == ["carol", "dave"]
    r = api(ml_engineer).post(f"{R}{request['id']}/apply/")
    assert r.status_code == 409 and r.json()["code"] == "request_not_approved", r.json()
    assert ModelVersion.objects.get(registered_model=registered_model, version=1).stage == "none"


def test_applying_after_an_approver_lost_eligibility_is_refused(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    dave = reviewer_named(roles, "dave")
    request = _approved_not_applied(
        api, registered_model, data_scientist, ml_engineer, reviewer, dave
    )
    dave.groups.remove(roles["reviewer"])  # an administrator takes the role away
    body = refused(
        lambda: api(ml_engineer).post(f"{R}{request['id']}/apply/"),
        409,
        "approvals_insufficient",
        ml_engineer,
        registered_model,
    )
    assert len(body["ineligible_reviews"]) == 1
    assert PromotionRequest.objects.get(pk=request["id"]).status == "approved"
    assert ModelVersion.objects.get(registered_model=registered_model, version=1).stage == "none"
    assert not AuditEvent.objects.filter(action="promotion.applied").exists()


def test_a_rollback_to_an_archived_version_whose_content_changed_gets_no_fast_track(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    dave = reviewer_named(roles, "dave")
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    promote(registered_model, v1, ml_engineer, reviewer, dave)
    promote(registered_model, v2, ml_engineer, reviewer, dave)
    v1.refresh_from_db()
    assert v1.stage == "archived"
    entered = StageHistory.objects.filter(version=v1, name="production").latest("started_at")

    # Archived versions are not sealed: the author slips new metrics into v1...
    r = api(data_scientist).post(
        f"{API}/models/scorer/versions/1/metrics/", {"metrics": {"auc": 0.99}}, format="json"
    )
    assert r.status_code == 200, r.json()
    assert content.digest(v1) != entered.content_digest

    # ... then asks for the fast track back to production.
    r = api(ml_engineer).post(
        f"{API}/models/scorer/rollback/", {"justification": "v2 drifts"}, format="json"
    )
    assert r.status_code == 201, r.json()
    rollback = r.json()
    assert rollback["kind"] == "rollback" and rollback["version"] == 1
    assert rollback["evaluation"]["fast_track"] is False
    assert rollback["evaluation"]["approvals_needed"] == 2
    r = approve(api, reviewer, rollback["id"])
    assert r.status_code == 200 and r.json()["status"] == "pending", r.json()
    assert dict(registered_model.versions.values_list("version", "stage")) == {
        1: "archived",
        2: "production",
    }


def test_a_rollback_after_the_archived_versions_requirements_changed_gets_no_fast_track(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    dave = reviewer_named(roles, "dave")
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    promote(registered_model, v1, ml_engineer, reviewer, dave)
    promote(registered_model, v2, ml_engineer, reviewer, dave)
    r = api(data_scientist).patch(
        f"{API}/models/scorer/versions/1/",
        {"pip_requirements": ["scikit-learn==1.4.2", "evil-helper==0.1"]},
        format="json",
    )
    assert r.status_code == 200, r.json()
    r = api(ml_engineer).post(
        f"{API}/models/scorer/rollback/", {"justification": "v2 drifts"}, format="json"
    )
    assert r.status_code == 201, r.json()
    assert r.json()["evaluation"]["fast_track"] is False
    assert approve(api, reviewer, r.json()["id"]).json()["status"] == "pending"


def test_a_rollback_to_an_unchanged_archived_version_keeps_its_fast_track(
    api, data_scientist, ml_engineer, reviewer, roles
):
    """The control for the attack above: the same rollback without the change needs one."""
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    dave = reviewer_named(roles, "dave")
    v1, v2 = (
        ready_version(data_scientist, registered_model),
        ready_version(data_scientist, registered_model),
    )
    promote(registered_model, v1, ml_engineer, reviewer, dave)
    promote(registered_model, v2, ml_engineer, reviewer, dave)
    r = api(ml_engineer).post(
        f"{API}/models/scorer/rollback/", {"justification": "v2 drifts"}, format="json"
    )
    assert r.json()["evaluation"]["fast_track"] is True
    assert approve(api, reviewer, r.json()["id"]).json()["status"] == "applied"


# --- Attack 4: appointing approvers -----------------------------------------------------------


def _access(
    client, registered_model: RegisteredModel, who: str, perm: Perm, action: str = "grant"
) -> Any:
    return client.post(
        f"/models/{registered_model.name}/access/",
        {"who": who, "perm": str(perm), "action": action},
    )


def _model_grants(registered_model: RegisteredModel, *users: User) -> set[tuple[str, str]]:
    return set(
        RegisteredModelUserPermission.objects.filter(
            content_object=registered_model, user__in=users
        ).values_list("user__username", "permission__codename")
    )


def test_a_model_creator_cannot_appoint_approvers_or_access_managers(
    api, client, data_scientist, outsider
):
    r = api(data_scientist).post(
        f"{API}/models/", {"name": "scorer", "risk_tier": "high"}, format="json"
    )
    assert r.status_code == 201, r.json()
    registered_model = RegisteredModel.objects.get(name="scorer")
    oscar = UserFactory(username="oscar")  # a second account without any role
    client.force_login(data_scientist)

    for who, perm in (
        (outsider, Perm.APPROVE_PROMOTION),
        (oscar, Perm.APPROVE_PROMOTION),
        (outsider, Perm.MANAGE_ACCESS),
    ):
        refused(
            lambda who=who, perm=perm: _access(client, registered_model, who.username, perm),
            403,
            "administrator_required",
            data_scientist,
            registered_model,
            page=True,
        )
        event = AuditEvent.objects.filter(action="gate.refused").latest("sequence")
        assert event.details["wanted"] == f"grant {perm}"
        assert "Only an administrator" in event.details["reason"]
    assert _model_grants(registered_model, outsider, oscar) == set()
    assert not AuditEvent.objects.filter(action="access.granted").exists()
    for user in (outsider, oscar):
        assert not permissions.has(user, Perm.APPROVE_PROMOTION, registered_model)
        assert not permissions.has(user, Perm.MANAGE_ACCESS, registered_model)


def test_an_access_manager_cannot_grant_themselves_anything(client, data_scientist, roles):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    assert permissions.has(
        data_scientist, Perm.MANAGE_ACCESS, registered_model
    )  # the creator's grant
    client.force_login(data_scientist)
    for who, perm in (
        ("alice", Perm.APPROVE_PROMOTION),
        ("alice", Perm.VIEW),
        ("group:data scientist", Perm.APPROVE_PROMOTION),
    ):
        refused(
            lambda who=who, perm=perm: _access(client, registered_model, who, perm),
            403,
            "self_grant",
            data_scientist,
            registered_model,
            page=True,
        )
    # Nor take their own access away behind an administrator's back.
    refused(
        lambda: _access(client, registered_model, "alice", Perm.MANAGE_ACCESS, "revoke"),
        403,
        "self_grant",
        data_scientist,
        registered_model,
        page=True,
    )
    assert not permissions.has(data_scientist, Perm.APPROVE_PROMOTION, registered_model)
    assert _model_grants(registered_model, data_scientist) == {
        ("alice", str(p))
        for p in (Perm.VIEW, Perm.CHANGE, Perm.DELETE, Perm.REQUEST_PROMOTION, Perm.MANAGE_ACCESS)
    }
    assert not AuditEvent.objects.filter(action__in=("access.granted", "access.revoked")).exists()


def test_an_approval_grant_made_by_an_administrator_counts_and_one_made_by_the_creator_does_not(
    api, client, data_scientist, ml_engineer, outsider, admin_user
):
    registered_model = make_model(data_scientist, "churn")
    ready_version(data_scientist, registered_model)
    oscar = UserFactory(username="oscar")
    # A grant the creator made before the gate existed (migration 0008 marks it as theirs).
    for perm in (Perm.VIEW, Perm.APPROVE_PROMOTION):
        permissions.grant(perm, registered_model, user=oscar, granted_by=data_scientist)
    client.force_login(admin_user)
    for perm in (Perm.VIEW, Perm.APPROVE_PROMOTION):
        assert _access(client, registered_model, "olivia", perm).status_code == 302
    assert (
        RegisteredModelUserPermission.objects.get(
            user=outsider, content_object=registered_model, permission__codename="approve_promotion"
        ).by_administrator
        is True
    )

    request = open_request(api, ml_engineer, registered_model, 1)
    body = refused(
        lambda: approve(api, oscar, request["id"]),
        403,
        "permission_denied",
        oscar,
        registered_model,
        action="access.refused",
    )
    assert "approve" in body["message"]
    assert not Review.objects.filter(request_id=request["id"]).exists()
    r = approve(api, outsider, request["id"])
    assert r.status_code == 200 and r.json()["status"] == "applied", r.json()


# --- Attack 5: skipping the inspection ---------------------------------------------------------


def test_a_cancelled_inspection_fails_packaging_naming_the_file_and_blocks_approval(
    api, data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    v1 = make_version(data_scientist, registered_model, signature=SIGNATURE)
    make_artifact(
        data_scientist, v1, data=pickle.dumps("weights"), filename="weights.pkl", inspect=False
    )
    approve_card(v1)
    jobs = f"{API}/models/scorer/versions/1/jobs/"
    (job,) = api(data_scientist).get(jobs).json()["results"]
    assert job["kind"] == "inspect" and job["status"] == "queued"
    r = api(data_scientist).post(f"{jobs}{job['id']}/cancel/")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    request = open_request(api, ml_engineer, registered_model, 1)
    packaging = next(c for c in request["evaluation"]["checks"] if c["name"] == "packaging")
    assert packaging["passed"] is False and packaging["blocking"] is True
    assert "weights.pkl" in packaging["message"] and "cancelled" in packaging["message"]
    assert request["evaluation"]["ready_to_approve"] is False

    body = refused(
        lambda: approve(api, reviewer, request["id"]),
        409,
        "checks_failing",
        reviewer,
        registered_model,
    )
    assert "packaging" in body["checks"] and "weights.pkl" in body["message"]
    assert not Review.objects.filter(request_id=request["id"]).exists()
    assert PromotionRequest.objects.get(pk=request["id"]).status == "pending"
    v1.refresh_from_db()
    assert v1.stage == "none"


# --- Attack 6: choosing one's own policy -------------------------------------------------------


def test_the_creator_cannot_lower_the_risk_tier(api, data_scientist):
    r = api(data_scientist).post(
        f"{API}/models/",
        {"name": "fraud", "risk_tier": "critical", "description": "before"},
        format="json",
    )
    assert r.status_code == 201, r.json()
    registered_model = RegisteredModel.objects.get(name="fraud")
    body = refused(
        lambda: api(data_scientist).patch(
            f"{API}/models/fraud/", {"risk_tier": "low", "description": "after"}, format="json"
        ),
        403,
        "administrator_required",
        data_scientist,
        registered_model,
    )
    assert "critical" in body["message"]
    registered_model.refresh_from_db()
    assert registered_model.risk_tier == "critical" and registered_model.description == "before"
    assert not AuditEvent.objects.filter(action="registered_model.updated").exists()
    assert api(data_scientist).get(f"{API}/models/fraud/").json()["risk_tier"] == "critical"


# --- Attack 7: an administrator approving their own content ------------------------------------


def test_an_administrator_who_uploaded_a_file_cannot_approve_its_request(
    api, data_scientist, ml_engineer, reviewer, admin_user
):
    registered_model = make_model(data_scientist, "churn")
    make_version(data_scientist, registered_model, signature=SIGNATURE)
    r = upload(api, admin_user, registered_model, 1, "model.pkl")
    assert r.status_code == 201, r.json()
    request = open_request(api, ml_engineer, registered_model, 1)

    body = refused(
        lambda: approve(api, admin_user, request["id"]),
        403,
        "separation_of_duties",
        admin_user,
        registered_model,
    )
    assert "supplied content" in body["message"]
    assert not Review.objects.filter(request_id=request["id"]).exists()
    assert PromotionRequest.objects.get(pk=request["id"]).status == "pending"
    # Someone who supplied nothing may.
    assert approve(api, reviewer, request["id"]).json()["status"] == "applied"


# --- Attack 10: aliases that differ only in case ---------------------------------------------


@pytest.mark.parametrize("alias", ["Prod", "PROD", "Champion", "PRODUCTION"])
def test_a_protected_alias_in_another_case_is_refused(api, data_scientist, alias):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    make_version(data_scientist, registered_model)
    body = refused(
        lambda: api(data_scientist).put(
            f"{API}/models/scorer/aliases/{alias}/", {"version": 1}, format="json"
        ),
        403,
        "approval_required",
        data_scientist,
        registered_model,
    )
    assert "protected" in body["message"]
    assert not Alias.objects.filter(registered_model=registered_model).exists()


def test_a_protected_alias_that_exists_cannot_be_moved_by_another_spelling(
    api, data_scientist, ml_engineer, reviewer, roles
):
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    v1 = ready_version(data_scientist, registered_model)
    make_version(data_scientist, registered_model)
    promote(
        registered_model,
        v1,
        ml_engineer,
        reviewer,
        reviewer_named(roles, "dave"),
        target_alias="prod",
    )
    refused(
        lambda: api(data_scientist).put(
            f"{API}/models/scorer/aliases/PROD/", {"version": 2}, format="json"
        ),
        403,
        "approval_required",
        data_scientist,
        registered_model,
    )
    assert list(registered_model.aliases.values_list("name", "version__version")) == [("prod", 1)]


def test_an_alias_differing_only_in_case_never_becomes_a_second_alias(api, data_scientist):
    registered_model = make_model(data_scientist, "churn")  # medium: no protected aliases
    make_version(data_scientist, registered_model)
    make_version(data_scientist, registered_model)
    client = api(data_scientist)
    assert (
        client.put(f"{API}/models/churn/aliases/prod/", {"version": 1}, format="json").status_code
        == 200
    )
    r = client.put(f"{API}/models/churn/aliases/PROD/", {"version": 2}, format="json")
    assert r.status_code in (200, 409), r.json()
    if r.status_code == 200:  # the existing alias moved and kept its spelling
        assert r.json()["name"] == "prod"
    assert registered_model.aliases.count() == 1
    assert [a["name"] for a in client.get(f"{API}/models/churn/aliases/").json()] == ["prod"]
    # And the database itself refuses a second spelling, whoever writes it.
    with pytest.raises(IntegrityError), transaction.atomic():
        Alias.objects.create(
            registered_model=registered_model,
            name="Prod",
            version=registered_model.versions.first(),
        )


# --- Deployments ------------------------------------------------------------------------------


def test_deploying_an_unapproved_version_to_production_is_refused(api, data_scientist):
    registered_model = make_model(data_scientist, "churn")
    make_version(data_scientist, registered_model)
    body = refused(
        lambda: api(data_scientist).post(
            f"{API}/deployments/",
            {"name": "churn", "version": 1, "environment": "prod", "target": "https://serve/churn"},
            format="json",
        ),
        409,
        "not_approved",
        data_scientist,
        registered_model,
    )
    assert "Promote it first" in body["message"]
    assert not Deployment.objects.exists()


def test_a_version_deployed_to_production_stays_sealed_after_it_is_archived(
    api, data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(data_scientist, "churn")
    v1 = ready_version(data_scientist, registered_model)
    promote(registered_model, v1, ml_engineer, reviewer)
    r = api(data_scientist).post(
        f"{API}/deployments/",
        {"name": "churn", "version": 1, "environment": "prod", "target": "https://serve/churn"},
        format="json",
    )
    assert r.status_code == 201, r.json()
    r = api(data_scientist).post(
        f"{API}/models/churn/versions/1/stage/", {"stage": "archived"}, format="json"
    )
    assert r.status_code == 200, r.json()
    files = files_of(v1)
    refused(
        lambda: upload(api, data_scientist, registered_model, 1, "swapped.pkl"),
        409,
        "version_sealed",
        data_scientist,
        registered_model,
    )
    assert files_of(v1) == files


def test_a_production_environment_name_hiding_an_invisible_character_is_refused(
    api, data_scientist
):
    registered_model = make_model(data_scientist, "churn")
    make_version(data_scientist, registered_model)
    r = api(data_scientist).post(
        f"{API}/deployments/",
        {
            "name": "churn",
            "version": 1,
            "environment": "prod\u200b",
            "target": "https://serve/churn",
        },
        format="json",
    )
    assert r.status_code in (400, 409), r.json()
    assert not Deployment.objects.filter(version__registered_model=registered_model).exists()


# --- Attack 11: every refusal above is on the record -------------------------------------------


def test_gate_refusals_are_readable_in_the_audit_api_with_actor_and_reason(
    api, data_scientist, admin_user
):
    """The events the tests above assert are what an auditor reads back through the API."""
    registered_model = make_model(data_scientist, "fraud", risk_tier="critical")
    api(data_scientist).patch(f"{API}/models/fraud/", {"risk_tier": "low"}, format="json")
    rows = api(admin_user).get(f"{API}/audit/events/", {"action": "gate.refused"}).json()
    (row,) = rows["results"]
    assert row["actor"] == "alice" and row["details"]["code"] == "administrator_required"
    assert "risk tier" in row["details"]["reason"]
    assert row["details"]["wanted"] == "change risk tier"
    registered_model.refresh_from_db()
    assert registered_model.risk_tier == "critical"
