"""Template helpers. Markdown goes through one sanitising renderer."""

from __future__ import annotations

import markdown as md
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "hr",
}


def render_markdown(text: str) -> str:
    """Markdown to HTML with every tag and attribute outside a small allow-list removed."""
    html = md.markdown(text or "", extensions=["tables", "fenced_code"])
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


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
