"""Issue 13, typing the services: what mypy found. The request selectors and the home page's
requests panel take any user (a signed-in one, an anonymous visitor or None, the system);
with None they asked None for its id and raised AttributeError instead of showing nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from governance import panels, promotions, selectors
from tests.factories import actor_for, make_model, ready_version

pytestmark = pytest.mark.django_db

EVERY_FILTER = selectors.RequestFilters(requested_by_me=True, awaiting_my_review=True)


@pytest.fixture
def pending(data_scientist, ml_engineer):
    version = ready_version(data_scientist, make_model(data_scientist, "churn"))
    return promotions.promotion_request_create(
        actor=actor_for(ml_engineer), version=version, target_stage="production"
    )


def test_a_reviewer_finds_the_pending_request_in_the_inbox(pending, reviewer):
    assert list(selectors.promotion_request_list(user=reviewer, filters=EVERY_FILTER)) == []
    inbox = selectors.promotion_request_list(
        user=reviewer, filters=selectors.RequestFilters(awaiting_my_review=True)
    )
    assert list(inbox) == [pending]
    assert list(panels.home(user=reviewer)["awaiting"]) == [pending]


@pytest.mark.parametrize("nobody", [None, AnonymousUser()], ids=["system", "anonymous"])
def test_nobody_signed_in_finds_no_requests(pending, nobody):
    assert list(selectors.promotion_request_list(user=nobody, filters=EVERY_FILTER)) == []
    requests = selectors.promotion_request_list(user=nobody)
    assert list(selectors.awaiting_review(nobody, requests)) == []
    home = panels.home(user=nobody)
    assert list(home["awaiting"]) == list(home["mine"]) == []
    assert home["request_counts"] == {"awaiting": 0, "open": 0}
