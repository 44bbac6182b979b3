"""What the registry asks before and after it changes governed state.

The registry owns the catalogue and its mechanics (moving a stage, pointing an alias, storing
a file). Whether such a change needs an approval, whether a version is sealed, what its
content digest is and how its stage history is kept are the governance app's rules: it
installs itself as the governor from its AppConfig.ready(), and the registry calls these
methods instead of importing it. With no governor installed every governed change is refused
(ImproperlyConfigured), never let through.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured

from core.actors import Actor
from registry.models import ModelVersion, RegisteredModel


class Governor(Protocol):
    # Version fields inside the content digest: they change only while the version is unsealed.
    sealed_fields: tuple[str, ...]

    def require_unsealed(self, version: ModelVersion, what: str) -> None:
        """Refuse a change of `what` to a sealed version."""

    def model_sealed(self, registered_model: RegisteredModel) -> bool:
        """Whether any live version of the model is sealed (renaming it is then refused to
        everyone but administrators)."""

    def content_digest(self, version: ModelVersion) -> str:
        """The digest approvals are bound to (files derived from it record it)."""

    def require_direct_stage(self, actor: Actor, version: ModelVersion, stage: str) -> None:
        """Refuse moving `version` straight to `stage` when the policy wants approvals, or when
        a readiness check it requires fails."""

    def require_direct_alias(self, actor: Actor, version: ModelVersion, name: str) -> None:
        """Refuse pointing the alias `name` at `version` directly when the policy protects it
        and wants approvals, or when a readiness check it requires fails."""

    def approved_for_production(self, version: ModelVersion, alias_names: Iterable[str]) -> bool:
        """Whether the version may serve in a production environment."""

    def protected_aliases(self, versions: Iterable[ModelVersion]) -> dict[int, list[str]]:
        """For each version, those of its alias names (its `alias_names` attribute) that its
        model's policy protects; one query however many versions (`registered_model`
        loaded)."""

    def approved_versions(self, versions: Iterable[ModelVersion]) -> set[int]:
        """approved_for_production for many versions at once (ids of those that may serve in
        production), in a query or two however many: each version comes with its
        `registered_model` loaded and its alias names in an `alias_names` attribute."""

    def stages_moved(
        self,
        *,
        versions: Iterable[ModelVersion],
        stage: str,
        at: datetime,
        user: User | None,
        promotion_request: Any = None,
    ) -> None:
        """Record that `versions` entered `stage` (stage history), in the mover's transaction."""

    def alias_moved(
        self,
        *,
        registered_model: RegisteredModel,
        name: str,
        version: ModelVersion | None,
        at: datetime,
        user: User | None,
        promotion_request: Any = None,
    ) -> None:
        """Record that alias `name` now points at `version` (None: removed)."""


_GOVERNOR: list[Governor] = []


def install(governor: Governor) -> None:
    """Install the governor (once; the same one again is a no-op)."""
    if _GOVERNOR and _GOVERNOR[0] is not governor:
        raise ImproperlyConfigured("A governor is already installed.")
    _GOVERNOR[:] = [governor]


def governor() -> Governor:
    if not _GOVERNOR:
        raise ImproperlyConfigured(
            "No governor is installed (the governance app installs one): governed changes "
            "are refused."
        )
    return _GOVERNOR[0]
