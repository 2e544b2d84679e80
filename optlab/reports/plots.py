"""Shared plotting: mean curves with a band over seeds, on a common x grid per series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

GRID_POINTS = 60  # curves are resampled to this many x values: long histories stay cheap to draw


def resample(hist: pd.DataFrame, x: str, y: str, hue: str, logx: bool = False,
             points: int = GRID_POINTS) -> pd.DataFrame:
    """Each run's (x, y) curve interpolated onto one grid per hue group, spanning the x range all the
    group's runs cover, so seeds with different x values (wall time, evaluations) can be averaged."""
    rows = []
    for label, group in hist.dropna(subset=[x, y]).groupby(hue, sort=False):
        runs = [g.sort_values(x) for _, g in group.groupby("run_id")]
        runs = [r for r in runs if len(r) >= 2]
        if not runs:
            continue
        lo = max(r[x].min() for r in runs)
        hi = min(r[x].max() for r in runs)
        if logx:
            lo = max(lo, min((r[x][r[x] > 0].min() for r in runs if (r[x] > 0).any()), default=np.nan))
        if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
            continue
        grid = np.geomspace(lo, hi, points) if logx else np.linspace(lo, hi, points)
        for r in runs:
            xs, ys = r[x].to_numpy(float), r[y].to_numpy(float)
            xs, keep = np.unique(xs, return_index=True)
            rows.append(pd.DataFrame({x: grid, y: np.interp(grid, xs, ys[keep]), hue: label,
                                      "run_id": r["run_id"].iloc[0]}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=[x, y, hue, "run_id"])


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
               style: str | None = None, legend: bool = False) -> None:
    data = resample(hist, x, y, hue, logx)
    if data.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        return
    if style:
        data = data.merge(hist[["run_id", style]].drop_duplicates("run_id"), on="run_id", how="left")
    # 'sd' over seeds: exact and fast (a bootstrap CI took 43 s on long series, see the brief)
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=[k for k in palette if k in set(data[hue])],
                 style=style, palette=palette, errorbar="sd", ax=ax,
                 legend=legend, linewidth=1.4, estimator="mean")
    if logx:
        ax.set_xscale("log")


def spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    positive = values[values > 0]
    return len(positive) > 1 and positive.max() / positive.min() > 10 ** decades


def legend_outside(fig, ax, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    # with a single hue seaborn adds no heading; with hue + style it adds the column names as
    # pseudo-entries ("label", "family"): rename them to readable headings, drop a leading one
    labels = [{"label": "strategy", "condition": "labels / inputs"}.get(l, l) for l in labels]
    if labels and labels[0] in ("strategy", "labels / inputs"):
        handles, labels = handles[1:], labels[1:]
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title=title)
