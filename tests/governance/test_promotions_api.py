"""The promotion API: the request page's data, the reviewer inbox, errors as 4xx JSON,
constant query counts, and concurrent approvals on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from core import audit
from governance import promotions
from governance.models import PromotionRequest
from registry.models import ModelVersion
from tests.concurrency import all_at_once
from tests.factories import UserFactory, actor_for, make_model, ready_version
from tests.governance.test_promotions import ask, decide

pytestmark = pytest.mark.django_db
R = "/api/v1/promotion-requests/"


@pytest.fixture
def registered_model(data_scientist):
    return make_model(data_scientist, "churn")


def test_request_review_and_apply_through_the_api(
    api, registered_model, data_scientist, ml_engineer, reviewer
):
    ready_version(data_scientist, registered_model)
    r = api(ml_engineer).post(
        R,
        {"model": "churn", "version": 1, "target_stage": "production", "justification": "better"},
        format="json",
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["status"] == "pending" and body["requested_by"] == "bob"
    assert body["evaluation"]["approvals_needed"] == 1
    assert body["evaluation"]["ready_to_approve"] is True
    assert {c["name"] for c in body["evaluation"]["checks"]} >= {
        "artifact",
        "signature",
        "signature_compatible",
        "metrics",
    }
    assert body["you_may_review"] is False and "may not approve" in body["why_not"]
    url = body["url"]

    seen = api(reviewer).get(url).json()
    assert seen["you_may_review"] is True and seen["why_not"] is None
    inbox = api(reviewer).get(R, {"awaiting_my_review": "true"}).json()["results"]
    assert [i["id"] for i in inbox] == [body["id"]]
    assert api(ml_engineer).get(R, {"awaiting_my_review": "1"}).json()["results"] == []
    assert [i["id"] for i in api(ml_engineer).get(R, {"mine": "1"}).json()["results"]] == [
        body["id"]
    ]

    r = api(ml_engineer).post(f"{url}reviews/", {"decision": "approve"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    r = api(reviewer).post(f"{url}reviews/", {"decision": "reject"}, format="json")
    assert r.status_code == 400 and r.json()["fields"]["comment"]
    r = api(reviewer).post(
        f"{url}reviews/", {"decision": "approve", "comment": "fine"}, format="json"
    )
    assert r.status_code == 200
    done = r.json()
    assert done["status"] == "applied" and done["applied_by"] == "carol"
    assert [(x["reviewer"], x["decision"]) for x in done["reviews"]] == [("carol", "approve")]
    r = api(reviewer).post(f"{url}reviews/", {"decision": "approve"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "request_not_pending"
    assert api(reviewer).get(R, {"awaiting_my_review": "1"}).json()["results"] == []


def test_bad_input_is_a_4xx_and_changes_nothing(api, registered_model, data_scientist, ml_engineer):
    ready_version(data_scientist, registered_model)
    client = api(ml_engineer)
    cases = [
        ({"model": "churn", "version": 1}, 400, "validation_failed"),
        ({"model": "churn", "version": 1, "target_stage": "qa"}, 400, "validation_failed"),
        ({"model": "churn", "version": 9, "target_stage": "production"}, 404, "version_not_found"),
        (
            {"model": "nope", "version": 1, "target_stage": "production"},
            404,
            "registered_model_not_found",
        ),
        (
            {"model": "churn", "version": 1, "target_stage": "production", "status": "applied"},
            400,
            "unknown_field",
        ),
        ({"model": "churn", "version": 1, "target_alias": "bad alias!"}, 400, None),
    ]
    for body, code, error in cases:
        r = client.post(R, body, format="json")
        assert r.status_code == code, (body, r.json())
        assert "message" in r.json()
        if error:
            assert r.json()["code"] == error
    assert not PromotionRequest.objects.exists()
    assert client.get(f"{R}999/").status_code == 404
    assert (
        client.post(f"{R}999/reviews/", {"decision": "approve"}, format="json").status_code == 404
    )
    assert client.get(R, {"status": "maybe"}).status_code == 400


def test_requests_of_invisible_models_are_404_and_never_listed(
    api, registered_model, data_scientist, ml_engineer, outsider
):
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    assert api(outsider).get(f"{R}{request.pk}/").status_code == 404
    assert api(outsider).post(f"{R}{request.pk}/cancel/", {}, format="json").status_code == 404
    assert api(outsider).get(R).json()["results"] == []


def test_request_list_costs_constant_queries(
    api, data_scientist, ml_engineer, reviewer, django_assert_max_num_queries
):
    for i in range(6):
        registered_model = make_model(data_scientist, f"m{i}")
        request = ask(ml_engineer, ready_version(data_scientist, registered_model))
        if i % 2:
            decide(reviewer, request)
    client = api(reviewer)
    with django_assert_max_num_queries(6):
        rows = client.get(R).json()["results"]
    assert len(rows) == 6
    with django_assert_max_num_queries(6):
        assert len(client.get(R, {"awaiting_my_review": "1"}).json()["results"]) == 3


def test_policy_and_my_permissions_endpoints(api, registered_model, ml_engineer, viewer):
    policy = api(viewer).get("/api/v1/models/churn/policy/").json()
    assert policy["scope"] == "medium risk tier" and policy["production_approvals"] == 1
    mine = api(ml_engineer).get("/api/v1/models/churn/my-permissions/").json()["permissions"]
    assert mine["request_promotion"] and not mine["approve_promotion"]


def test_rollback_endpoint(api, registered_model, data_scientist, ml_engineer, reviewer):
    r = api(ml_engineer).post(
        "/api/v1/models/churn/rollback/", {"justification": "x"}, format="json"
    )
    assert r.status_code == 404 and r.json()["code"] == "no_rollback_target"
    for _ in range(2):
        decide(reviewer, ask(ml_engineer, ready_version(data_scientist, registered_model)))
    r = api(ml_engineer).post(
        "/api/v1/models/churn/rollback/", {"justification": "drift"}, format="json"
    )
    assert r.status_code == 201 and r.json()["version"] == 1 and r.json()["kind"] == "rollback"


def _reviewers(roles: Any, prefix: str, count: int) -> list[Any]:
    """`count` users holding the reviewer role, named prefix0, prefix1, …"""
    reviewers = []
    for i in range(count):
        user = UserFactory(username=f"{prefix}{i}")
        user.groups.add(roles["reviewer"])
        reviewers.append(user)
    return reviewers


def _approval_outcome(reviewer: Any, request: Any) -> str:
    """Approve as `reviewer`: "ok", or the refusal's code (the outcome is what concurrent
    tests assert)."""
    try:
        promotions.promotion_request_review(
            actor=actor_for(reviewer), promotion_request=request, decision="approve", comment="go"
        )
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the outcome is the assertion
        return getattr(exc, "code", repr(exc))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_final_approvals_of_competing_requests_leave_one_production_version(
    roles, data_scientist, ml_engineer
):
    """Six requests for production, each approved at the same instant by its own reviewer:
    the model lock makes them queue; the first applies, the rest find themselves superseded."""
    registered_model = make_model(data_scientist, "race")
    requests = [ask(ml_engineer, ready_version(data_scientist, registered_model)) for _ in range(6)]
    reviewers = _reviewers(roles, "reviewer", 6)

    def approve(i: int) -> str:
        return _approval_outcome(reviewers[i], requests[i])

    outcomes = all_at_once(6, approve, close_connections=True)
    assert sorted(outcomes) == ["ok"] + ["request_not_pending"] * 5
    assert (
        ModelVersion.objects.filter(registered_model=registered_model, stage="production").count()
        == 1
    )
    statuses = sorted(PromotionRequest.objects.values_list("status", flat=True))
    assert statuses == ["applied"] + ["superseded"] * 5
    assert connection.vendor == "postgresql"


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_of_one_request_count_once_each(roles, data_scientist, ml_engineer):
    """Two reviewers approve a high-risk request at once; a third approves the same request
    at the same time: it is applied exactly once, every approval recorded once."""
    registered_model = make_model(data_scientist, "scorer", risk_tier="high")
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    reviewers = _reviewers(roles, "rev", 3)

    def approve(i: int) -> str:
        return _approval_outcome(reviewers[i], request)

    outcomes = all_at_once(3, approve, close_connections=True)
    assert sorted(outcomes) == ["ok", "ok", "request_not_pending"]
    request.refresh_from_db()
    assert request.status == "applied" and request.reviews.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_on_different_models_all_apply_without_deadlock(
    roles, data_scientist, ml_engineer
):
    """Six models, one request each, approved at the same instant by six reviewers. Each
    approval records events, reads the audit log (separation of duties: who supplied the
    content), then locks its model's rows to apply: with events chained at commit, that read
    takes the chain lock mid-transaction. The locks must still be taken in an order that lets
    every approval apply, none deadlocked, and the chain stays whole."""
    requests = []
    for i in range(6):
        registered_model = make_model(data_scientist, f"parallel-{i}")
        requests.append(ask(ml_engineer, ready_version(data_scientist, registered_model)))
    reviewers = _reviewers(roles, "parallel-reviewer", 6)

    def approve(i: int) -> str:
        return _approval_outcome(reviewers[i], requests[i])

    outcomes = all_at_once(6, approve, close_connections=True)
    assert outcomes == ["ok"] * 6
    assert sorted(PromotionRequest.objects.values_list("status", flat=True)) == ["applied"] * 6
    assert ModelVersion.objects.filter(stage="production").count() == 6
    assert audit.verify().ok
