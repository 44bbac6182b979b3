"""URL converters every app's routes use; importing this module registers them."""

from __future__ import annotations

from django.urls import register_converter


class ModelNameConverter:
    """Registered model names: anything but '/', as the name rules allow."""

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(ModelNameConverter, "mname")
