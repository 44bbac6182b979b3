"""Issue 13, "one rule, one place": the reviewer's inbox (the API's awaiting_my_review, the
inbox page and the dashboard) shows exactly the pending requests the services would let the
user decide. Whoever supplied content of a version (its author, an uploader of a file,
whoever logged its metrics or changed covered metadata or, when the policy requires the
card, edited its card) or
requested the promotion does not find it waiting for them, however many approval rights they
hold; the list costs the same number of queries for one request as for five."""

from __future__ import annotations

import pickle
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cards import services as card_services
from cards.models import ModelCard
from governance import policies, promotions
from governance.models import Policy, PromotionRequest
from registry import services
from tests.factories import (
    SIGNATURE,
    UserFactory,
    actor_for,
    make_artifact,
    make_model,
    make_version,
    superuser,
)

pytestmark = pytest.mark.django_db
R = "/api/v1/promotion-requests/"


def member(roles, name, *role_names):
    user = UserFactory(username=name)
    for role in role_names:
        user.groups.add(roles[role])
    return user


@pytest.fixture
def cast(roles, reviewer):
    """Everyone here may approve promotions (the reviewer role); all but carol may change
    models too, so they can supply content."""
    both = ("data scientist", "reviewer")
    return {
        "author": member(roles, "alice", *both),
        "requester": member(roles, "bob", "ml engineer", "reviewer"),
        "uploader": member(roles, "uma", *both),
        "measurer": member(roles, "mel", *both),
        "packager": member(roles, "pat", *both),  # changed its requirements
        "card_editor": member(roles, "cora", *both),
        "describer": member(roles, "dan", *both),  # changed only the description
        "reviewer": reviewer,  # carol
    }


def contributed_version(cast, registered_model):
    """A version every member of the cast but the reviewer and the describer supplied."""
    version = make_version(cast["author"], registered_model, signature=SIGNATURE)
    make_artifact(cast["author"], version, data=pickle.dumps("weights"))
    make_artifact(cast["uploader"], version, data=pickle.dumps("more"), filename="extra.pkl")
    services.version_metrics_log(
        actor=actor_for(cast["measurer"]), version=version, metrics={"f1": 0.7}
    )
    services.version_update(
        actor=actor_for(cast["packager"]), version=version, pip_requirements=["numpy==2.1.0"]
    )
    services.version_update(
        actor=actor_for(cast["describer"]), version=version, description="words only"
    )
    card_services.card_update(
        actor=actor_for(cast["card_editor"]),
        card=ModelCard.objects.get(version=version),
        changes={"sections": {"intended_use": "Scoring churn."}},
    )
    return version


def ask(user, version, target="production"):
    return promotions.promotion_request_create(
        actor=actor_for(user), version=version, target_stage=target
    )


def api_inbox(api, user):
    r = api(user).get(R, {"awaiting_my_review": "1"})
    assert r.status_code == 200
    return {row["id"] for row in r.json()["results"]}


def page_inbox(client, user):
    client.force_login(user)
    return {int(pk) for pk in re.findall(r"#(\d+)</a>", client.get("/inbox/").content.decode())}


def dashboard(client, user):
    """The dashboard's count and rows waiting for the user."""
    client.force_login(user)
    html = client.get("/").content.decode()
    count = int(re.search(r'id="count-awaiting">(\d+)<', html).group(1))
    section = html[html.index('id="awaiting"') : html.index('id="mine"')]
    return count, {int(pk) for pk in re.findall(r"#(\d+)</a>", section)}


def test_contributors_requester_and_author_do_not_find_the_request_waiting_for_them(
    api, client, cast
):
    registered_model = make_model(
        cast["author"], "churn", risk_tier="high"
    )  # the card is under the digest
    request = ask(cast["requester"], contributed_version(cast, registered_model))
    for role in ("author", "requester", "uploader", "measurer", "packager", "card_editor"):
        user = cast[role]
        assert promotions.review_refusal(user, request) is not None, role
        assert api_inbox(api, user) == set(), role
        assert page_inbox(client, user) == set(), role
        assert dashboard(client, user) == (0, set()), role
    for role in ("reviewer", "describer"):
        user = cast[role]
        assert promotions.review_refusal(user, request) is None, role
        assert api_inbox(api, user) == {request.pk}, role
        assert page_inbox(client, user) == {request.pk}, role
        assert dashboard(client, user) == (1, {request.pk}), role


def test_the_service_refuses_the_approval_the_inbox_no_longer_offers(api, cast):
    registered_model = make_model(cast["author"], "churn", risk_tier="high")
    request = ask(cast["requester"], contributed_version(cast, registered_model))
    r = api(cast["uploader"]).post(
        f"{R}{request.pk}/reviews/", {"decision": "approve"}, format="json"
    )
    assert r.status_code == 403 and r.json()["code"] == "separation_of_duties"
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.PENDING and not request.reviews.exists()


def test_card_editors_are_barred_exactly_when_the_policy_in_force_requires_the_card(api, cast):
    """The inbox follows the policy the services read (policies.policy_for): the model's own
    policy, else its tier's row, else the tier's shipped defaults."""
    admin = actor_for(superuser())
    medium = make_model(cast["author"], "medium")  # the medium tier does not require it
    medium_own = make_model(cast["author"], "medium-own")
    policies.policy_override_set(
        actor=admin,
        registered_model=medium_own,
        required_checks=["artifact", promotions.content.CARD_CHECK],
    )
    high_own = make_model(cast["author"], "high-own", risk_tier="high")
    policies.policy_override_set(actor=admin, registered_model=high_own, required_checks=[])
    low = make_model(cast["author"], "low", risk_tier="low")
    policies.policy_save(
        actor=admin,
        policy=Policy.objects.get(risk_tier="low"),
        required_checks=[promotions.content.CARD_CHECK],
    )
    critical = make_model(cast["author"], "critical", risk_tier="critical")
    assert policies.policy_delete(actor=admin, policy=Policy.objects.get(risk_tier="critical"))
    requests = {
        registered_model.name: ask(cast["requester"], contributed_version(cast, registered_model))
        for registered_model in (medium, medium_own, high_own, low, critical)
    }
    editor = cast["card_editor"]
    waiting = api_inbox(api, editor)
    assert waiting == {requests["medium"].pk, requests["high-own"].pk}
    for request in requests.values():
        request.refresh_from_db()
        assert (request.pk in waiting) == (promotions.review_refusal(editor, request) is None)


def test_the_inbox_holds_exactly_what_review_refusal_allows(api, cast, roles, outsider):
    registered_model = make_model(cast["author"], "churn", risk_tier="high")
    other = make_model(cast["uploader"], "other")
    requests = [
        ask(cast["requester"], contributed_version(cast, registered_model)),
        ask(cast["uploader"], make_version(cast["measurer"], other, signature=SIGNATURE)),
        ask(cast["requester"], make_version(cast["author"], other, signature=SIGNATURE)),
    ]
    decided = ask(cast["requester"], make_version(cast["author"], other), target="staging")
    promotions.promotion_request_review(
        actor=actor_for(cast["reviewer"]),
        promotion_request=decided,
        decision="reject",
        comment="no",
    )
    users = [*cast.values(), outsider, member(roles, "vic", "viewer"), superuser()]
    for user in users:
        waiting = api_inbox(api, user)
        assert decided.pk not in waiting
        for request in requests:
            request.refresh_from_db()
            allowed = promotions.review_refusal(user, request) is None
            assert (request.pk in waiting) == allowed, (user.username, request.pk)


def _queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_inbox_costs_the_same_queries_for_one_request_as_for_five(api, client, cast):
    carol = cast["reviewer"]
    client.force_login(carol)
    rest = api(carol)
    registered_model = make_model(cast["author"], "churn", risk_tier="high")
    ask(cast["requester"], contributed_version(cast, registered_model))
    client.get("/")  # the session and the permission caches are warm from here on
    rest.get(R)
    urls = ["/", "/inbox/", f"{R}?awaiting_my_review=1"]
    before = [_queries(client, url) for url in urls[:2]] + [_queries(rest, urls[2])]
    for i in range(4):
        other = make_model(cast["author"], f"m{i}", risk_tier="high")
        ask(cast["requester"], contributed_version(cast, other))
    assert len(api_inbox(api, carol)) == 5
    after = [_queries(client, url) for url in urls[:2]] + [_queries(rest, urls[2])]
    assert after == before
