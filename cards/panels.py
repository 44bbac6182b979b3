"""What cards show on the registry's pages (registry/panels.py): the card's state on a
version's page."""

from __future__ import annotations

from typing import Any

from cards.models import ModelCard
from core.permissions import AnyUser
from registry.models import ModelVersion


def version(*, user: AnyUser, version: ModelVersion) -> dict[str, Any]:
    return {"card": ModelCard.objects.filter(version=version).only("status").first()}
