"""One look for every figure: Agg backend, seaborn theme, a fixed strategy palette."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from optlab import palette as strategy_colors  # noqa: E402
from optlab.reports.load import quiet_warnings  # noqa: E402
from optlab.reports.natural import natural_sorted  # noqa: E402


def setup() -> None:
    quiet_warnings()
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update(
        {
            "figure.max_open_warning": 0,  # a report holds dozens of figures until it is written
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "axes.titleweight": "bold",
            "legend.fontsize": 8,
            "legend.title_fontsize": 8,
        }
    )


def palette(labels) -> dict:
    """Label -> colour. A strategy, or a label starting with one ("adam lr=0.01"), gets the strategy's
    fixed colour (optlab.palette), the same in every figure; other labels take tab10 in natural order."""
    labels = natural_sorted(set(map(str, labels)))  # "B=2" before "B=16": colours follow the numbers
    others = [label for label in labels if not _strategy_of(label)]
    colors = dict(zip(others, sns.color_palette("tab10" if len(others) <= 10 else "tab20", len(others))))
    strategies = {label: _strategy_of(label) for label in labels}
    return {label: strategy_colors.color(s) if s else colors[label] for label, s in strategies.items()}


def sequential(n: int) -> list[str]:
    """n colours along an ordered scale (optlab.palette.sequential, the MLflow UI's too), for ordered lines
    such as label-noise levels or batch sizes."""
    return strategy_colors.sequential(n)


def _strategy_of(label: str) -> str | None:
    first = label.split(" ", 1)[0]
    return first if first in strategy_colors.STRATEGY_COLORS or first.startswith("ng:") else None


def figure(rows: int = 1, cols: int = 1, width: float = 5.0, height: float = 3.6, **kw):
    return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kw)
