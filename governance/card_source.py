"""What governance reads of a version's model card: its revision and status (the readiness
check `card_approved` and the content digest) and who wrote its revisions (they supplied the
version's content, so they may not approve its promotion).

The cards app registers the source from CardsConfig.ready(), so governance imports no card.
With none registered no card is ever found: the readiness check fails and a policy that
requires an approved card cannot be met (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.models import F, OuterRef, QuerySet

from registry.models import ModelVersion, RegisteredModel


@dataclass(frozen=True)
class CardState:
    revision: int | None
    status: str


@dataclass(frozen=True)
class CardSource:
    # the version's card, or None if it has none
    state: Callable[[ModelVersion], CardState | None]
    # the same for many versions in one query: {version pk: state} for those with a card
    states: Callable[[list[ModelVersion]], dict[int, CardState]]
    # rows with a `supplier` column: the authors of the revisions of the card of `version`
    # (a pk, or a reference to the enclosing query's version), for models among `models`
    authors: Callable[[int | OuterRef, QuerySet[RegisteredModel]], QuerySet[Any]]


_SOURCE: list[CardSource] = []


def register(source: CardSource) -> None:
    if _SOURCE and _SOURCE[0] != source:
        raise ImproperlyConfigured("A card source is already registered.")
    _SOURCE[:] = [source]


def state(version: ModelVersion) -> CardState | None:
    return _SOURCE[0].state(version) if _SOURCE else None


def states(versions: list[ModelVersion]) -> dict[int, CardState]:
    return _SOURCE[0].states(versions) if _SOURCE else {}


def authors(version: int | OuterRef, models: QuerySet[RegisteredModel]) -> QuerySet[Any]:
    if not _SOURCE:
        return ModelVersion.objects.none().values(supplier=F("created_by"))
    return _SOURCE[0].authors(version, models)
