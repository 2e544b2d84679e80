"""A Chart as a static matplotlib figure for the PDF: the same panels, colours, line styles and
markers as the interactive figure, drawn at the size it is printed (so 8-9 pt text stays 8-9 pt),
with the legend outside the panels, to their right."""

from __future__ import annotations

import io
import textwrap

import numpy as np

from optlab import palette
from optlab.reports import style
from optlab.reports.chart import Chart, Matrix, log_ticks

PRINT_WIDTH = 10.2  # inches: A4 landscape minus margins
MAX_HEIGHT = 3.8  # inches (97 mm): leaves room on the page for a heading, an intro and the caption
LEGEND_WIDTH = 2.1  # inches reserved right of the panels (per legend column)
MIN_PANELS_SHARE = 0.4  # the panels keep at least this share of the figure's width beside a wide legend
LABEL_PT = 8.5  # axis titles
TICK_PT = 7.5
LEGEND_PT = 8
CHAR_WIDTH = 0.55  # a character's mean width as a fraction of the font size (DejaVu Sans)
TICK_LABEL_INCHES = 0.42  # room one log-axis tick label needs along a panel
MPL_MARKERS = {
    "": None,
    "circle": "o",
    "square": "s",
    "triangle-up": "^",
    "diamond": "D",
    "x": "x",
    "star": "*",
    "triangle-down": "v",
}


def matrix_figure(matrix: Matrix):
    style.setup()
    import matplotlib.pyplot as plt
    import seaborn as sns

    k = len(matrix.values)
    fig, ax = plt.subplots(figsize=(min(PRINT_WIDTH, max(4.5, 0.85 * k + 2)), min(MAX_HEIGHT, max(3.2, 0.6 * k + 1.2))))
    sns.heatmap(
        matrix.values,
        annot=matrix.text,
        fmt="",
        cmap="RdBu",
        center=0,
        vmin=-matrix.limit,
        vmax=matrix.limit,
        ax=ax,
        cbar=True,
        annot_kws={"fontsize": 7},
        linewidths=0.5,
        linecolor="white",
        cbar_kws={"label": matrix.colorbar},
    )
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
    fig, grid = plt.subplots(
        len(rows), len(cols), figsize=(PRINT_WIDTH, height), squeeze=False, sharex=chart.share_x, sharey=chart.share_y
    )
    handles: dict[str, object] = {}  # legend label -> its artist
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
                    ax.fill_between(
                        x,
                        low,
                        line[chart.high].to_numpy(float),
                        color=s["color"],
                        alpha=0.16,
                        linewidth=0,
                        step="post" if chart.step else None,
                    )
                marker = MPL_MARKERS.get(s["marker"]) or ("o" if "markers" in chart.mode else None)
                linestyle = "none" if chart.mode == "markers" else palette.MATPLOTLIB_DASHES[s["dash"]]
                (handle,) = ax.plot(
                    x,
                    line[chart.y].to_numpy(float),
                    color=s["color"],
                    linestyle=linestyle,
                    marker=marker,
                    markersize=3.5,
                    markevery=_markevery(len(x)),
                    linewidth=1.5,
                    drawstyle=drawstyle,
                )
                handles.setdefault(str(label), handle)
            for span in chart.panel_spans(c):
                handle = ax.axvspan(span["low"], span["high"], color=span.get("color", "#d62728"), alpha=0.15, lw=0)
                handles.setdefault(span["label"], handle)
            panel_width = (PRINT_WIDTH - LEGEND_WIDTH) / len(cols)
            if chart.panel_value(chart.log_x, r, c, False):
                ax.set_xscale("log")
                _plain_log_labels(ax.xaxis, max(2, int(panel_width / TICK_LABEL_INCHES)))
            if log_y:
                ax.set_yscale("log")
                _plain_log_labels(ax.yaxis, max(2, int(panel_height / 0.25)))
            title = _wrap(chart.panel_title(r, c), panel_width, LABEL_PT, bold=True)  # narrow panels: names wrap
            if title:
                ax.set_title(title, fontsize=LABEL_PT)
            if i == len(rows) - 1:  # the x variable is the same down a column: titled under the bottom panel
                ax.set_xlabel(
                    _wrap(chart.panel_value(chart.x_title, r, c) or chart.x, panel_width, LABEL_PT), fontsize=LABEL_PT
                )
            if j == 0 or not chart.share_y:
                ax.set_ylabel(_wrap(chart.y_label(r, c), panel_height, LABEL_PT), fontsize=LABEL_PT)
            ax.tick_params(labelsize=TICK_PT)
            if frame.empty:
                ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    if chart.title:
        fig.suptitle(_wrap(chart.title, PRINT_WIDTH, 10, bold=True), fontsize=10, fontweight="bold")
    _place_legend(fig, handles)
    return fig


def _wrap(text: str, inches: float, points: float, bold: bool = False) -> str:
    """The text in lines that fit `inches` at `points` (a title longer than its panel runs into the next)."""
    width = max(8, int(inches * 72 / (points * (CHAR_WIDTH + (0.08 if bold else 0)))) - 2)
    return textwrap.fill(str(text), width) if text else ""


def _place_legend(fig, handles: dict) -> None:
    """Panels left, legend right in as many columns as its entries need to fit the figure's height (a
    legend taller than the figure is cut off in print): the panels give up the width of the extra columns,
    and the width a legend of long entries needs beyond its reserved column."""
    labels = [textwrap.fill(label, 30) for label in handles]  # long entries wrap inside the legend column
    columns = 1
    right = 1 - min(LEGEND_WIDTH, PRINT_WIDTH / 2) / PRINT_WIDTH
    for _ in range(12):  # a few more columns, or a little more width each time; bounded
        fig.tight_layout(rect=(0, 0, right, 1))
        if not handles:
            return
        legend = fig.legend(
            list(handles.values()),
            labels,
            loc="center left",
            bbox_to_anchor=(right, 0.5),
            frameon=False,
            fontsize=LEGEND_PT,
            handlelength=2.6,
            ncol=columns,
        )
        fig.canvas.draw()
        box = legend.get_window_extent()
        too_tall = box.height > fig.bbox.height and columns < 4
        overflow = (box.x1 - fig.bbox.width) / fig.bbox.width
        if not too_tall and overflow <= 0:
            return
        if right <= MIN_PANELS_SHARE and not too_tall:
            return  # nothing more to give: text_problems reports what still does not fit
        legend.remove()
        if too_tall:
            columns += 1
            right = min(right, 1 - min(LEGEND_WIDTH * columns, PRINT_WIDTH / 2) / PRINT_WIDTH)
        else:
            right = max(MIN_PANELS_SHARE, right - overflow - 0.01)


def _plain_log_labels(axis, max_labels: int) -> None:
    """Log-axis ticks labelled as plain numbers at 1-2-5 (0.2, 0.5, 1, 2, ...; chart.log_ticks), at most
    `max_labels` along the axis so that neighbouring labels never run into each other; the other
    minor ticks stay unlabelled."""
    from matplotlib import ticker

    low, high = sorted(axis.get_view_interval())
    ticks = log_ticks(low, high, max_labels)
    if ticks:
        axis.set_major_locator(ticker.FixedLocator(ticks))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def text_problems(fig) -> list[str]:
    """What would not print cleanly: a visible text of the figure (titles, axis titles, tick labels,
    legend entries) reaching outside the figure, or two of them overlapping. Empty when all is well."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    undrawn = set()  # labels of ticks outside their axis's view: matplotlib keeps but does not draw them
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                location = tick.get_loc()
                if location is None or not low - 1e-9 * abs(high - low) <= location <= high + 1e-9 * abs(high - low):
                    undrawn |= {id(tick.label1), id(tick.label2)}
    texts = []
    for artist in fig.findobj(Text):
        if id(artist) in undrawn or not artist.get_visible() or not artist.get_text().strip():
            continue
        box = artist.get_window_extent(renderer)
        if box.width <= 0 or box.height <= 0:
            continue
        texts.append((artist.get_text().replace("\n", " "), box))
    problems = [
        f"{text!r} reaches outside the figure"
        for text, box in texts
        if box.x0 < frame.x0 - 1 or box.y0 < frame.y0 - 1 or box.x1 > frame.x1 + 1 or box.y1 > frame.y1 + 1
    ]
    for k, (text, box) in enumerate(texts):
        for other, other_box in texts[k + 1 :]:
            overlap_x = min(box.x1, other_box.x1) - max(box.x0, other_box.x0)
            overlap_y = min(box.y1, other_box.y1) - max(box.y0, other_box.y0)
            if overlap_x > 1 and overlap_y > 1:
                problems.append(f"{text!r} overlaps {other!r}")
    return problems


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
