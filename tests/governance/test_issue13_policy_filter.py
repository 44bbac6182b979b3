"""Issue 13: "the policy in force requires this check" has one definition. policies.policy_for
reads it for one model; policies.models_whose_policy_requires turns the same lookup order (own
policy, tier row, shipped tier defaults) into a filter, which the content digest's "card
authors supply content" rule uses. The two must agree in every case."""

from __future__ import annotations

import pytest

from governance import policies, readiness
from governance.content import CARD_CHECK
from governance.models import Policy
from registry.models import RegisteredModel
from tests.factories import actor_for, make_model, superuser

pytestmark = pytest.mark.django_db

TIERS = ("low", "medium", "high", "critical")
# A model of each tier with no policy of its own, and with one that requires a mix of checks
# or nothing at all.
OWN = {
    "none": None,
    "card": [CARD_CHECK, "artifact"],
    "nothing": [],
    "packaging": ["packaging", "signature"],
}


@pytest.fixture
def every_case(data_scientist) -> list[RegisteredModel]:
    admin = actor_for(superuser())
    made = []
    for tier in TIERS:
        for own, checks in OWN.items():
            registered_model = make_model(data_scientist, f"{tier}-{own}", risk_tier=tier)
            if checks is not None:
                policies.policy_override_set(
                    actor=admin, registered_model=registered_model, required_checks=checks
                )
            made.append(registered_model)
    # Tier rows: one edited to require the card, one to require nothing, one deleted whose
    # shipped defaults do not require the card and one deleted whose defaults do.
    policies.policy_save(
        actor=admin, policy=Policy.objects.get(risk_tier="low"), required_checks=[CARD_CHECK]
    )
    policies.policy_save(
        actor=admin, policy=Policy.objects.get(risk_tier="high"), required_checks=[]
    )
    for tier in ("medium", "critical"):
        assert policies.policy_delete(actor=admin, policy=Policy.objects.get(risk_tier=tier))
    return made


def _by_python(check: str) -> set[str]:
    return {
        registered_model.name
        for registered_model in RegisteredModel.objects.all()  # fresh: no remembered policy
        if check in policies.policy_for(registered_model).required_checks
    }


def _by_sql(check: str) -> set[str]:
    return set(
        RegisteredModel.objects.filter(policies.models_whose_policy_requires(check)).values_list(
            "name", flat=True
        )
    )


def test_the_filter_and_policy_for_agree_for_every_check_in_every_case(every_case):
    assert set(readiness.CHECKS) >= {CARD_CHECK, "artifact", "packaging", "signature"}
    for check in readiness.CHECKS:
        assert _by_sql(check) == _by_python(check), check
    # Not vacuous: each source decides somewhere, both ways.
    assert _by_sql(CARD_CHECK) == {
        # own policy requires it, whatever the tier says
        *(f"{tier}-card" for tier in TIERS),
        # no own policy: the low tier's edited row requires it
        "low-none",
        # no own policy and no tier row: critical's shipped defaults require it
        "critical-none",
    }
    # high's row requires nothing although its shipped defaults would; medium's and
    # critical's defaults require the basic checks, low's row only the card.
    assert _by_sql("artifact") == {
        *(f"{tier}-card" for tier in TIERS),
        "medium-none",
        "critical-none",
    }


def test_the_shipped_defaults_are_what_a_tier_without_a_row_gets(data_scientist):
    Policy.objects.filter(risk_tier__isnull=False).delete()
    for tier in TIERS:
        make_model(data_scientist, tier, risk_tier=tier)
    for check in readiness.CHECKS:
        assert _by_sql(check) == _by_python(check), check
        shipped = {t for t, d in policies.TIER_DEFAULTS.items() if check in d["required_checks"]}
        assert _by_sql(check) == shipped, check


def test_only_check_names_make_a_filter():
    for name in ('card"approved', "card_approved%", "", "Card"):
        with pytest.raises(ValueError, match="readiness check"):
            policies.models_whose_policy_requires(name)
