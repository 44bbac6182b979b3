"""Issue 13: governance imports no card. The cards app tells governance's policies which card
sections exist and which each risk tier requires (CardsConfig.ready()); a policy may require
only registered sections, and with none registered it may require none (fail closed)."""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from cards import content as card_content
from cards import services as card_services
from cards.models import ModelCard
from core.actors import Actor
from core.errors import Conflict, ValidationFailed
from core.models import AuditEvent
from governance import policies
from governance.models import Policy
from tests.factories import actor_for, make_model, make_version

ROOT = Path(__file__).resolve().parents[2]

# What each tier required before issue 13, written out (cards.content may not drift from it
# unnoticed: migration 0007 seeded the same lists).
SHIPPED = {
    "low": ["intended_use"],
    "medium": ["intended_use", "out_of_scope", "training_data", "limitations"],
    "high": [
        "intended_use",
        "out_of_scope",
        "training_data",
        "evaluation_data",
        "performance",
        "limitations",
        "bias_fairness",
    ],
    "critical": [
        "intended_use",
        "out_of_scope",
        "training_data",
        "evaluation_data",
        "performance",
        "limitations",
        "bias_fairness",
        "ethical_considerations",
        "recommendations",
        "caveats",
    ],
}


@pytest.fixture
def unregistered() -> Iterator[None]:
    """As in an installation without the cards app: nothing registered. Restores the cards
    app's registration afterwards."""
    saved = copy.deepcopy(policies.TIER_DEFAULTS)
    policies.card_sections_register(keys=(), required_by_tier={})
    yield
    policies.card_sections_register(
        keys=card_content.SECTION_KEYS, required_by_tier=card_content.REQUIRED_BY_TIER
    )
    assert saved == policies.TIER_DEFAULTS


def tier_policy(tier: str) -> Policy:
    return Policy.objects.get(risk_tier=tier)


# --- a policy's sections are checked against the registered ones ---------------------------


@pytest.mark.django_db
def test_a_policy_update_naming_an_unknown_section_is_refused_and_changes_nothing(admin_user):
    policy = tier_policy("medium")
    before = list(policy.card_required_sections)
    with pytest.raises(ValidationFailed) as refused:
        policies.policy_save(
            actor=actor_for(admin_user),
            policy=policy,
            card_required_sections=["intended_use", "secret_sauce"],
        )
    assert list(refused.value.fields) == ["card_required_sections"]
    message = str(refused.value)
    assert "Unknown card sections: secret_sauce." in message
    assert f"Known: {', '.join(card_content.SECTION_KEYS)}." in message
    assert tier_policy("medium").card_required_sections == before
    assert not AuditEvent.objects.filter(action="policy.changed").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["intended_use", [["intended_use"]], [None]])
def test_sections_that_are_not_a_list_of_names_are_refused(admin_user, value):
    with pytest.raises(ValidationFailed) as refused:
        policies.policy_save(
            actor=actor_for(admin_user),
            policy=tier_policy("low"),
            card_required_sections=value,
        )
    assert list(refused.value.fields) == ["card_required_sections"]
    assert tier_policy("low").card_required_sections == SHIPPED["low"]


@pytest.mark.django_db
def test_known_sections_are_accepted_and_a_card_must_then_have_them(admin_user, data_scientist):
    registered_model = make_model(data_scientist, "churn", risk_tier="low")
    policy = policies.policy_override_set(
        actor=actor_for(admin_user),
        registered_model=registered_model,
        card_required_sections=["intended_use", "caveats"],
    )
    assert Policy.objects.get(pk=policy.pk).card_required_sections == ["intended_use", "caveats"]
    event = AuditEvent.objects.get(action="policy.created", target_id=str(policy.pk))
    assert event.details["changes"]["card_required_sections"]["to"] == ["intended_use", "caveats"]

    version = make_version(data_scientist, registered_model)
    card = ModelCard.objects.get(version=version)
    actor = actor_for(data_scientist)
    card_services.card_update(
        actor=actor, card=card, changes={"sections": {"intended_use": "Churn scoring."}}
    )
    with pytest.raises(Conflict) as refused:
        card_services.card_submit(actor=actor, card=ModelCard.objects.get(pk=card.pk))
    assert refused.value.extra["missing"] == ["caveats"]


@pytest.mark.django_db
def test_with_no_sections_registered_every_section_name_is_refused(admin_user, unregistered):
    policy = tier_policy("high")
    with pytest.raises(ValidationFailed) as refused:
        policies.policy_save(
            actor=actor_for(admin_user), policy=policy, card_required_sections=["intended_use"]
        )
    assert "Unknown card sections: intended_use." in str(refused.value)
    assert "none (model cards are not enabled)" in str(refused.value)
    # Requiring none is still possible, and the shipped defaults require none.
    policies.policy_save(actor=actor_for(admin_user), policy=policy, card_required_sections=[])
    assert tier_policy("high").card_required_sections == []
    assert all(d["card_required_sections"] == [] for d in policies.TIER_DEFAULTS.values())


def test_a_registration_naming_an_unknown_tier_or_section_is_refused_and_changes_nothing():
    saved = copy.deepcopy(policies.TIER_DEFAULTS)
    with pytest.raises(ImproperlyConfigured, match="Unknown risk tiers: extreme"):
        policies.card_sections_register(
            keys=card_content.SECTION_KEYS, required_by_tier={"extreme": ["intended_use"]}
        )
    with pytest.raises(ImproperlyConfigured, match="low tier requires unknown card sections: x"):
        policies.card_sections_register(keys=("intended_use",), required_by_tier={"low": ["x"]})
    assert saved == policies.TIER_DEFAULTS
    assert policies.card_section_keys() == card_content.SECTION_KEYS


# --- the shipped tier defaults still require the same sections ------------------------------


def test_the_cards_app_registered_its_sections_and_tier_requirements_at_startup():
    assert policies.card_section_keys() == card_content.SECTION_KEYS
    assert card_content.REQUIRED_BY_TIER == SHIPPED
    for tier, sections in card_content.REQUIRED_BY_TIER.items():
        assert policies.TIER_DEFAULTS[tier]["card_required_sections"] == sections
    assert set(policies.TIER_DEFAULTS) == set(SHIPPED)


@pytest.mark.django_db
def test_seeded_recreated_and_fallback_tier_policies_require_the_shipped_sections(
    admin_user, data_scientist
):
    # Seeded by the migrations, then checked by defaults_sync after migrate.
    for tier, sections in SHIPPED.items():
        assert tier_policy(tier).card_required_sections == sections
    # A deleted tier row: the fallback reads the registered defaults...
    Policy.objects.filter(risk_tier="critical").delete()
    registered_model = make_model(data_scientist, "fraud", risk_tier="critical")
    assert policies.policy_for(registered_model).card_required_sections == SHIPPED["critical"]
    version = make_version(data_scientist, registered_model)
    with pytest.raises(Conflict) as refused:
        card_services.card_submit(
            actor=actor_for(data_scientist), card=ModelCard.objects.get(version=version)
        )
    assert refused.value.extra["missing"] == SHIPPED["critical"]
    # ... and the row that tier_policies_ensure puts back holds them too.
    created = policies.tier_policies_ensure(actor=Actor.system("cli"))
    assert [p.risk_tier for p in created] == ["critical"]
    assert tier_policy("critical").card_required_sections == SHIPPED["critical"]


# --- governance imports no card -------------------------------------------------------------


def test_governance_imports_nothing_from_cards():
    offenders = []
    for path in sorted((ROOT / "governance").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name == "cards" or name.startswith("cards.")
            ]
    assert offenders == []
