"""Curves of several runs on one common cost grid, then a mean with its bootstrap band.

Runs record evaluations at their own x values (wall time, evaluations, ...). Each run's curve is
interpolated linearly onto one grid spanning the x range every run covers (from the largest first x to
the smallest last x: no run is extrapolated), and only then aggregated, point by point over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from optlab.analysis.stats import bootstrap_band

GRID_POINTS = 60


def common_grid(
    curves: Sequence[tuple[ArrayLike, ArrayLike]], points: int = GRID_POINTS, log: bool = False
) -> np.ndarray:
    """The grid every curve covers (empty when they share no interval)."""
    usable = [(np.asarray(x, float), np.asarray(y, float)) for x, y in curves]
    usable = [(x[np.isfinite(x) & np.isfinite(y)], y) for x, y in usable]
    xs = [x for x, _ in usable if len(x) >= 2]
    if not xs:
        return np.empty(0)
    lo, hi = max(x.min() for x in xs), min(x.max() for x in xs)
    if log:
        lo = max(lo, min((x[x > 0].min() for x in xs if (x > 0).any()), default=np.nan))
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.empty(0)
    return np.geomspace(lo, hi, points) if log else np.linspace(lo, hi, points)


def on_grid(x, y, grid) -> np.ndarray:
    """One run's y interpolated at `grid` (x sorted, repeated x keep their last y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    last = np.r_[x[1:] != x[:-1], True]
    return np.interp(grid, x[last], y[last])


def band(curves: list[tuple[np.ndarray, np.ndarray]], points: int = GRID_POINTS, log: bool = False) -> pd.DataFrame:
    """Columns x, mean, low, high, n: the mean curve over runs and its pointwise 95 % bootstrap band."""
    grid = common_grid(curves, points, log)
    if len(grid) == 0:
        return pd.DataFrame(columns=["x", "mean", "low", "high", "n"])
    matrix = np.stack([on_grid(x, y, grid) for x, y in curves if np.isfinite(np.asarray(x, float)).sum() >= 2])
    mean, low, high = bootstrap_band(matrix)
    return pd.DataFrame({"x": grid, "mean": mean, "low": low, "high": high, "n": matrix.shape[0]})
