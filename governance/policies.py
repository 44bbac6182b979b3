"""Which review a model's promotions need: its own policy if it has one, else its tier's."""

from __future__ import annotations

import copy
import operator
import re
from collections.abc import Iterable, Mapping
from functools import reduce
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast

from core import audit, permissions
from core.actors import Actor
from core.compiled import CompiledQuery
from core.errors import ValidationFailed
from governance import readiness
from governance.models import Policy
from registry import validation
from registry.models import ModelVersion, RegisteredModel
from registry.services.common import apply_changes, require_admin

EDITABLE = (
    "production_approvals",
    "staging_approvals",
    "admin_approval_required",
    "required_checks",
    "archive_previous",
    "auto_apply",
    "rollback_fast_track",
    "protected_aliases",
    "production_aliases",
    "previous_alias",
    "card_required_sections",
)
MAX_APPROVALS = 10

# The serving aliases the shipped high and critical policies protect (migration 0008 too).
PROTECTED_ALIASES = ("champion", "prod", "production")
_BASIC_CHECKS = ["artifact", "signature", "signature_compatible", "metrics"]
# What each tier requires out of the box (migration 0005 seeds the same rows, editable in the
# admin). Used as well when a tier's row has been deleted: never less strict than shipped.
TIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "low": {"production_approvals": 1, "required_checks": ["artifact"]},
    "medium": {"production_approvals": 1, "required_checks": _BASIC_CHECKS},
    "high": {
        "production_approvals": 2,
        "required_checks": [*_BASIC_CHECKS, "packaging", "card_approved"],
        "protected_aliases": list(PROTECTED_ALIASES),
    },
    "critical": {
        "production_approvals": 2,
        "admin_approval_required": True,
        "required_checks": [*_BASIC_CHECKS, "packaging", "card_approved"],
        "rollback_fast_track": False,
        "protected_aliases": list(PROTECTED_ALIASES),
    },
}
# The model card sections a policy may require, as the cards app registered them (in order).
# Empty until it does, and then every section name is refused: governance knows no card.
_card_section_keys: tuple[str, ...] = ()


def card_sections_register(
    *, keys: Iterable[str], required_by_tier: Mapping[str, Iterable[str]]
) -> None:
    """The cards app tells which card sections exist and which each risk tier requires out of
    the box (from its AppConfig.ready(), before any policy is read or seeded). Replaces what
    was registered before; a tier it leaves out requires no section by default."""
    global _card_section_keys
    known = tuple(keys)
    unknown_tiers = set(required_by_tier) - set(TIER_DEFAULTS)
    if unknown_tiers:
        raise ImproperlyConfigured(f"Unknown risk tiers: {', '.join(sorted(unknown_tiers))}.")
    for tier, sections in required_by_tier.items():
        unknown = [s for s in sections if s not in known]
        if unknown:
            raise ImproperlyConfigured(
                f"The {tier} tier requires unknown card sections: {', '.join(unknown)}."
            )
    _card_section_keys = known
    for tier, defaults in TIER_DEFAULTS.items():
        defaults["card_required_sections"] = list(required_by_tier.get(tier, ()))


def card_section_keys() -> tuple[str, ...]:
    """The card sections a policy may require (none if no cards app registered them)."""
    return _card_section_keys


# Where a model's policy in force comes from, in order: the first Policy row whose field (left)
# matches the model's (right); with none, its tier's shipped TIER_DEFAULTS. The one definition
# `policy_for` reads for one model and `models_whose_policy_requires` turns into a filter.
POLICY_ORDER = (("registered_model", "pk"), ("risk_tier", "risk_tier"))
_CHECK_NAME = re.compile(r"[a-z0-9_]+")


# The rows that may hold one model's policy (its own, its tier's), compiled once.
_POLICY_OF_ONE: CompiledQuery[Policy] = CompiledQuery(
    lambda shape, **values: Policy.objects.filter(
        reduce(operator.or_, (Q(**{field: values[key]}) for field, key in POLICY_ORDER))
    ).order_by()
)


def policy_for(registered_model: RegisteredModel) -> Policy:
    """The policy in force: one indexed query (the model's own row or its tier's), remembered
    on the model instance."""
    return policies_for([registered_model])[registered_model.pk]


def policies_for(registered_models: Iterable[RegisteredModel]) -> dict[int, Policy]:
    """policy_for for many models in one query (none when every model has its policy
    remembered already), each remembered on its model instance."""
    registered_models = list(registered_models)
    wanted = [m for m in registered_models if "_modelgate_policy" not in m.__dict__]
    if wanted:
        if len(wanted) == 1:  # the common case, compiled: one model's write or page
            rows = _POLICY_OF_ONE.rows(**{key: getattr(wanted[0], key) for _, key in POLICY_ORDER})
        else:
            match = Q()
            for field, key in POLICY_ORDER:
                match |= Q(**{f"{field}__in": {getattr(m, key) for m in wanted}})
            rows = list(Policy.objects.filter(match))
        found = {
            (field, getattr(row, f"{field}_id" if field == "registered_model" else field)): row
            for row in rows
            for field, _ in POLICY_ORDER
        }
        for registered_model in wanted:
            policy = next(
                (
                    found[(field, getattr(registered_model, key))]
                    for field, key in POLICY_ORDER
                    if (field, getattr(registered_model, key)) in found
                ),
                None,
            ) or Policy(
                risk_tier=registered_model.risk_tier, **TIER_DEFAULTS[registered_model.risk_tier]
            )
            registered_model.__dict__["_modelgate_policy"] = policy
    return {m.pk: m.__dict__["_modelgate_policy"] for m in registered_models}


def models_whose_policy_requires(check: str) -> Q:
    """A filter on registered models: those whose policy in force (policy_for, from the same
    POLICY_ORDER) lists `check` among its required checks. One subquery per source, however
    many models."""
    if not _CHECK_NAME.fullmatch(check):
        # Check names are such words, so the quoted name below matches only that element of
        # the JSON list (SQLite has no JSON containment lookup).
        raise ValueError(f"Not a readiness check name: {check!r}")

    def requiring(rows: QuerySet[Policy]) -> Q:
        text = rows.alias(checks=Cast("required_checks", TextField()))
        return Q(Exists(text.filter(checks__contains=f'"{check}"')))

    shipped = [t for t, d in TIER_DEFAULTS.items() if check in d.get("required_checks", ())]
    rule = Q(risk_tier__in=shipped)
    for field, key in reversed(POLICY_ORDER):
        rows = Policy.objects.filter(**{field: OuterRef(key)})
        rule = requiring(rows) | (~Q(Exists(rows)) & rule)
    return rule


def is_protected(policy: Policy, alias_name: str) -> bool:
    """Whether the policy protects the alias: exact names, compared without case (alias names
    are unique per model without case too, so "Prod" cannot sidestep "prod")."""
    wanted = alias_name.casefold()
    return any(wanted == name.casefold() for name in policy.protected_aliases or ())


def forget(registered_model: RegisteredModel) -> None:
    registered_model.__dict__.pop("_modelgate_policy", None)


def approved_for_production(
    version: ModelVersion, alias_names: Iterable[str], policy: Policy
) -> bool:
    """A version may serve in a production environment if it is in stage production or holds
    one of the model's protected aliases (both are reached only through approval)."""
    return version.stage == ModelVersion.Stage.PRODUCTION or any(
        is_protected(policy, name) for name in alias_names
    )


def describe(policy: Policy) -> str:
    if policy.registered_model is not None:
        return f"policy of model '{policy.registered_model.name}'"
    return f"{policy.risk_tier}-risk policy"


def _distinct(names: list[str]) -> list[str]:
    """Alias names once each, the first spelling kept (alias names compare without case)."""
    kept: dict[str, str] = {}
    for name in names:
        kept.setdefault(name.casefold(), name)
    return list(kept.values())


def validate(values: dict[str, Any]) -> dict[str, Any]:
    """Check policy fields; raise ValidationFailed naming the field."""
    for key in ("production_approvals", "staging_approvals"):
        if key in values and (
            not isinstance(values[key], int)
            or isinstance(values[key], bool)
            or not 0 <= values[key] <= MAX_APPROVALS
        ):
            raise ValidationFailed(f"Must be a whole number from 0 to {MAX_APPROVALS}.", field=key)
    if "required_checks" in values:
        checks = values["required_checks"]
        unknown = (
            [c for c in checks if c not in readiness.CHECKS]
            if isinstance(checks, list)
            else ["(not a list)"]
        )
        if unknown:
            raise ValidationFailed(
                f"Unknown readiness checks: {', '.join(map(str, unknown))}. "
                f"Known: {', '.join(readiness.CHECKS)}.",
                field="required_checks",
            )
    if "card_required_sections" in values:
        sections = values["card_required_sections"]
        unknown = (
            [s for s in sections if s not in _card_section_keys]
            if isinstance(sections, list)
            else ["(not a list)"]
        )
        if unknown:
            raise ValidationFailed(
                f"Unknown card sections: {', '.join(map(str, unknown))}. "
                f"Known: {', '.join(_card_section_keys) or 'none (model cards are not enabled)'}.",
                field="card_required_sections",
            )
    if "protected_aliases" in values:
        aliases = values["protected_aliases"]
        if not isinstance(aliases, list):
            raise ValidationFailed("Must be a list of alias names.", field="protected_aliases")
        values["protected_aliases"] = _distinct([validation.alias_name(a) for a in aliases])
    if "production_aliases" in values:
        aliases = values["production_aliases"]
        if not isinstance(aliases, list):
            raise ValidationFailed("Must be a list of alias names.", field="production_aliases")
        values["production_aliases"] = _distinct(
            [validation.alias_name(a, field="production_aliases") for a in aliases]
        )
    if values.get("previous_alias"):
        values["previous_alias"] = validation.alias_name(
            values["previous_alias"], field="previous_alias"
        )
        following = {a.casefold() for a in values.get("production_aliases") or []}
        if values["previous_alias"].casefold() in following:
            raise ValidationFailed(
                "An alias cannot both follow production and mark the version it replaced.",
                field="previous_alias",
            )
    return values


@transaction.atomic
def policy_save(*, actor: Actor, policy: Policy, **changes: Any) -> Policy:
    """Create or edit a policy (tier default or model override). Administrators only."""
    require_admin(actor, "change review policies")
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    validate(changes)
    created = policy.pk is None
    diff = apply_changes(policy, changes)
    if created or diff:
        policy.save()
        audit.record(
            actor=actor,
            action="policy.created" if created else "policy.changed",
            target=policy,
            registered_model=policy.registered_model,
            details={"policy": str(policy), "changes": diff},
        )
    if policy.registered_model is not None:
        forget(policy.registered_model)
    return policy


@transaction.atomic
def tier_policies_ensure(*, actor: Actor) -> list[Policy]:
    """Give every risk tier without a policy row one with the shipped defaults (audited); rows
    that exist stay as administrators edited them. Returns the rows it created."""
    created = []
    for tier, defaults in TIER_DEFAULTS.items():
        values = copy.deepcopy(defaults)
        policy, made = Policy.objects.get_or_create(risk_tier=tier, defaults=values)
        if made:
            audit.record(
                actor=actor,
                action="policy.created",
                target=policy,
                details={"policy": str(policy), "values": values},
            )
            created.append(policy)
    return created


@transaction.atomic
def policy_delete(*, actor: Actor, policy: Policy) -> bool:
    """Delete a policy: a model falls back to its tier's policy, a tier to TIER_DEFAULTS. The
    event keeps the deleted values. Administrators only; False if it was already gone."""
    require_admin(actor, "change review policies")
    # Ordered by pk: the default ordering joins the model, and PostgreSQL locks no row on the
    # nullable side of an outer join.
    stored = Policy.objects.select_for_update().filter(pk=policy.pk).order_by("pk").first()
    if stored is None:
        return False
    audit.record(
        actor=actor,
        action="policy.deleted",
        target=stored,
        registered_model=stored.registered_model,
        details={"policy": str(stored), "values": {f: getattr(stored, f) for f in EDITABLE}},
    )
    stored.delete()
    if policy.registered_model is not None:
        forget(policy.registered_model)  # the caller's instance is the one that remembers
    return True


@transaction.atomic
def policy_override_set(
    *, actor: Actor, registered_model: RegisteredModel, **fields: Any
) -> Policy:
    """Give one model its own policy, starting from its tier's values."""
    existing = Policy.objects.filter(registered_model=registered_model).first()
    if existing is None:
        base = policy_for(registered_model)
        existing = Policy(
            registered_model=registered_model, **{f: getattr(base, f) for f in EDITABLE}
        )
        fields = {**{f: getattr(base, f) for f in EDITABLE}, **fields}
    return policy_save(actor=actor, policy=existing, **fields)


def latest_decisions(reviews: Iterable[Any]) -> dict[int, Any]:
    """Each reviewer's latest review, by reviewer id (reviews in time order): the decision that
    counts, for promotion requests and model cards alike."""
    latest: dict[int, Any] = {}
    for review in reviews:
        if review.reviewer_id is not None:
            latest[review.reviewer_id] = review
    return latest


def admin_among(approvers: Iterable[Any], registered_model: RegisteredModel) -> bool:
    """Whether one of the approvers is an administrator of the model (an administrator, or
    made manager of it by one), as policies with admin_approval_required ask."""
    return any(permissions.is_model_administrator(u, registered_model) for u in approvers)
