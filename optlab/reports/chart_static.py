"""A Chart as a static matplotlib figure for the PDF: the same panels, colours, line styles and
markers as the interactive figure, drawn at the size it is printed (so 8-9 pt text stays 8-9 pt),
with the legend outside the panels, to their right."""

from __future__ import annotations

import io
import textwrap

import numpy as np

from optlab import palette
from optlab.reports import style
from optlab.reports.chart import Chart, Matrix

PRINT_WIDTH = 10.2          # inches: A4 landscape minus margins
MAX_HEIGHT = 3.8            # inches (97 mm): leaves room on the page for a heading, an intro and the caption
LEGEND_WIDTH = 2.1          # inches reserved right of the panels
MPL_MARKERS = {"": None, "circle": "o", "square": "s", "triangle-up": "^", "diamond": "D", "x": "x",
               "star": "*", "triangle-down": "v"}


def matrix_figure(matrix: Matrix):
    style.setup()
    import matplotlib.pyplot as plt
    import seaborn as sns

    k = len(matrix.values)
    fig, ax = plt.subplots(figsize=(min(PRINT_WIDTH, max(4.5, 0.85 * k + 2)), min(MAX_HEIGHT, max(3.2, 0.6 * k + 1.2))))
    sns.heatmap(matrix.values, annot=matrix.text, fmt="", cmap="RdBu", center=0, vmin=-matrix.limit,
                vmax=matrix.limit, ax=ax, cbar=True, annot_kws={"fontsize": 7}, linewidths=0.5, linecolor="white",
                cbar_kws={"label": matrix.colorbar})
    ax.set_xlabel(matrix.x_title, fontsize=8.5)
    ax.set_ylabel(matrix.y_title, fontsize=8.5)
    ax.tick_params(axis="x", rotation=45, labelsize=7.5)
    ax.tick_params(axis="y", labelsize=7.5)
    fig.tight_layout()
    return fig


def figure(chart: Chart | Matrix):
    if isinstance(chart, Matrix):
        return matrix_figure(chart)
    style.setup()
    import matplotlib.pyplot as plt

    rows, cols = chart.rows, chart.cols
    panel_height = min(2.5, (MAX_HEIGHT - 0.5) / len(rows))
    height = 0.5 + panel_height * len(rows) + (0.3 if chart.title else 0)
    fig, grid = plt.subplots(len(rows), len(cols), figsize=(PRINT_WIDTH, height), squeeze=False,
                             sharex=chart.share_x, sharey=chart.share_y)
    handles = {}
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = grid[i][j]
            frame = chart.panel(r, c)
            log_y = bool(chart.panel_value(chart.log_y, r, c, False))
            floor = _log_floor(frame[chart.y]) if log_y else None
            drawstyle = "steps-post" if chart.step else "default"
            for label, line in chart.lines(frame):
                s = chart.style(label)
                x = line[chart.x].to_numpy(float)
                if chart.low and chart.high:
                    low = line[chart.low].to_numpy(float)
                    if floor is not None:
                        low = np.maximum(low, floor)
                    ax.fill_between(x, low, line[chart.high].to_numpy(float), color=s["color"], alpha=0.16,
                                    linewidth=0, step="post" if chart.step else None)
                marker = MPL_MARKERS.get(s["marker"]) or ("o" if "markers" in chart.mode else None)
                linestyle = "none" if chart.mode == "markers" else palette.MATPLOTLIB_DASHES[s["dash"]]
                (handle,) = ax.plot(x, line[chart.y].to_numpy(float), color=s["color"], linestyle=linestyle,
                                    marker=marker, markersize=3.5, markevery=_markevery(len(x)),
                                    linewidth=1.5, drawstyle=drawstyle)
                handles.setdefault(str(label), handle)
            for span in chart.panel_spans(c):
                handle = ax.axvspan(span["low"], span["high"], color=span.get("color", "#d62728"), alpha=0.15, lw=0)
                handles.setdefault(span["label"], handle)
            if chart.panel_value(chart.log_x, r, c, False):
                ax.set_xscale("log")
                _plain_log_labels(ax.xaxis)
            if log_y:
                ax.set_yscale("log")
                _plain_log_labels(ax.yaxis)
            title = textwrap.fill(chart.panel_title(r, c), 26)  # narrow panels: a long name on two lines
            if title:
                ax.set_title(title, fontsize=8.5)
            if i == len(rows) - 1:  # the x variable is the same down a column: titled under the bottom panel
                ax.set_xlabel(chart.panel_value(chart.x_title, r, c) or chart.x, fontsize=8.5)
            if j == 0 or not chart.share_y:
                ax.set_ylabel(chart.y_label(r, c), fontsize=8.5)
            ax.tick_params(labelsize=7.5)
            if frame.empty:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    if chart.title:
        fig.suptitle(chart.title, fontsize=10, fontweight="bold")
    right = 1 - LEGEND_WIDTH / PRINT_WIDTH
    fig.tight_layout(rect=(0, 0, right, 1))
    if handles:
        labels = [textwrap.fill(label, 30) for label in handles]  # long entries wrap inside the legend column
        fig.legend(list(handles.values()), labels, loc="center left", bbox_to_anchor=(right, 0.5),
                   frameon=False, fontsize=8, handlelength=2.6)
    return fig


def _plain_log_labels(axis) -> None:
    """Log-axis tick labels as plain numbers (0.5, 2, 300). On a short axis the minor ticks are labelled
    too (else a loss falling from 2.3 to 0.9 shows one label): all of them under half a decade, those
    at 2, 3 and 5 under one and a half."""
    from matplotlib import ticker

    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    low, high = sorted(axis.get_view_interval())
    ratio = high / low if low > 0 else np.inf
    labelled = range(2, 10) if ratio < 3 else (2, 3, 5) if ratio < 30 else ()

    def minor(v, _):
        mantissa = v / 10 ** np.floor(np.log10(v))
        return f"{v:g}" if any(abs(mantissa - m) < 1e-6 for m in labelled) else ""

    axis.set_minor_formatter(ticker.FuncFormatter(minor))


def _markevery(n: int):
    return max(1, n // 12)


def _log_floor(values) -> float | None:
    positive = values[values > 0]
    return float(positive.min()) / 2 if len(positive) else None


def svg(fig) -> bytes:
    """The figure as SVG, at its own size (text kept as text, in the PDF's fonts)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg")
    return buffer.getvalue()
