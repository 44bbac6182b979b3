"""The governor's batch answer to "may this version serve in production?" agrees with the
one-version answer, in a constant number of queries."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from governance import policies
from registry import services
from registry.governed import governor
from registry.models import ModelVersion
from tests.factories import actor_for, make_model, make_version, no_approval, place

pytestmark = pytest.mark.django_db


def _versions(*pks: int) -> list[ModelVersion]:
    rows = list(ModelVersion.objects.filter(pk__in=pks).select_related("registered_model"))
    for row in rows:
        row.alias_names = [a.name for a in row.aliases.all()]  # type: ignore[attr-defined]
    return rows


def test_batch_answers_like_one_version_at_a_time(
    admin_user: User, django_assert_max_num_queries: object
) -> None:
    actor = actor_for(admin_user)
    fraud = make_model(admin_user, "fraud", risk_tier="high")
    churn = make_model(admin_user, "churn", risk_tier="low")
    no_approval(churn, protected_aliases=["Champion"])
    in_production = place(make_version(admin_user, fraud), "production")
    staged = place(make_version(admin_user, fraud), "staging")
    champion = make_version(admin_user, churn)
    services.alias_set(actor=actor, registered_model=churn, name="CHAMPION", version=champion)
    other_alias = make_version(admin_user, churn)
    services.alias_set(actor=actor, registered_model=churn, name="candidate", version=other_alias)
    plain = make_version(admin_user, churn)

    versions = _versions(in_production.pk, staged.pk, champion.pk, other_alias.pk, plain.pk)
    with django_assert_max_num_queries(1):  # type: ignore[operator]
        approved = governor().approved_versions(versions)

    assert approved == {in_production.pk, champion.pk}
    for version in _versions(in_production.pk, staged.pk, champion.pk, other_alias.pk, plain.pk):
        one = governor().approved_for_production(version, version.alias_names)  # type: ignore[attr-defined]
        assert one == (version.pk in approved)


def test_batch_policies_follow_the_policy_order(admin_user: User) -> None:
    own = make_model(admin_user, "own-policy", risk_tier="low")
    no_approval(own, protected_aliases=["gold"])
    tiered = make_model(admin_user, "tiered", risk_tier="low")
    fresh = [type(own).objects.get(pk=own.pk), type(tiered).objects.get(pk=tiered.pk)]

    found = policies.policies_for(fresh)

    assert found[own.pk].protected_aliases == ["gold"]
    assert found[tiered.pk].registered_model_id is None
    assert (
        found[tiered.pk].protected_aliases
        == policies.policy_for(type(tiered).objects.get(pk=tiered.pk)).protected_aliases
    )


def test_protected_aliases_names_only_the_protected_ones(admin_user: User) -> None:
    churn = make_model(admin_user, "churn", risk_tier="low")
    no_approval(churn, protected_aliases=["champion"])
    version = make_version(admin_user, churn)
    for name in ("Champion", "candidate"):
        services.alias_set(
            actor=actor_for(admin_user), registered_model=churn, name=name, version=version
        )

    (row,) = _versions(version.pk)

    assert governor().protected_aliases([row]) == {version.pk: ["Champion"]}
