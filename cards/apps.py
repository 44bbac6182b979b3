from typing import Any

from django.apps import AppConfig


class CardsConfig(AppConfig):
    name = "cards"
    verbose_name = "Model cards"

    def ready(self) -> None:
        from cards import content as card_content
        from cards import maturity as card_maturity
        from cards import panels as card_panels
        from cards import selectors
        from cards.models import CardReview, ModelCard
        from core import permissions
        from governance import card_source, policies
        from registry import panels as registry_panels
        from registry.signals import bundle_files, version_created

        # A card and its reviews inherit the grants of their version's model.
        permissions.register_scoped(ModelCard, "registered_model", "version")
        permissions.register_scoped(CardReview, "card__registered_model", "card__version")
        # Governance knows no card: it learns here which sections a policy may require and
        # which each risk tier requires out of the box (before any policy is read or seeded).
        policies.card_sections_register(
            keys=card_content.SECTION_KEYS, required_by_tier=card_content.REQUIRED_BY_TIER
        )
        # ...and reads a version's card (digest, readiness, who supplied content) through here.
        card_source.register(
            card_source.CardSource(
                state=selectors.card_state,
                states=selectors.card_states,
                authors=selectors.card_authors,
            )
        )
        registry_panels.contribute("version", card_panels.version)
        # The scorecard's documentation domain reads cards' tables (governance.maturity).
        card_maturity.register_metrics()

        version_created.connect(_start_card, dispatch_uid="cards.start_card")
        bundle_files.connect(_card_files, dispatch_uid="cards.bundle_files")


def _start_card(sender: Any, version: Any, actor: Any, **kwargs: Any) -> None:
    from cards.services import card_start

    card_start(actor=actor, version=version)


def _card_files(sender: Any, version: Any, **kwargs: Any) -> list[tuple[str, bytes]]:
    """The version's card in a bundle, as Markdown and JSON (nothing if it has none)."""
    import json

    from cards import formats
    from cards.models import ModelCard

    card = (
        ModelCard.objects.select_related("version", "registered_model")
        .filter(version=version)
        .first()
    )
    if card is None:
        return []
    return [
        ("model_card.md", formats.to_markdown(card).encode()),
        ("model_card.json", json.dumps(formats.to_json(card), indent=2, sort_keys=True).encode()),
    ]
