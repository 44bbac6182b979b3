"""Issue 13, "one rule, one place": the request page draws its buttons from the services'
own rules (promotions.may_apply, may_cancel, review_refusal) and the services enforce them;
applying an approved request is one transaction of its own, from the page as from the API."""

from __future__ import annotations

import pytest

from core.models import AuditEvent
from governance import policies, promotions
from governance.models import PromotionRequest
from tests.factories import actor_for, make_model, ready_version, superuser

pytestmark = pytest.mark.django_db
R = "/api/v1/promotion-requests/"
APPLY = 'action="/requests/{}/apply/"'
CANCEL = 'action="/requests/{}/cancel/"'
REVIEW = 'action="/requests/{}/review/"'


def ask(user, version):
    return promotions.promotion_request_create(
        actor=actor_for(user), version=version, target_stage="production"
    )


def waiting_for_apply(data_scientist, ml_engineer, reviewer):
    registered_model = make_model(data_scientist, "churn")
    policies.policy_override_set(
        actor=actor_for(superuser()), registered_model=registered_model, auto_apply=False
    )
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    promotions.promotion_request_review(
        actor=actor_for(reviewer), promotion_request=request, decision="approve"
    )
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.APPROVED
    return request


def page(client, user, request):
    client.force_login(user)
    r = client.get(f"/requests/{request.pk}/")
    assert r.status_code == 200
    return r.content.decode()


def test_the_page_offers_exactly_what_the_services_allow(
    client, data_scientist, ml_engineer, reviewer, viewer
):
    registered_model = make_model(data_scientist, "churn")
    pending = ask(ml_engineer, ready_version(data_scientist, registered_model))
    for user in (ml_engineer, reviewer, viewer, data_scientist, superuser()):
        pending.refresh_from_db()
        html = page(client, user, pending)
        assert (REVIEW.format(pending.pk) in html) == (
            promotions.review_refusal(user, pending) is None
        ), user.username
        assert (CANCEL.format(pending.pk) in html) == promotions.may_cancel(user, pending)
        assert (APPLY.format(pending.pk) in html) == promotions.may_apply(user, pending)
    assert promotions.may_cancel(ml_engineer, pending)
    assert not promotions.may_cancel(reviewer, pending)


def test_a_closed_request_offers_no_cancel_and_cancelling_it_is_a_conflict(
    api, client, data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(data_scientist, "churn")
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    promotions.promotion_request_cancel(
        actor=actor_for(ml_engineer), promotion_request=request, reason="oops"
    )
    request.refresh_from_db()
    assert not promotions.may_cancel(ml_engineer, request)
    assert CANCEL.format(request.pk) not in page(client, ml_engineer, request)
    # Still the requester: the service says the request is closed (409), not "forbidden".
    r = api(ml_engineer).post(f"{R}{request.pk}/cancel/", {}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "request_not_pending"
    r = api(reviewer).post(f"{R}{request.pk}/cancel/", {}, format="json")
    assert r.status_code == 403


def test_the_apply_button_follows_may_apply(client, data_scientist, ml_engineer, reviewer):
    request = waiting_for_apply(data_scientist, ml_engineer, reviewer)
    assert APPLY.format(request.pk) in page(client, ml_engineer, request)
    assert APPLY.format(request.pk) not in page(client, reviewer, request)
    client.force_login(reviewer)
    assert client.post(f"/requests/{request.pk}/apply/").status_code == 403
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.APPROVED


@pytest.mark.django_db(transaction=True)
def test_applying_from_the_page_and_the_api_runs_in_its_own_transaction(
    api, client, data_scientist, ml_engineer, reviewer
):
    """No test transaction around the request here: the service must open its own (its row
    locks and its audit record need one)."""
    first = waiting_for_apply(data_scientist, ml_engineer, reviewer)
    client.force_login(ml_engineer)
    r = client.post(f"/requests/{first.pk}/apply/")
    assert r.status_code == 302
    first.refresh_from_db()
    assert first.status == PromotionRequest.Status.APPLIED
    assert first.version.stage == "production"
    assert AuditEvent.objects.filter(action="promotion.applied", target_id=str(first.pk)).exists()

    second = ask(ml_engineer, ready_version(data_scientist, first.registered_model))
    promotions.promotion_request_review(
        actor=actor_for(reviewer), promotion_request=second, decision="approve"
    )
    r = api(ml_engineer).post(f"{R}{second.pk}/apply/", {}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "applied"
