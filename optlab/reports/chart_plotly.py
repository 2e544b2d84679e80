"""A Chart as an interactive Plotly figure for the HTML report: hover values, a legend whose entries hide
(click) or isolate (double click) a series in every panel, zoom and pan. plotly.js itself is inlined
once per report (`plotly_js`), so the page works offline."""

from __future__ import annotations

import html
import json
import textwrap

import numpy as np
import pandas as pd

from optlab.reports.chart import Chart, Matrix, log_ticks

PANEL_HEIGHT = 270  # px per facet row
TITLE_CHARS = 120  # characters of panel title across the figure's width, shared by its columns
TITLE_LINE = 16  # px of top margin per extra line of a wrapped panel title
# Plotly scrolls a legend taller than the plot area, hiding entries: the figure grows to fit its legend
# (measured in Chromium: about 29 px per entry at font size 12, plus the legend's title)
LEGEND_ENTRY, LEGEND_TITLE = 30, 24
CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "scrollZoom": False,
    "toImageButtonOptions": {"format": "svg"},
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}


def plotly_js() -> str:
    """plotly.min.js as bundled by the plotly package (no network)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _wrapped(title: str, columns: int) -> str:
    """A panel title broken into lines that fit its column (Plotly draws `<br>`; the text is escaped)."""
    if not title:
        return title
    width = max(16, TITLE_CHARS // max(columns, 1))
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(title, width))


def figure(chart: Chart):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, cols = chart.rows, chart.cols
    titles = [_wrapped(chart.panel_title(r, c), len(cols)) for r in rows for c in cols]
    extra_lines = max((t.count("<br>") for t in titles), default=0)
    fig = make_subplots(
        rows=len(rows),
        cols=len(cols),
        subplot_titles=titles if any(titles) else None,
        shared_xaxes=chart.share_x,
        shared_yaxes=chart.share_y,
        horizontal_spacing=min(0.08, 0.3 / max(len(cols), 1)) + 0.02,
        vertical_spacing=min(0.14, 0.6 / max(len(rows), 1)),
    )
    shown = set()
    for i, r in enumerate(rows, start=1):
        for j, c in enumerate(cols, start=1):
            frame = chart.panel(r, c)
            log_y = bool(chart.panel_value(chart.log_y, r, c, False))
            floor = _log_floor(frame, chart.y) if log_y else None
            for label, line in chart.lines(frame):
                style = chart.style(label)
                group = str(label)
                x = line[chart.x].to_numpy(float)
                if chart.low and chart.high:
                    low = line[chart.low].to_numpy(float)
                    high = line[chart.high].to_numpy(float)
                    if floor is not None:
                        low = np.maximum(low, floor)
                    fig.add_trace(
                        go.Scatter(
                            x=x,
                            y=low,
                            mode="lines",
                            line={"width": 0},
                            legendgroup=group,
                            showlegend=False,
                            hoverinfo="skip",
                            line_shape="hv" if chart.step else "linear",
                        ),
                        row=i,
                        col=j,
                    )
                    fig.add_trace(
                        go.Scatter(
                            x=x,
                            y=high,
                            mode="lines",
                            line={"width": 0},
                            fill="tonexty",
                            fillcolor=_rgba(style["color"], 0.16),
                            legendgroup=group,
                            showlegend=False,
                            hoverinfo="skip",
                            line_shape="hv" if chart.step else "linear",
                        ),
                        row=i,
                        col=j,
                    )
                mode = chart.mode if not style["marker"] or "markers" in chart.mode else "lines+markers"
                custom, template = _hover(chart, line)
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=line[chart.y].to_numpy(float),
                        mode=mode,
                        name=group,
                        legendgroup=group,
                        showlegend=group not in shown,
                        line={"color": style["color"], "dash": style["dash"], "width": 2},
                        marker={
                            "symbol": style["marker"] or "circle",
                            "size": 6,
                            "color": style["color"],
                            "maxdisplayed": 12,
                        },
                        line_shape="hv" if chart.step else "linear",
                        customdata=custom,
                        hovertemplate=template,
                    ),
                    row=i,
                    col=j,
                )
                shown.add(group)
            for span in chart.panel_spans(c):
                group = span["label"]
                fig.add_vrect(
                    x0=span["low"],
                    x1=span["high"],
                    row=i,
                    col=j,
                    fillcolor=span.get("color", "#d62728"),
                    opacity=0.15,
                    line_width=0,
                    name=group,
                    legendgroup=group,
                    showlegend=group not in shown,
                )
                shown.add(group)
            # the x variable is the same down a column of panels: its title under the bottom panel only
            x_title = (chart.panel_value(chart.x_title, r, c) or chart.x) if i == len(rows) else ""
            log_x = bool(chart.panel_value(chart.log_x, r, c, False))
            y_columns = [k for k in (chart.y, chart.low, chart.high) if k]
            fig.update_xaxes(
                title_text=x_title,
                type="log" if log_x else "linear",
                **(_log_ticks(frame[[chart.x]], 8 if len(cols) < 3 else 5) if log_x else {}),
                row=i,
                col=j,
                showline=True,
                linecolor="#888",
                gridcolor="#e6e6e6",
                zeroline=False,
            )
            fig.update_yaxes(
                title_text=chart.y_label(r, c) if j == 1 or not chart.share_y else "",
                type="log" if log_y else "linear",
                **(_log_ticks(frame[y_columns], 6) if log_y else {}),
                row=i,
                col=j,
                showline=True,
                linecolor="#888",
                gridcolor="#e6e6e6",
                zeroline=False,
            )
    top, bottom = (50 if chart.title else 36) + TITLE_LINE * extra_lines, 50
    panels = 80 + PANEL_HEIGHT * len(rows) + TITLE_LINE * extra_lines
    fig.update_layout(
        template="simple_white",
        height=max(panels, top + bottom + LEGEND_TITLE + LEGEND_ENTRY * len(shown)),
        margin={"l": 60, "r": 20, "t": top, "b": bottom},
        title={"text": chart.title} if chart.title else None,
        legend={
            "title": {"text": "click: hide · double click: isolate"},
            "groupclick": "togglegroup",
            "itemsizing": "constant",
            "font": {"size": 12},
            "title_font": {"size": 11},
        },
        hovermode="closest",
        font={"size": 12},
    )
    fig.update_annotations(font_size=13)
    return fig


def _log_ticks(values: pd.DataFrame, max_labels: int) -> dict:
    """A log axis labelled at 1-2-5 as plain numbers (0.2, 0.5, 1, not plotly's bare minor "2, 5")."""
    v = values.to_numpy(float).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    ticks = log_ticks(float(v.min()), float(v.max()), max_labels) if len(v) else []
    return {"tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]} if ticks else {}


def _log_floor(frame: pd.DataFrame, y: str) -> float | None:
    positive = frame[y][frame[y] > 0]
    return float(positive.min()) / 2 if len(positive) else None


def _hover(chart: Chart, line: pd.DataFrame):
    columns = list(chart.hover)
    if chart.low and chart.high:
        columns = [chart.low, chart.high, *columns]
    text = f"<b>%{{fullData.name}}</b><br>{chart.x}: %{{x:.4g}}<br>{chart.y}: %{{y:.4g}}"
    if not columns:
        return None, text + "<extra></extra>"
    values = line[columns].to_numpy(dtype=object)
    for k, column in enumerate(columns):
        if chart.low and k < 2:
            continue
        text += f"<br>{column}: %{{customdata[{k}]}}"
    if chart.low and chart.high:
        text += "<br>band: %{customdata[0]:.4g} to %{customdata[1]:.4g}"
    return values, text + "<extra></extra>"


def matrix_figure(matrix: Matrix):
    import plotly.graph_objects as go

    values, text = matrix.values, matrix.text
    fig = go.Figure(
        go.Heatmap(
            z=values.to_numpy(float),
            x=list(values.columns),
            y=list(values.index),
            text=[[str(t).replace("\n", "<br>") for t in row] for row in text.to_numpy(object)],
            texttemplate="%{text}",
            colorscale="RdBu",
            zmid=0,
            zmin=-matrix.limit,
            zmax=matrix.limit,
            colorbar={"title": {"text": matrix.colorbar, "side": "right"}},
            hovertemplate="row %{y} vs column %{x}<br>%{text}<extra></extra>",
            xgap=1,
            ygap=1,
        )
    )
    size = len(values)
    fig.update_layout(
        template="simple_white",
        height=max(320, 60 * size + 160),
        width=max(480, 90 * size + 280),
        margin={"l": 90, "r": 20, "t": 30, "b": 90},
        font={"size": 12},
        xaxis={"title": matrix.x_title, "side": "bottom"},
        yaxis={"title": matrix.y_title, "autorange": "reversed"},
    )
    return fig


def to_html(chart: Chart | Matrix, div_id: str) -> str:
    """The figure's <div> and the script that draws it (plotly.js must be loaded before)."""
    fig = matrix_figure(chart) if isinstance(chart, Matrix) else figure(chart)
    payload = fig.to_json().replace("</", "<\\/")  # a label can never close the <script>
    return (
        f'<div id="{div_id}" class="chart" style="height:{fig.layout.height}px"></div>\n'
        f'<script>(function(){{var f={payload};Plotly.newPlot("{div_id}",f.data,f.layout,'
        f"{json.dumps(CONFIG)});}})();</script>"
    )
