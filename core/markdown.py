"""Markdown for people's text (descriptions, cards), reduced to a small allow-list of tags."""

from __future__ import annotations

import markdown as md
import nh3

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
