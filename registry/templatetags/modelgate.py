"""Template helpers. Markdown goes through one sanitising renderer."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString, mark_safe

from core import permissions
from core.markdown import render_markdown
from core.numbers import significant

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


@register.filter
def sig(value: object, digits: int = 4) -> object:
    """A number to significant digits for pages (`{{ x|sig }}`, `{{ x|sig:3 }}`); anything
    that is not a number (None, text) passes through unchanged."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return significant(float(value), int(digits))


@register.filter
def signed(value: object, digits: int = 4) -> object:
    """As `sig`, with a plus sign on positive numbers (a change)."""
    shown = sig(value, digits)
    return f"+{shown}" if isinstance(value, int | float) and value > 0 else shown


@register.filter
def permission_label(codename: str) -> str:
    """view_registeredmodel as "view": how pages name a permission."""
    return permissions.label(codename)
