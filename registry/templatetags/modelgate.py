"""Template helpers. Markdown goes through one sanitising renderer."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from core.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str) -> SafeString:
    # Safe only because nh3 has removed everything outside the allow-list.
    return mark_safe(render_markdown(text))  # noqa: S308


@register.filter
def get_item(mapping: dict, key: str) -> object:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def as_json(value: object) -> str:
    """Indented JSON for display (autoescaped like any other text)."""
    import json

    return json.dumps(value, indent=2, sort_keys=True, default=str)
