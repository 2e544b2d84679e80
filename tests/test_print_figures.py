"""The PDF's static figures at the size they are printed (A4 landscape): no title, axis title, tick label or
legend entry outside its figure or on top of another; numbers in numeric order; log axes labelled
0.2, 0.5, 1 (1-2-5), never a bare "5, 2". The figures are those of a fixed report: the shapes the report
draws (performance profiles over four cost axes, thirteen batch sizes on log axes, learning curves
with bands over work spanning decades, a who-beats-whom matrix)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from optlab import palette
from optlab.reports import chart_static, plots, style
from optlab.reports.chart import Chart, Matrix, log_ticks
from optlab.reports.natural import natural_sorted

STRATEGIES = [
    "gd",
    "sgd",
    "minibatch",
    "momentum",
    "nesterov",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "lbfgs",
    "newton_cg",
    "ng:CMA",
]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3500]


def profile_charts() -> list[Chart]:
    """As target.add_profile draws them: ρ(τ) against four cost axes, twelve strategies."""
    tau = np.geomspace(1, 1000, 40)
    frames = []
    for axis in ("gradient equivalents", "epochs", "wall time (training only)", "evaluations"):
        for k, strategy in enumerate(STRATEGIES):
            frames.append(
                pd.DataFrame(
                    {
                        "x": tau,
                        "mean": np.clip(np.log10(tau) / (1 + k / 4), 0, 1),
                        "label": strategy,
                        "strategy": strategy,
                        "family": palette.family(strategy),
                        "axis": f"τ (ratio to the fastest, {axis})",
                        "metric": "fraction of the 7 workloads within τ",
                    }
                )
            )
    data = pd.concat(frames, ignore_index=True)
    return plots.axis_charts(
        data,
        {a: True for a in dict.fromkeys(data["axis"])},
        list(set(data["metric"])),
        {},
        "profiles",
        band=False,
        step=True,
    )


def batch_chart() -> Chart:
    """Steps to target and the tuned learning rate against batch size, one line per batch-size run label."""
    rows = []
    for panel, values in (
        ("steps to target", lambda b: 3000 / b**0.7),
        ("tuned learning rate", lambda b: 0.01 * b**0.5),
    ):
        for b in BATCHES:
            for x in (b * 0.9, b, b * 1.1):
                rows.append(
                    {
                        "x": x,
                        "y": values(b),
                        "low": values(b) * 0.8,
                        "high": values(b) * 1.2,
                        "key": "minibatch",
                        "label": f"minibatch B={b}",
                        "panel": panel,
                    }
                )
    data = pd.DataFrame(rows)
    return Chart(
        data,
        x="x",
        y="y",
        low="low",
        high="high",
        color="key",
        label="label",
        row="panel",
        dash=None,
        log_x=True,
        log_y=True,
        x_title="batch size B",
        max_lines=20,
        caption="steps to target against batch size",
        title="Batch-size effects on digits-relu-ce",
    )


def curves_chart() -> Chart:
    """Learning curves with bands against work that spans five decades and against wall time."""
    frames = []
    work = np.geomspace(0.05, 5000, 30)
    for strategy in STRATEGIES[:7]:
        for metric in ("validation accuracy (mean, 95 % band)", "training loss (mean, 95 % band)"):
            y = 1 - 0.9 / (1 + work) if "accuracy" in metric else 2.3 / (1 + work)
            for axis in ("gradient-equivalents (passes over the training set)", "wall time in seconds (training only)"):
                frames.append(
                    pd.DataFrame(
                        {
                            "x": work,
                            "mean": y,
                            "low": y * 0.95,
                            "high": y * 1.05,
                            "label": strategy,
                            "strategy": strategy,
                            "family": palette.family(strategy),
                            "metric": metric,
                            "axis": axis,
                        }
                    )
                )
    data = pd.concat(frames, ignore_index=True)
    return plots.axis_charts(
        data,
        {a: True for a in dict.fromkeys(data["axis"])},
        list(dict.fromkeys(data["metric"])),
        {"training loss (mean, 95 % band)": True},
        "learning curves",
    )[0]


def matrix() -> Matrix:
    names = STRATEGIES[:8]
    values = pd.DataFrame(np.linspace(-1, 1, 64).reshape(8, 8), index=names, columns=names)
    return Matrix(
        values,
        values.map("{:+.2f}".format),
        "who beats whom",
        1.0,
        "opponent",
        "strategy",
        "difference in final accuracy",
    )


FIXED_REPORT = {
    "performance profiles": profile_charts,
    "batch sizes": lambda: [batch_chart()],
    "learning curves": lambda: [curves_chart()],
    "matrix": lambda: [matrix()],
}


@pytest.mark.parametrize("name", FIXED_REPORT)
def test_every_printed_figure_keeps_its_text_inside_the_figure_and_apart(name):
    import matplotlib.pyplot as plt

    for chart in FIXED_REPORT[name]():
        fig = chart_static.figure(chart)
        try:
            problems = chart_static.text_problems(fig)
        finally:
            plt.close(fig)
        assert problems == [], f"{name}: {problems[:5]}"


def test_the_text_check_sees_a_clipped_legend_and_colliding_labels():
    import matplotlib.pyplot as plt

    style.setup()
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.set_xlabel("an x-axis title far too long for a figure this narrow to hold it")
    ax.set_title("a title")
    ax.text(0.5, 1.0, "a title again", transform=ax.transAxes, ha="center")
    try:
        problems = chart_static.text_problems(fig)
    finally:
        plt.close(fig)
    assert any("outside the figure" in p for p in problems)
    assert any("overlaps" in p for p in problems)


def test_a_legend_of_thirteen_batch_sizes_is_whole_and_in_numeric_order():
    import matplotlib.pyplot as plt

    chart = batch_chart()
    assert chart.legend_order() == [f"minibatch B={b}" for b in BATCHES]
    fig = chart_static.figure(chart)
    try:
        legend = fig.legends[0]
        entries = [t.get_text() for t in legend.get_texts()]
    finally:
        plt.close(fig)
    assert entries == [f"minibatch B={b}" for b in BATCHES]
    colours = style.palette([f"B={b}" for b in BATCHES])
    assert list(colours) == [f"B={b}" for b in BATCHES]  # colours assigned along the batch sizes


def test_natural_order_reads_numbers_as_numbers():
    assert natural_sorted(["B=1024", "B=128", "B=16", "B=2", "B=1"]) == ["B=1", "B=2", "B=16", "B=128", "B=1024"]
    assert natural_sorted(["lr=0.03", "lr=0.003", "lr=0.1"]) == ["lr=0.003", "lr=0.03", "lr=0.1"]


def test_log_axes_are_labelled_at_one_two_five_as_plain_numbers():
    import matplotlib.pyplot as plt

    assert log_ticks(0.05, 3) == [0.05, 0.1, 0.2, 0.5, 1, 2]
    assert log_ticks(1, 1e5, max_labels=6) == [1, 10, 100, 1000, 10000, 100000]
    assert log_ticks(0.6, 0.95) == [0.6, 0.7, 0.8, 0.9]  # too short for 1-2-5: every digit
    chart = batch_chart()
    fig = chart_static.figure(chart)
    try:
        fig.canvas.draw()
        labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels() if t.get_text()]
    finally:
        plt.close(fig)
    assert labels and all(float(text) > 0 for text in labels)
    assert {float(t) / 10 ** np.floor(np.log10(float(t))) for t in labels} <= {1.0, 2.0, 5.0}


def test_interactive_log_axes_carry_plain_one_two_five_labels():
    from optlab.reports import chart_plotly

    fig = chart_plotly.figure(batch_chart())
    axes = [a for name, a in fig.layout.to_plotly_json().items() if name.startswith(("xaxis", "yaxis"))]
    labelled = [a for a in axes if a.get("type") == "log"]
    assert labelled and all(a.get("ticktext") for a in labelled)
    for axis in labelled:
        assert axis["ticktext"] == [f"{v:g}" for v in axis["tickvals"]]
        assert {v / 10 ** np.floor(np.log10(v)) for v in axis["tickvals"]} <= {1.0, 2.0, 5.0}
