"""Reading cards, through the same permission filter as everything else."""

from __future__ import annotations

from typing import Any

from django.db.models import F, OuterRef, QuerySet

from cards.models import CardRevision, ModelCard
from core import permissions
from core.errors import NotFound
from core.permissions import AnyUser
from governance.card_source import CardState
from registry.models import ModelVersion, RegisteredModel


def card_get(*, user: AnyUser, version: ModelVersion) -> ModelCard:
    card = (
        permissions.visible(user, ModelCard.objects.all())
        .select_related(
            "version",
            "version__registered_model",
            "registered_model",
            "last_edited_by",
            "submitted_by",
        )
        .filter(version=version)
        .first()
    )
    if card is None:
        raise NotFound(f"Version {version.version} has no model card.", code="card_not_found")
    return card


def revisions(card: ModelCard) -> list[CardRevision]:
    return list(card.revisions.select_related("author").order_by("-number")[:500])


# What governance reads of cards (governance.card_source, registered in CardsConfig.ready()).


def card_state(version: ModelVersion) -> CardState | None:
    """The version's card revision and status, or None if it has no card. One query."""
    row = ModelCard.objects.filter(version=version).values("revision", "status").first()
    return None if row is None else CardState(revision=row["revision"], status=row["status"])


def card_states(versions: list[ModelVersion]) -> dict[int, CardState]:
    """card_state for many versions: {version pk: state} for those with a card. One query."""
    return {
        row["version_id"]: CardState(revision=row["revision"], status=row["status"])
        for row in ModelCard.objects.filter(version__in=versions).values(
            "version_id", "revision", "status"
        )
    }


def card_authors(version: int | OuterRef, models: QuerySet[RegisteredModel]) -> QuerySet[Any]:
    """The authors (`supplier`) of the revisions of the card of `version`, for models among
    `models`."""
    return CardRevision.objects.filter(
        card__version=version,  # type: ignore[misc]  # stubs refuse an int | OuterRef union
        card__version__registered_model__in=models,
    ).values(supplier=F("author"))
