"""The figure layer: one Chart drawn interactive (Plotly) and static (matplotlib) alike, one colour per
strategy and one line style per family everywhere, never more than eight lines in a panel."""

from __future__ import annotations

import html

import matplotlib
import numpy as np
import pandas as pd
import pytest

from optlab import palette
from optlab.reports import chart_plotly, chart_static
from optlab.reports.chart import Chart

matplotlib.use("Agg")


def curves(strategies: dict[str, str], labels_per_strategy: int = 1, points: int = 5, panel=None) -> pd.DataFrame:
    rows = []
    for strategy, family in strategies.items():
        for k in range(labels_per_strategy):
            label = strategy if labels_per_strategy == 1 else f"{strategy} lr={10.0**-k:g}"
            for x in range(1, points + 1):
                y = 1.0 / x + 0.1 * k
                rows.append(
                    {
                        "strategy": strategy,
                        "family": family,
                        "label": label,
                        "x": float(x),
                        "y": y,
                        "low": y - 0.5,
                        "high": y + 0.05,
                        "panel": panel(strategy, family) if panel else "all",
                    }
                )
    return pd.DataFrame(rows)


MIXED = {"adam": "first-order", "gd": "first-order", "lbfgs": "second-order", "ng:OnePlusOne": "zeroth-order"}


def line_traces(fig):
    return [t for t in fig.data if t.showlegend is not None and t.name]


def test_every_renderer_gives_a_strategy_its_palette_colour_and_a_family_its_line_style():
    chart = Chart(curves(MIXED), x="x", y="y", label="label", caption="c")
    fig = chart_plotly.figure(chart)
    by_name = {t.name: t for t in line_traces(fig)}
    assert set(by_name) == set(MIXED)
    for strategy, family in MIXED.items():
        assert by_name[strategy].line.color == palette.color(strategy)
        assert by_name[strategy].line.dash == palette.dash(family)
    static = chart_static.figure(chart)
    legend = {text.get_text() for text in static.legends[0].get_texts()}
    assert legend == set(MIXED)
    drawn = static.axes[0].get_lines()
    colours = {matplotlib.colors.to_hex(line.get_color()).upper() for line in drawn}
    assert colours == {palette.color(s).upper() for s in MIXED}
    styles = {line.get_linestyle() for line in drawn}
    assert styles == {"-", "--", ":"}  # three families, three line styles
    matplotlib.pyplot.close(static)


def test_the_palette_is_fixed_distinct_and_defined_for_any_strategy():
    colours = list(palette.STRATEGY_COLORS.values())
    assert len(set(colours)) == len(colours)  # no two known strategies share a colour
    assert palette.color("adam") == "#D55E00"
    assert palette.color("ng:SomethingNew") == palette.color("ng:SomethingNew")  # stable without a table entry
    assert palette.color("ng:SomethingNew") not in colours
    assert palette.panel_group("adam", "first-order") == "first-order: adaptive"
    assert palette.panel_group("lbfgs", "second-order") == "second-order"


def test_a_crowded_panel_is_split_so_no_panel_holds_more_than_eight_lines():
    many = {
        s: "first-order"
        for s in ("gd", "sgd", "minibatch", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")
    }
    data = curves(many, labels_per_strategy=2)  # 18 lines in one panel
    chart = Chart(data, x="x", y="y", label="label", row=None, col="panel", caption="c")
    assert chart.max_panel_lines() <= 8
    assert len(chart.cols) == 3 and all(str(c).startswith("all (") for c in chart.cols)
    fig = chart_plotly.figure(chart)
    shown = [t.name for t in fig.data if t.showlegend]
    assert sorted(shown) == sorted(data["label"].unique())  # each series once in the legend
    static = chart_static.figure(chart)
    assert len(static.axes) == 3
    assert max(len(ax.get_lines()) for ax in static.axes) <= 8
    matplotlib.pyplot.close(static)


def test_lines_of_one_strategy_in_one_panel_get_distinct_markers():
    chart = Chart(curves({"adam": "first-order"}, labels_per_strategy=3), x="x", y="y", label="label", caption="c")
    markers = [chart.style(label)["marker"] for label in chart.legend_order()]
    assert len(set(markers)) == 3
    alone = Chart(curves({"adam": "first-order", "gd": "first-order"}), x="x", y="y", label="label", caption="c")
    assert {alone.style(label)["marker"] for label in alone.legend_order()} == {""}


def test_facets_give_the_same_panels_in_both_renderers_with_per_panel_log_axes():
    data = pd.concat(
        [
            curves(MIXED, panel=palette.panel_group).assign(metric="train loss"),
            curves(MIXED, panel=palette.panel_group).assign(metric="accuracy"),
        ]
    )
    chart = Chart(
        data,
        x="x",
        y="y",
        low="low",
        high="high",
        label="label",
        row="metric",
        col="panel",
        row_order=["train loss", "accuracy"],
        log_y={"train loss": True},
        caption="c",
    )
    assert chart.rows == ["train loss", "accuracy"]
    assert len(chart.cols) == 4  # adam: adaptive, gd: SGD & momentum, second-order, zeroth-order
    fig = chart_plotly.figure(chart)
    layout = fig.to_dict()["layout"]
    axes = sorted((k for k in layout if k.startswith("yaxis")), key=lambda k: int(k[5:] or 1))
    y_types = [layout[k].get("type") for k in axes]
    assert y_types[: len(chart.cols)] == ["log"] * len(chart.cols)
    assert y_types[len(chart.cols) :] == ["linear"] * len(chart.cols)
    static = chart_static.figure(chart)
    assert len(static.axes) == len(chart.rows) * len(chart.cols)
    assert [ax.get_yscale() for ax in static.axes[: len(chart.cols)]] == ["log"] * len(chart.cols)
    # on a log axis a band reaching below zero is clipped to a positive floor instead of vanishing
    lows = [t.y for t in fig.data if t.fill is None and t.showlegend is False and t.hoverinfo == "skip"]
    assert all(np.all(np.asarray(y) > 0) for y in lows[:2])
    matplotlib.pyplot.close(static)


def test_interactive_html_embeds_the_data_and_never_closes_its_script_early():
    data = curves({"adam": "first-order"})
    data["label"] = "adam </script><b>"
    html = chart_plotly.to_html(Chart(data, x="x", y="y", label="label", caption="c"), "chartX")
    assert html.count("</script>") == 1 and 'Plotly.newPlot("chartX"' in html


def test_a_chart_refuses_a_column_its_data_does_not_have():
    with pytest.raises(ValueError, match="no column"):
        Chart(curves({"adam": "first-order"}), x="x", y="missing", caption="c")


def test_lines_that_are_not_strategies_take_an_explicit_colour_map_in_its_order():
    rows = [
        {"p": p, "x": float(x), "y": float(x * k), "family": "first-order"}
        for k, p in enumerate(("p=0", "p=0.5", "p=1"))
        for x in range(1, 4)
    ]
    colours = {"p=0": (0.1, 0.2, 0.3), "p=0.5": "#00FF00", "p=1": "#0000FF"}
    chart = Chart(pd.DataFrame(rows), x="x", y="y", color="p", colors=colours, dash=None, caption="c")
    assert chart.legend_order() == ["p=0", "p=0.5", "p=1"]
    fig = chart_plotly.figure(chart)
    assert [t.line.color for t in line_traces(fig)] == ["#1A334C", "#00FF00", "#0000FF"]


def test_long_panel_titles_wrap_to_their_column_escaped_and_the_figure_makes_room():
    long = "wall time (s, training only) · first-order: SGD & momentum <b>"
    panel = lambda strategy, family: f"{long} {family}"  # noqa: E731
    data = curves(
        {"adam": "first-order", "lbfgs": "second-order", "ng:OnePlusOne": "zeroth-order", "gd": "first-order"},
        panel=panel,
    )
    wide = chart_plotly.figure(Chart(data, x="x", y="y", label="label", col="panel", caption="c"))
    titles = [a.text for a in wide.layout.annotations]
    assert len(titles) == 3 and all("<br>" in t for t in titles)
    assert all(len(html.unescape(line)) <= 120 // 3 for t in titles for line in t.split("<br>"))
    assert all("&lt;b&gt;" in t and "<b>" not in t for t in titles)
    short = chart_plotly.figure(
        Chart(
            curves({"adam": "first-order"}, panel=lambda s, f: "a"),
            x="x",
            y="y",
            label="label",
            col="panel",
            caption="c",
        )
    )
    assert wide.layout.margin.t > short.layout.margin.t and wide.layout.height > short.layout.height


def many_lines(n: int) -> Chart:
    rows = [{"label": f"B={2**k}", "x": float(x), "y": 1.0 / x + k} for k in range(n) for x in range(1, 6)]
    colours = {f"B={2**k}": palette.sequential(n)[k] for k in range(n)}
    return Chart(pd.DataFrame(rows), x="x", y="y", color="label", colors=colours, dash=None, caption="c")


def test_a_figure_grows_to_fit_its_legend_and_a_short_legend_leaves_it_as_it_was():
    heights = {n: chart_plotly.figure(many_lines(n)).layout.height for n in (3, 6, 9, 13, 20)}
    assert heights[3] == heights[6]  # the panel is taller than six entries
    assert heights[9] < heights[13] < heights[20]
    fig = chart_plotly.figure(many_lines(20))
    plot_area = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert plot_area >= chart_plotly.LEGEND_TITLE + chart_plotly.LEGEND_ENTRY * 20


@pytest.mark.browser(driver=False)
def test_no_legend_scrolls_in_chromium(tmp_path):
    """Plotly hides legend entries behind a scroll bar when the legend is taller than the plot."""
    import json
    import os
    import shutil
    import subprocess

    counts = (3, 9, 13, 20)
    probe = """<script>window.addEventListener('load', () => setTimeout(() => {
      const found = Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => {
        const bar = g.querySelector('.legend .scrollbar');
        return [g.querySelectorAll('.legend .traces').length, bar ? Number(bar.getAttribute('height')) : 0];
      });
      const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(found);
      document.body.appendChild(pre);
    }, 1000));</script>"""
    body = "".join(chart_plotly.to_html(many_lines(n), f"c{n}") for n in counts)
    page = tmp_path / "legends.html"
    page.write_text(f"<html><head><script>{chart_plotly.plotly_js()}</script></head><body>{body}{probe}</body></html>")
    dom = subprocess.run(
        [
            os.environ.get("OPTLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,1000",
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    found = json.loads(dom.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0])
    assert found == [[n, 0] for n in counts]  # every entry drawn, no scroll bar
