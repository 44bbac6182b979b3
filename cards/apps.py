from typing import Any

from django.apps import AppConfig


class CardsConfig(AppConfig):
    name = "cards"
    verbose_name = "Model cards"

    def ready(self) -> None:
        from registry.signals import version_created

        version_created.connect(_start_card, dispatch_uid="cards.start_card")


def _start_card(sender: Any, version: Any, actor: Any, **kwargs: Any) -> None:
    from cards.services import card_start

    card_start(actor=actor, version=version)
