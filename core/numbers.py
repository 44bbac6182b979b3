"""Numbers as people read them."""

from __future__ import annotations

import math


def significant(value: float, digits: int = 4) -> str:
    """`value` to `digits` significant digits, without float noise or trailing zeros:
    0.7651, 12346, 0.78; beyond 1e-4..1e15 in scientific notation (7.653e-07)."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    exponent = math.floor(math.log10(abs(value)))
    if exponent < -4 or exponent >= 15:
        mantissa, _, power = f"{value:.{digits - 1}e}".partition("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{power}"
    decimals = max(digits - 1 - exponent, 0)
    text = f"{round(value, decimals):.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
