"""Shared plotting: mean curves with a 95 % bootstrap band over seeds, on a common x grid per series.

The numbers come from optlab.analysis.curves (interpolation onto the grid every run of a series
covers, then scipy's bootstrap per grid point); this module only draws them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optlab import palette
from optlab.analysis import curves
from optlab.analysis.axes import spans_decades
from optlab.reports.chart import MAX_LINES, Chart

GRID_POINTS = 60  # curves are resampled to this many x values: long histories stay cheap to draw
BAND_TEXT = "mean over seeds with a 95 % bootstrap confidence band (BCa, per point of a common x grid)"


def bands(
    hist: pd.DataFrame, x: str, y: str, hue: str, logx: bool = False, points: int = GRID_POINTS
) -> dict[str, pd.DataFrame]:
    """Per hue value: the band frame (x, mean, low, high, n) over its runs."""
    out = {}
    for label, group in hist.dropna(subset=[x, y]).groupby(hue, sort=False):
        runs = [(g[x].to_numpy(float), g[y].to_numpy(float)) for _, g in group.groupby("run_id")]
        band = curves.band(runs, points=points, log=logx)
        if not band.empty:
            out[label] = band
    return out


def band_lines(
    ax,
    hist: pd.DataFrame,
    x: str,
    y: str,
    hue: str,
    palette: dict,
    logx: bool = False,
    styles: dict | None = None,
    legend: bool = False,
) -> dict[str, pd.DataFrame]:
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


def legend_outside(fig, ax, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title=title)


def finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v[np.isfinite(v)]


def band_frame(runs: pd.DataFrame, hist: pd.DataFrame, axes, metrics, hue: str = "label"):
    """The bands of every hue value for each (x axis, metric), as one tidy frame for a Chart: columns hue,
    metric (its label), axis (its label), x, mean, low, high, n, strategy, family; and per axis label
    whether its x is drawn on a log scale."""
    frames, log_x = [], {}
    for x, x_label in axes:
        logx = x != "epoch" and spans_decades(hist[x])
        log_x[x_label] = logx
        for metric, metric_label in metrics:
            if metric not in hist:
                continue
            for label, band in bands(hist, x, metric, hue, logx).items():
                frames.append(band.assign(**{hue: label, "metric": metric_label, "axis": x_label}))
    if not frames:
        return pd.DataFrame(
            columns=[hue, "metric", "axis", "x", "mean", "low", "high", "n", "strategy", "family"]
        ), log_x
    data = pd.concat(frames, ignore_index=True)
    first = runs.drop_duplicates(hue).set_index(hue)
    data["strategy"] = data[hue].map(first["strategy"])
    data["family"] = data[hue].map(first["family"])
    return data, log_x


def axis_charts(
    data: pd.DataFrame,
    log_x: dict,
    row_order: list,
    log_y: dict,
    caption: str,
    hue: str = "label",
    max_cols: int = 4,
    band: bool = True,
    step: bool = False,
) -> list[Chart]:
    """Charts of band_frame data: rows = metrics, one column per x axis; with more than MAX_LINES lines,
    one column per x axis and kind of method (palette.panel_group). At most `max_cols` columns a chart:
    more axes make more charts."""
    if data.empty:
        return []
    data = data.copy()
    crowded = data[hue].nunique() > MAX_LINES
    groups = [palette.panel_group(s, f) for s, f in zip(data["strategy"], data["family"])]
    data["panel"] = [f"{a} · {g}" for a, g in zip(data["axis"], groups)] if crowded else data["axis"]
    order = sorted(set(groups), key=palette.panel_order)
    per_axis = len(order) if crowded else 1
    axes = [a for a in log_x if (data["axis"] == a).any()]
    per_chart = max(1, max_cols // per_axis)
    chunks = [axes[i : i + per_chart] for i in range(0, len(axes), per_chart)]
    charts = []
    for k, chunk in enumerate(chunks, start=1):
        part = data[data["axis"].isin(chunk)]
        cols = [f"{a} · {g}" for a in chunk for g in order] if crowded else chunk
        panel_axis = dict(zip(part["panel"], part["axis"]))
        charts.append(
            Chart(
                part,
                x="x",
                y="mean",
                low="low" if band else None,
                high="high" if band else None,
                label=hue,
                row="metric",
                col="panel",
                step=step,
                row_order=row_order,
                col_order=cols,
                col_titles=crowded,
                x_title={p: a for p, a in panel_axis.items()},
                log_x={p: log_x[a] for p, a in panel_axis.items()},
                log_y=log_y,
                hover=["n"] if "n" in part else [],
                caption=caption + (f" ({k}/{len(chunks)})" if len(chunks) > 1 else ""),
            )
        )
    return charts
