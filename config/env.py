"""Typed readers for environment variables.

Each reader returns the embedded default when the variable is unset or empty and raises
``ImproperlyConfigured`` naming the variable when a value is malformed, so a typo stops
start-up instead of silently changing behaviour.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of {sorted(_TRUE | _FALSE)}, got {raw!r}.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = env_str(name)
    if not raw:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
}


def env_size(name: str, default: int) -> int:
    """A byte size such as ``2GB``, ``500MB`` or ``1048576`` (binary units)."""
    raw = env_str(name).lower().replace(" ", "").replace("i", "")
    if not raw:
        return default
    digits = raw.rstrip("kmgtb")
    unit = raw[len(digits) :]
    if not digits.isdigit() or unit not in _SIZE_UNITS:
        raise ImproperlyConfigured(f"{name} must be a size like 2GB or 500MB, got {raw!r}.")
    value = int(digits) * _SIZE_UNITS[unit]
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be positive.")
    return value
