"""Webhooks, deliveries and policies in the admin: every change goes through its service, is
audited once per object with the administrator as actor, and never shows a webhook's secret.
Staff who are not administrators change nothing."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from core.actors import Actor
from core.models import AuditEvent
from governance import policies, webhooks
from governance.models import Policy, Webhook, WebhookDelivery
from tests.factories import UserFactory, make_model

pytestmark = pytest.mark.django_db
A = "/admin/governance/"
SECRET = "whsec-7f3a9c1e-do-not-leak"
NEW_SECRET = "whsec-rotated-b41d-do-not-leak"


@pytest.fixture(autouse=True)
def allow_example_hosts(settings):
    # These names resolve nowhere in a sandbox; listed, they are not looked up when saved.
    settings.WEBHOOK_ALLOWED_HOSTS = ["ci.example.com", "deploy.example.com", "chat.example.com"]


@pytest.fixture
def root(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def staff(client, roles):
    """Staff with every Django permission on webhooks, deliveries and policies, but not an
    administrator (superuser)."""
    user = UserFactory(username="steward", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="governance",
            content_type__model__in=["webhook", "webhookdelivery", "policy"],
        )
    )
    client.force_login(user)
    return client


def _hook(name: str = "deployer", **fields) -> Webhook:
    admin = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser(
        "root", "root@example.com", "pw"
    )
    return webhooks.webhook_create(
        actor=Actor(user=admin, channel="cli"),
        name=name,
        url="https://ci.example.com/hooks/modelgate",
        secret=SECRET,
        **fields,
    )


def _form(**overrides) -> dict:
    return {
        "name": "deployer",
        "url": "https://ci.example.com/hooks/modelgate",
        "secret": "",
        "registered_model": "",
        "events": ["promotion.applied"],
        "active": "on",
        **overrides,
    }


def _events(prefix: str) -> list[AuditEvent]:
    """Events from the admin and services, not the defaults migrate seeds (system:cli, again
    after a transactional test's flush)."""
    return list(
        AuditEvent.objects.filter(action__startswith=prefix)
        .exclude(channel=AuditEvent.Channel.CLI)
        .order_by("sequence")
    )


def _no_secret_in_the_log() -> None:
    stored = str(list(AuditEvent.objects.values()))
    assert SECRET not in stored and NEW_SECRET not in stored


def test_adding_a_webhook_is_audited_and_the_secret_is_never_shown_again(root, data_scientist):
    registered_model = make_model(data_scientist, "churn")
    r = root.post(f"{A}webhook/add/", _form(secret=SECRET, registered_model=registered_model.pk))
    assert r.status_code == 302, r.content.decode()[:3000]
    hook = Webhook.objects.get()
    assert hook.secret == SECRET and hook.registered_model == registered_model
    assert hook.events == ["promotion.applied"]
    event = AuditEvent.objects.get(action="webhook.created")
    assert event.channel == "admin" and event.actor_label == "root"
    assert event.target_id == str(hook.pk) and event.registered_model_name == "churn"
    assert event.details == {
        "webhook": "deployer",
        "url": "https://ci.example.com/hooks/modelgate",
        "registered_model": "churn",
        "events": ["promotion.applied"],
        "active": True,
    }
    _no_secret_in_the_log()
    page = root.get(f"{A}webhook/{hook.pk}/change/").content.decode()
    assert SECRET not in page and "A secret is set and is never shown" in page
    assert SECRET not in root.get(f"{A}webhook/").content.decode()


def test_a_webhook_keeps_its_secret_unless_a_new_one_is_typed(root):
    hook = _hook()
    r = root.post(
        f"{A}webhook/{hook.pk}/change/", _form(url="https://deploy.example.com/in", events=[])
    )
    assert r.status_code == 302, r.content.decode()[:3000]
    hook.refresh_from_db()
    assert hook.secret == SECRET and hook.url == "https://deploy.example.com/in"
    [event] = _events("webhook.changed")
    assert event.details == {
        "webhook": "deployer",
        "changes": {
            "url": {
                "from": "https://ci.example.com/hooks/modelgate",
                "to": "https://deploy.example.com/in",
            }
        },
    }  # no secret_changed
    assert event.channel == "admin" and event.actor_label == "root"

    r = root.post(
        f"{A}webhook/{hook.pk}/change/",
        _form(url="https://deploy.example.com/in", events=[], secret=NEW_SECRET),
    )
    assert r.status_code == 302
    hook.refresh_from_db()
    assert hook.secret == NEW_SECRET
    rotated = _events("webhook.changed")[-1]
    assert rotated.details == {"webhook": "deployer", "changes": {}, "secret_changed": True}
    _no_secret_in_the_log()
    assert NEW_SECRET not in root.get(f"{A}webhook/{hook.pk}/change/").content.decode()

    # Saving the form unchanged writes nothing.
    root.post(
        f"{A}webhook/{hook.pk}/change/", _form(url="https://deploy.example.com/in", events=[])
    )
    assert len(_events("webhook.changed")) == 2


def test_credentials_and_queries_in_a_webhook_address_stay_out_of_the_log(root):
    r = root.post(
        f"{A}webhook/add/",
        _form(secret=SECRET, url="https://bot:pa55@chat.example.com/in?token=t0k"),
    )
    assert r.status_code == 302
    event = AuditEvent.objects.get(action="webhook.created")
    assert event.details["url"] == "https://chat.example.com/in?…"
    assert "pa55" not in str(event.details) and "t0k" not in str(event.details)


def test_service_errors_show_in_the_form_and_save_nothing(root):
    r = root.post(f"{A}webhook/add/", _form(secret=SECRET, events=["promotion.shipped"]))
    page = r.content.decode()
    # Events are ticked from the known ones: another name is refused by the form.
    assert r.status_code == 200 and "promotion.shipped is not one of the available" in page
    assert 'type="checkbox" name="events" value="promotion.approved"' in (
        root.get(f"{A}webhook/add/").content.decode()
    )
    assert SECRET not in page  # not even echoed back into the password field
    r = root.post(f"{A}webhook/add/", _form(secret=SECRET, url="ftp://files.example.com/x"))
    assert r.status_code == 200 and "An http:// or https:// address." in r.content.decode()
    r = root.post(f"{A}webhook/add/", _form(secret=""))
    assert r.status_code == 200 and "This field is required." in r.content.decode()
    assert not Webhook.objects.exists() and not _events("webhook.")


def test_deleting_webhooks_one_at_a_time_or_in_bulk_writes_one_event_each(root):
    one, two, three = _hook("one"), _hook("two"), _hook("three")
    WebhookDelivery.objects.create(
        webhook=one,
        event="promotion.applied",
        delivery_id=uuid.uuid4(),
        payload={},
        created_at=timezone.now(),
    )
    r = root.post(f"{A}webhook/{one.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    r = root.post(
        f"{A}webhook/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [two.pk, three.pk]},
    )
    assert r.status_code == 302
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    deleted = _events("webhook.deleted")
    assert sorted(e.details["webhook"] for e in deleted) == ["one", "three", "two"]
    assert deleted[0].details["deliveries_deleted"] == 1 and deleted[0].channel == "admin"
    assert {e.actor_label for e in deleted} == {"root"}
    _no_secret_in_the_log()


def test_replaying_deliveries_in_the_admin_writes_one_event_each(
    root, django_capture_on_commit_callbacks
):
    hook = _hook()
    failed = [
        WebhookDelivery.objects.create(
            webhook=hook,
            event="promotion.applied",
            delivery_id=uuid.uuid4(),
            payload={"n": n},
            created_at=timezone.now(),
            status="failed",
        )
        for n in range(2)
    ]
    with django_capture_on_commit_callbacks() as sends:
        r = root.post(
            f"{A}webhookdelivery/",
            {"action": "replay", "_selected_action": [d.pk for d in failed]},
            follow=True,
        )
    assert r.status_code == 200 and "Queued again: 2." in r.content.decode()
    assert len(sends) == 2  # each sent after its commit
    events = _events("webhook.delivery_replayed")
    assert len(events) == 2 and {e.target_id for e in events} == {str(d.pk) for d in failed}
    for event in events:
        replay = WebhookDelivery.objects.get(replay_of_id=int(event.target_id))
        assert event.details["replay"] == str(replay.delivery_id)
        assert event.details["webhook"] == "deployer" and event.channel == "admin"
    _no_secret_in_the_log()


def test_staff_who_are_not_administrators_change_no_webhook(staff):
    hook = _hook()
    delivery = WebhookDelivery.objects.create(
        webhook=hook,
        event="promotion.applied",
        delivery_id=uuid.uuid4(),
        payload={},
        created_at=timezone.now(),
        status="failed",
    )
    before = list(AuditEvent.objects.values_list("pk", flat=True))
    page = staff.get(f"{A}webhook/{hook.pk}/change/")
    assert page.status_code == 200 and SECRET not in page.content.decode()  # view only
    assert staff.post(f"{A}webhook/add/", _form(name="mine", secret="x")).status_code == 403
    assert (
        staff.post(
            f"{A}webhook/{hook.pk}/change/", _form(url="https://evil.example.com/", secret="x")
        ).status_code
        == 403
    )
    assert staff.post(f"{A}webhook/{hook.pk}/delete/", {"post": "yes"}).status_code == 403
    staff.post(
        f"{A}webhook/", {"action": "delete_selected", "post": "yes", "_selected_action": [hook.pk]}
    )
    staff.post(f"{A}webhookdelivery/", {"action": "replay", "_selected_action": [delivery.pk]})
    assert list(Webhook.objects.values_list("name", "url", "secret")) == [
        ("deployer", "https://ci.example.com/hooks/modelgate", SECRET)
    ]
    assert list(WebhookDelivery.objects.all()) == [delivery]
    assert list(AuditEvent.objects.values_list("pk", flat=True)) == before


def test_staff_who_are_not_administrators_change_no_policy(staff):
    low = Policy.objects.get(risk_tier="low")
    values = {f: getattr(low, f) for f in policies.EDITABLE}
    page = staff.get(f"{A}policy/{low.pk}/change/")
    assert page.status_code == 200  # view only
    form = {
        "production_approvals": 0,
        "staging_approvals": 0,
        "required_checks": [],
        "protected_aliases": "",
        "production_aliases": "",
        "card_required_sections": [],
    }
    assert staff.post(f"{A}policy/{low.pk}/change/", form).status_code == 403
    assert staff.post(f"{A}policy/add/", {**form, "risk_tier": "low"}).status_code == 403
    assert staff.post(f"{A}policy/{low.pk}/delete/", {"post": "yes"}).status_code == 403
    staff.post(
        f"{A}policy/", {"action": "delete_selected", "post": "yes", "_selected_action": [low.pk]}
    )
    low.refresh_from_db()
    assert {f: getattr(low, f) for f in policies.EDITABLE} == values
    assert Policy.objects.filter(risk_tier__isnull=False).count() == 4
    assert not _events("policy.")


def test_deleting_policies_in_the_admin_goes_through_the_service(root, data_scientist):
    registered_model = make_model(data_scientist, "churn", risk_tier="low")
    r = root.post(
        f"{A}policy/add/",
        {
            "registered_model": registered_model.pk,
            "production_approvals": 3,
            "staging_approvals": 1,
            "required_checks": ["artifact"],
            "protected_aliases": "",
            "production_aliases": "",
            "card_required_sections": [],
            "archive_previous": "on",
            "auto_apply": "on",
        },
    )
    assert r.status_code == 302, r.content.decode()[:3000]
    override = Policy.objects.get(registered_model=registered_model)
    [created] = _events("policy.created")
    assert created.registered_model_name == "churn"

    r = root.post(f"{A}policy/{override.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not Policy.objects.filter(registered_model=registered_model).exists()
    [event] = _events("policy.deleted")
    assert event.details["policy"] == "policy for model churn"
    assert event.details["values"]["production_approvals"] == 3
    assert event.channel == "admin" and event.actor_label == "root"
    registered_model.refresh_from_db()
    assert (
        policies.policy_for(registered_model).production_approvals == 1
    )  # the tier's policy again

    tiers = list(Policy.objects.filter(risk_tier__in=["low", "medium"]))
    r = root.post(
        f"{A}policy/",
        {"action": "delete_selected", "post": "yes", "_selected_action": [p.pk for p in tiers]},
    )
    assert r.status_code == 302
    assert not Policy.objects.filter(risk_tier__in=["low", "medium"]).exists()
    assert sorted(e.details["policy"] for e in _events("policy.deleted")[1:]) == [
        "low risk policy",
        "medium risk policy",
    ]


def test_a_policy_keeps_its_scope_once_added(root):
    low = Policy.objects.get(risk_tier="low")
    page = root.get(f"{A}policy/{low.pk}/change/").content.decode()
    assert 'name="risk_tier"' not in page and 'name="registered_model"' not in page
    r = root.post(
        f"{A}policy/{low.pk}/change/",
        {
            "risk_tier": "critical",
            "production_approvals": 2,
            "staging_approvals": 1,
            "required_checks": ["artifact"],
            "protected_aliases": "",
            "production_aliases": "",
            "card_required_sections": [],
            "archive_previous": "on",
            "auto_apply": "on",
        },
    )
    assert r.status_code == 302, r.content.decode()[:3000]
    low.refresh_from_db()
    assert low.risk_tier == "low" and low.production_approvals == 2
    assert AuditEvent.objects.get(action="policy.changed").details["policy"] == ("low risk policy")
