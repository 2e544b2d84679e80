"""One look for every figure: Agg backend, seaborn theme, a fixed strategy palette."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from optlab.reports.load import quiet_warnings  # noqa: E402


def setup() -> None:
    quiet_warnings()
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update({"figure.max_open_warning": 0,  # a report holds dozens of figures until it is written
                         "figure.dpi": 100, "savefig.dpi": 110, "axes.titleweight": "bold",
                         "legend.fontsize": 8, "legend.title_fontsize": 8})


def palette(labels) -> dict:
    labels = sorted(set(labels))  # sorted: the same strategy gets the same colour in every section
    colors = sns.color_palette("tab10" if len(labels) <= 10 else "tab20", len(labels))
    return dict(zip(labels, colors))


def figure(rows: int = 1, cols: int = 1, width: float = 5.0, height: float = 3.6, **kw):
    return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kw)
