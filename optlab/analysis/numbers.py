"""Numbers as a reader writes them: a few significant digits without exponent notation ("1000", not
"1e+03"; "0.00025", not "2.5e-04"), and powers of ten only for very large or very small magnitudes
("1.7×10⁸")."""

from __future__ import annotations

import math

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
PLAIN_FROM, PLAIN_TO = -4, 7  # decimal exponents written out in full: 0.0001 up to 9,999,999


def significant(value, digits: int = 3, sign: bool = False) -> str:
    """`value` rounded to `digits` significant digits; `sign`: always show + or −."""
    value = float(value)
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    prefix = "+" if sign and value > 0 else ""
    if value == 0:
        return prefix + "0"
    exponent = math.floor(math.log10(abs(value)))
    rounded = round(value, digits - 1 - exponent)
    if rounded != 0 and math.floor(math.log10(abs(rounded))) != exponent:  # 9.996 -> 10.0
        exponent += 1
    if PLAIN_FROM <= exponent < PLAIN_TO:
        decimals = max(digits - 1 - exponent, 0)
        text = f"{rounded:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return prefix + text
    mantissa = significant(rounded / 10**exponent, digits)
    return f"{prefix}{mantissa}×10{str(exponent).translate(SUPERSCRIPT)}"
