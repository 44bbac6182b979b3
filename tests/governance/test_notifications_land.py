"""Notifications that land (issue 17, item 5): e-mails link to the pages people act on,
`promotion.approved` and `promotion.applied` reach automation on every path (a reviewer's
approval applied at once, a policy that needs no approval, a later manual apply), reviewers
barred from a request are not asked to decide it, and a submitted card asks those who may
approve it."""

from __future__ import annotations

import pytest

from cards import content as card_content
from cards import services as card_services
from cards.models import ModelCard
from core import permissions
from core.permissions import Perm
from governance.models import Policy, Webhook, WebhookDelivery
from governance.promotions import promotion_request_apply
from tests.factories import (
    UserFactory,
    actor_for,
    make_model,
    make_version,
    ready_version,
    superuser,
)
from tests.governance.test_promotions import ask, decide

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(db):
    return Webhook.objects.create(name="ci", url="https://ci.example.com/hook", secret="k")


def _events(request) -> list[str]:
    return list(
        WebhookDelivery.objects.filter(payload__request__id=request.pk)
        .order_by("pk")
        .values_list("event", flat=True)
    )


def test_an_approval_applied_at_once_sends_approved_then_applied(
    hook, data_scientist, ml_engineer, reviewer, mailoutbox, django_capture_on_commit_callbacks
):
    registered_model = make_model(data_scientist, "auto")
    version = ready_version(data_scientist, registered_model)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request = ask(ml_engineer, version)
    assert f"/requests/{request.pk}/" in mailoutbox[0].body  # the page a reviewer decides on
    assert f"/api/v1/promotion-requests/{request.pk}/" in mailoutbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        decide(reviewer, request)
    assert _events(request) == [
        "promotion.requested",
        "promotion.approved",
        "promotion.applied",
    ]
    # Each payload says when its event happened: a receiver orders a retried delivery by it.
    moments = list(
        WebhookDelivery.objects.filter(payload__request__id=request.pk)
        .order_by("pk")
        .values_list("payload__occurred_at", flat=True)
    )
    assert moments == sorted(moments) and len(set(moments)) == 3
    # The requester hears once, that it is done (not "approved" and then "applied").
    assert [m.subject for m in mailoutbox[1:]] == ["[Modelgate] Applied: auto v1 → production"]
    assert f"/requests/{request.pk}/" in mailoutbox[1].body


def test_a_policy_needing_no_approval_still_sends_approved(
    hook, data_scientist, ml_engineer, django_capture_on_commit_callbacks
):
    registered_model = make_model(data_scientist, "free")
    Policy.objects.create(registered_model=registered_model, production_approvals=0)
    with django_capture_on_commit_callbacks(execute=True):
        request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    assert _events(request) == ["promotion.approved", "promotion.applied"]


def test_an_approval_applied_later_sends_each_event_when_it_happens(
    hook, data_scientist, ml_engineer, reviewer, mailoutbox, django_capture_on_commit_callbacks
):
    registered_model = make_model(data_scientist, "manual")
    Policy.objects.create(registered_model=registered_model, auto_apply=False)
    request = ask(ml_engineer, ready_version(data_scientist, registered_model))
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        decide(reviewer, request)
    assert _events(request)[-1] == "promotion.approved"
    assert [m.to for m in mailoutbox] == [["bob@example.com"]]
    assert "approved" in mailoutbox[0].subject
    request.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        promotion_request_apply(actor=actor_for(ml_engineer), promotion_request=request)
    assert _events(request)[-2:] == ["promotion.approved", "promotion.applied"]


def test_a_reviewer_who_wrote_the_card_is_not_asked_to_decide(
    data_scientist, ml_engineer, reviewer, roles, mailoutbox, django_capture_on_commit_callbacks
):
    registered_model = make_model(data_scientist, "written")
    # The card counts as the version's content where the policy requires it approved.
    Policy.objects.create(registered_model=registered_model, required_checks=["card_approved"])
    version = ready_version(data_scientist, registered_model)
    writer = UserFactory(username="writer", email="writer@example.com")
    writer.groups.add(roles["reviewer"])
    permissions.grant(Perm.CHANGE, registered_model, user=writer, granted_by=superuser())
    card = ModelCard.objects.get(version=version)
    # The writer supplied content of the version (a card revision): barred from deciding.
    card.status = ModelCard.Status.DRAFT
    card.save(update_fields=["status"])
    card_services.card_update(
        actor=actor_for(writer), card=card, changes={"sections": {"limitations": "Small data."}}
    )
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        ask(ml_engineer, version, target="staging")
    (sent,) = mailoutbox
    assert "carol@example.com" in sent.to and "writer@example.com" not in sent.to


def test_a_submitted_card_asks_those_who_may_approve_it(
    client, data_scientist, reviewer, roles, mailoutbox, django_capture_on_commit_callbacks
):
    registered_model = make_model(data_scientist, "carded")
    version = make_version(data_scientist, registered_model)
    card = ModelCard.objects.get(version=version)
    card_services.card_update(
        actor=actor_for(data_scientist),
        card=card,
        changes={"sections": {key: "Written." for key in card_content.SECTION_KEYS}},
    )
    card.refresh_from_db()
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        card_services.card_submit(actor=actor_for(data_scientist), card=card)
    (sent,) = mailoutbox
    assert "Card review requested: carded v1" in sent.subject
    assert "carol@example.com" in sent.to and "alice@example.com" not in sent.to
    assert "/models/carded/versions/1/card/" in sent.body
    client.force_login(reviewer)
    page = client.get("/models/carded/versions/1/card/").content.decode()
    assert "May still approve:" in page and "carol" in page.split('id="card-eligible"')[1][:300]
    assert "alice" not in page.split('id="card-eligible"')[1][:300]  # she edited it last


def test_someone_who_may_approve_but_not_view_is_not_asked(
    data_scientist, ml_engineer, admin_user, mailoutbox, django_capture_on_commit_callbacks
):
    """An approval grant without view (or view revoked later) decides nothing: the request's
    page answers 404 to them, so they are neither e-mailed nor listed."""
    from governance import promotions

    registered_model = make_model(data_scientist, "unseen")
    blind = UserFactory(username="blind", email="blind@example.com")
    permissions.grant(Perm.APPROVE_PROMOTION, registered_model, user=blind, granted_by=admin_user)
    version = ready_version(data_scientist, registered_model)
    mailoutbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        request = ask(ml_engineer, version)
    assert "blind@example.com" not in mailoutbox[0].to
    assert blind not in promotions.eligible_reviewers(request)
    card = ModelCard.objects.get(version=version)
    assert blind not in card_services.eligible_reviewers(card)
    permissions.grant(Perm.VIEW, registered_model, user=blind, granted_by=admin_user)
    assert blind in promotions.eligible_reviewers(request)
