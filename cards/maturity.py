"""The documentation domain of the maturity scorecard (governance.maturity), answered from
cards' tables: registered from CardsConfig.ready(), as governance imports no card. Each
metric reads the focus versions' cards in one query."""

from __future__ import annotations

from django.db.models import BooleanField, Case, QuerySet, Value, When
from django.db.models.fields.json import KT
from django.urls import reverse

from cards.models import ModelCard
from governance.maturity.catalogue import (
    COMPLETE,
    MISSING,
    PARTIAL,
    Bucket,
    Context,
    Metric,
    ModelRow,
    register,
)
from registry.models import RegisteredModel

NO_VERSION = "The model has no live version."
# Sections whose text the second metric looks for (cards.content.SECTIONS keys).
USE_AND_LIMITS = ("intended_use", "limitations")


def card_page(row: ModelRow) -> str:
    if row.focus_number is None:
        return reverse("registry:model-detail", args=[row.name])
    return reverse("cards:card", args=[row.name, row.focus_number])


def card_edit_page(row: ModelRow) -> str:
    if row.focus_number is None:
        return reverse("registry:model-detail", args=[row.name])
    return reverse("cards:card-edit", args=[row.name, row.focus_number])


def card_approved(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out = ctx.per_model(MISSING)
    waiting = (ModelCard.Status.IN_REVIEW, ModelCard.Status.CHANGES_REQUESTED)
    for model_id, status in ModelCard.objects.filter(version__in=ctx.focus_versions).values_list(
        "registered_model_id", "status"
    ):
        if status == ModelCard.Status.APPROVED:
            out[model_id] = COMPLETE
        elif status in waiting:
            out[model_id] = PARTIAL
    return out


def _written(key: str) -> Case:
    """Whether the card's section holds any text but white space (in the database: the
    sections themselves never leave it)."""
    return Case(
        When(**{f"_{key}__regex": r"\S"}, then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )


def use_and_limits(models: QuerySet[RegisteredModel], ctx: Context) -> dict[int, Bucket]:
    out = ctx.per_model(MISSING)
    rows = (
        ModelCard.objects.filter(version__in=ctx.focus_versions)
        .annotate(**{f"_{key}": KT(f"content__sections__{key}") for key in USE_AND_LIMITS})
        .annotate(**{f"{key}_written": _written(key) for key in USE_AND_LIMITS})
        .values_list("registered_model_id", *(f"{key}_written" for key in USE_AND_LIMITS))
    )
    for model_id, *written in rows:
        out[model_id] = COMPLETE if all(written) else PARTIAL if any(written) else MISSING
    return out


METRICS = [
    Metric(
        key="card_approved",
        domain="documentation",
        title="Model card approved",
        buckets={
            COMPLETE: "The focus version's model card is approved.",
            PARTIAL: "It is in review, or its reviewers asked for changes.",
            MISSING: "It is a draft, or the version has no card.",
            None: NO_VERSION,
        },
        compute=card_approved,
        fix_url=card_page,
        fix_label="Submit the model card for review",
    ),
    Metric(
        key="card_use_and_limitations",
        domain="documentation",
        title="Intended use and limitations written",
        buckets={
            COMPLETE: "The card's 'Intended use' and 'Limitations' sections are both written.",
            PARTIAL: "One of the two is written.",
            MISSING: "Neither is written (or the version has no card).",
            None: NO_VERSION,
        },
        compute=use_and_limits,
        fix_url=card_edit_page,
        fix_label="Write the card's intended use and limitations",
    ),
]


def register_metrics() -> None:
    for metric in METRICS:
        register(metric)
