"""Aliases that follow production (issue 17, item 4): a policy can name aliases that move to the
version an approved request puts in production, and an alias the replaced version takes;
each move is audited with the request. Without the option nothing moves."""

from __future__ import annotations

import pytest

from core.errors import DomainError
from core.models import AuditEvent
from governance import policies
from governance.models import Policy
from registry import services
from registry.models import Alias
from tests.factories import actor_for, make_model, ready_version, superuser
from tests.governance.test_promotions import ask, decide

pytestmark = pytest.mark.django_db


def _aliases(registered_model) -> dict[str, int]:
    return dict(
        Alias.objects.filter(registered_model=registered_model).values_list(
            "name", "version__version"
        )
    )


def _promote(data_scientist, ml_engineer, reviewer, registered_model, target="production"):
    version = ready_version(data_scientist, registered_model)
    request = ask(ml_engineer, version, target=target)
    decide(reviewer, request)
    request.refresh_from_db()
    assert request.status == "applied", request.status_message
    return version, request


def test_champion_follows_production_and_the_replaced_version_becomes_previous(
    data_scientist, ml_engineer, reviewer
):
    registered_model = make_model(data_scientist, "follows")
    Policy.objects.create(
        registered_model=registered_model,
        production_approvals=1,
        staging_approvals=1,
        production_aliases=["champion"],
        previous_alias="previous",
    )
    v1, first = _promote(data_scientist, ml_engineer, reviewer, registered_model)
    assert _aliases(registered_model) == {"champion": 1}  # nothing was replaced
    v2, second = _promote(data_scientist, ml_engineer, reviewer, registered_model)
    assert _aliases(registered_model) == {"champion": 2, "previous": 1}
    moves = [
        (e.action, e.details["name"], e.details["to"], e.details["promotion_request"])
        for e in AuditEvent.objects.filter(action__startswith="alias.").order_by("sequence")
    ]
    assert moves == [
        ("alias.created", "champion", 1, first.pk),
        ("alias.moved", "champion", 2, second.pk),
        ("alias.created", "previous", 1, second.pk),
    ]
    # A staging promotion moves no production alias.
    _promote(data_scientist, ml_engineer, reviewer, registered_model, target="staging")
    assert _aliases(registered_model) == {"champion": 2, "previous": 1}


def test_without_the_option_aliases_stay_where_they_were(data_scientist, ml_engineer, reviewer):
    registered_model = make_model(data_scientist, "stays")
    Policy.objects.create(registered_model=registered_model, production_approvals=1)
    v1, _ = _promote(data_scientist, ml_engineer, reviewer, registered_model)
    services.alias_set(
        actor=actor_for(superuser(), "cli"),
        registered_model=registered_model,
        name="champion",
        version=v1,
    )
    _promote(data_scientist, ml_engineer, reviewer, registered_model)
    assert _aliases(registered_model) == {"champion": 1}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"production_aliases": "champion"}, "production_aliases"),
        ({"production_aliases": ["not an alias!"]}, "production_aliases"),
        ({"previous_alias": "bad name"}, "previous_alias"),
        ({"production_aliases": ["champion"], "previous_alias": "Champion"}, "previous_alias"),
    ],
)
def test_bad_alias_options_are_refused(changes, field):
    root = superuser()
    policy = Policy.objects.get(risk_tier="medium")
    before = (list(policy.production_aliases), policy.previous_alias)
    with pytest.raises(DomainError) as refused:
        policies.policy_save(actor=actor_for(root, "cli"), policy=policy, **changes)
    assert field in refused.value.fields
    policy.refresh_from_db()
    assert (list(policy.production_aliases), policy.previous_alias) == before


def test_the_options_are_saved_audited_and_shown_by_the_api(api, admin_user):
    policy = Policy.objects.get(risk_tier="high")
    policies.policy_save(
        actor=actor_for(admin_user, "cli"),
        policy=policy,
        production_aliases=["champion"],
        previous_alias="previous",
    )
    event = AuditEvent.objects.filter(action="policy.changed").latest("sequence")
    assert event.details["changes"]["production_aliases"] == {"from": [], "to": ["champion"]}
    make_model(admin_user, "tiered", risk_tier="high")
    body = api(admin_user).get("/api/v1/models/tiered/policy/").json()
    assert (body["production_aliases"], body["previous_alias"]) == (["champion"], "previous")


def test_the_policy_admin_form_is_made_of_fields(client, admin_user):
    """Checks and card sections are ticked, aliases typed as names: no JSON to write."""
    policy = Policy.objects.get(risk_tier="low")
    client.force_login(admin_user)
    url = f"/admin/governance/policy/{policy.pk}/change/"
    page = client.get(url).content.decode()
    assert 'type="checkbox" name="required_checks" value="card_approved"' in page
    form = {
        "production_approvals": 1,
        "staging_approvals": 1,
        "required_checks": ["artifact", "signature"],
        "protected_aliases": "champion, prod",
        "production_aliases": " champion ,gold",
        "previous_alias": "previous",
        "archive_previous": "on",
        "auto_apply": "on",
    }
    assert client.post(url, form).status_code == 302
    policy.refresh_from_db()
    assert policy.required_checks == ["artifact", "signature"]
    assert (policy.protected_aliases, policy.production_aliases) == (
        ["champion", "prod"],
        ["champion", "gold"],
    )
    assert 'value="champion, gold"' in client.get(url).content.decode()
    refused = client.post(url, {**form, "production_aliases": "champion, not valid!"})
    assert refused.status_code == 200 and "Alias names use" in refused.content.decode()
    policy.refresh_from_db()
    assert policy.production_aliases == ["champion", "gold"]


def test_alias_lists_keep_each_name_once(admin_user):
    policy = Policy.objects.get(risk_tier="low")
    policies.policy_save(
        actor=actor_for(admin_user, "cli"),
        policy=policy,
        production_aliases=["champion", "Champion", "gold", "champion"],
        protected_aliases=["prod", "PROD"],
    )
    policy.refresh_from_db()
    assert (policy.production_aliases, policy.protected_aliases) == (["champion", "gold"], ["prod"])
