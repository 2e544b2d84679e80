"""Natural order for labels that carry numbers: "B=2" before "B=16" before "B=1024" (text order puts
1024 before 128 before 16), "lr=0.003" before "lr=0.03"."""

from __future__ import annotations

import re

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def natural_key(value) -> tuple:
    """A sort key comparing the numbers inside a label as numbers and the rest as text."""
    text = str(value)
    key, position = [], 0
    for match in NUMBER.finditer(text):
        key.append((0, text[position : match.start()], 0.0))
        key.append((1, "", float(match.group())))
        position = match.end()
    key.append((0, text[position:], 0.0))
    return tuple(key)


def natural_sorted(values) -> list:
    return sorted(values, key=natural_key)
