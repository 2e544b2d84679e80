"""Shared plotting: mean curves with a 95 % bootstrap band over seeds, on a common x grid per series.

The numbers come from optlab.analysis.curves (interpolation onto the grid every run of a series
covers, then scipy's bootstrap per grid point); this module only draws them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optlab.analysis import curves

GRID_POINTS = 60  # curves are resampled to this many x values: long histories stay cheap to draw
BAND_TEXT = "mean over seeds with a 95 % bootstrap confidence band (BCa, per point of a common x grid)"


def bands(hist: pd.DataFrame, x: str, y: str, hue: str, logx: bool = False,
          points: int = GRID_POINTS) -> dict[str, pd.DataFrame]:
    """Per hue value: the band frame (x, mean, low, high, n) over its runs."""
    out = {}
    for label, group in hist.dropna(subset=[x, y]).groupby(hue, sort=False):
        runs = [(g[x].to_numpy(float), g[y].to_numpy(float)) for _, g in group.groupby("run_id")]
        band = curves.band(runs, points=points, log=logx)
        if not band.empty:
            out[label] = band
    return out


def mean_band(hist: pd.DataFrame, x: str, y: str, hue: str, logx: bool = False) -> pd.DataFrame:
    """Per hue group and x on its common grid: the mean over runs and a mean ± 1 sd band
    (columns hue, x, mean, low, high, runs)."""
    data = resample(hist, x, y, hue, logx)
    if data.empty:
        return pd.DataFrame(columns=[hue, x, "mean", "low", "high", "runs"])
    stats = data.groupby([hue, x], sort=False)[y].agg(["mean", "std", "count"]).reset_index()
    sd = stats["std"].fillna(0.0)
    return stats.assign(low=stats["mean"] - sd, high=stats["mean"] + sd).rename(columns={"count": "runs"})[
        [hue, x, "mean", "low", "high", "runs"]]


def band_lines(ax, hist: pd.DataFrame, x: str, y: str, hue: str, palette: dict, logx: bool = False,
               styles: dict | None = None, legend: bool = False) -> dict[str, pd.DataFrame]:
    """Draw each hue's mean line and its band; returns the bands (for captions and tests)."""
    drawn = bands(hist, x, y, hue, logx)
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        return drawn
    for label in [k for k in palette if k in drawn]:
        band = drawn[label]
        color = palette[label]
        ax.plot(band["x"], band["mean"], color=color, lw=1.4, ls=(styles or {}).get(label, "-"), label=label)
        ok = band["low"].notna() & band["high"].notna()
        if ok.any():
            ax.fill_between(band["x"][ok], band["low"][ok], band["high"][ok], color=color, alpha=0.18, lw=0)
    if logx:
        ax.set_xscale("log")
    if legend:
        ax.legend(loc="best", fontsize=7)
    return drawn


def spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    positive = values[values > 0]
    return len(positive) > 1 and positive.max() / positive.min() > 10 ** decades


def legend_outside(fig, ax, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title=title)


def finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]
