"""When an axis is drawn log: one rule for the report, the UI's views and the seed-group curves.

Kept apart from curves.py (pandas, scipy) so the tracking code that writes the UI's views, imported by
every `optlab run`, does not pay for them."""

from __future__ import annotations

import numpy as np

LOG_AXIS_DECADES = 2.0  # an x axis whose positive values span more than this many decades is drawn log


def spans_decades(values, decades: float = LOG_AXIS_DECADES) -> bool:
    """The positive values span more than `decades` decades (the report and the UI draw such axes log)."""
    v = np.asarray(values, dtype=float)
    positive = v[np.isfinite(v) & (v > 0)]
    return len(positive) > 1 and positive.max() / positive.min() > 10**decades
