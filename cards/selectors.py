"""Reading cards, through the same permission filter as everything else."""

from __future__ import annotations

from cards.models import CardRevision, ModelCard
from core import permissions
from core.errors import NotFound
from core.permissions import AnyUser
from registry.models import ModelVersion


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
