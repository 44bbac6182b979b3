"""What other apps show on the registry's pages.

The registry's views know the catalogue. What governance (policy, stage history, readiness,
promotion requests, the compliance report) and cards (the card's state) show on the same pages
they contribute from their AppConfig.ready(): a function per page that receives the page's
objects and returns template context. The registry imports neither app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

Contributor = Callable[..., dict[str, Any]]

# page: what its contributors receive
PAGES = {
    "home": "user",
    "model": "user, registered_model, at (a datetime or None)",
    "version": "user, version",
    "compliance": "registered_model",
}
_CONTRIBUTORS: dict[str, list[Contributor]] = {page: [] for page in PAGES}


def contribute(page: str, contributor: Contributor) -> None:
    if page not in PAGES:
        raise ImproperlyConfigured(f"No registry page '{page}' takes contributions.")
    if contributor not in _CONTRIBUTORS[page]:
        _CONTRIBUTORS[page].append(contributor)


def context(page: str, **objects: Any) -> dict[str, Any]:
    """Every contribution to `page`, merged; two contributors may not set the same name."""
    merged: dict[str, Any] = {}
    for contributor in _CONTRIBUTORS[page]:
        part = contributor(**objects)
        clash = merged.keys() & part.keys()
        if clash:
            raise ImproperlyConfigured(f"Two contributions to '{page}' set {sorted(clash)}.")
        merged.update(part)
    return merged
