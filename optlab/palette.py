"""One colour per strategy and one line style per family, everywhere optlab draws a strategy.

The report's figures (HTML and PDF) and the MLflow UI (each run's `mlflow.runColor` tag) take their
colours from here, so adam is the same vermillion in every panel, every section and every chart of
the UI. The table is fixed rather than assigned by sort order: adding a strategy to a sweep never
changes the colour of the others. Strategies compared in one panel (the first-order optimizers of
one kind, the second-order and the gradient-free ones with their first-order baselines) get hues
that stay apart; families are told apart by the line style as well. Lines that are configurations
of one strategy (batch sizes, noise levels) take colours along an ordered scale instead
(`sequential`, `configuration_colors`).
"""

from __future__ import annotations

import hashlib

FAMILIES = ("first-order", "second-order", "zeroth-order")

STRATEGY_COLORS = {
    # first-order, SGD and momentum (Okabe-Ito hues)
    "gd": "#222222",
    "sgd": "#E69F00",
    "minibatch": "#56B4E9",
    "momentum": "#009E73",
    "nesterov": "#0072B2",
    # first-order, adaptive
    "adam": "#D55E00",
    "adamw": "#CC79A7",
    "rmsprop": "#8C6D31",
    "adagrad": "#7570B3",
    # second-order
    "lbfgs": "#AA3377",
    "newton_cg": "#B8A000",
    "kfac": "#44AA99",
    "newton": "#66A61E",
    # zeroth-order
    "ng:OnePlusOne": "#1F77B4",
    "ng:DiagonalCMA": "#9467BD",
    "ng:PSO": "#8C564B",
    "ng:TwoPointsDE": "#17BECF",
    "ng:TBPSA": "#BCBD22",
    "spsa": "#D62728",
    "fd": "#7F7F7F",
}

# strategies outside the table (any other ng:NAME) get one of these, chosen by a stable hash
FALLBACK_COLORS = ("#393B79", "#637939", "#843C39", "#7B4173", "#3182BD", "#E6550D", "#31A354", "#756BB1", "#636363")

# first-order strategies split in two kinds so that no panel needs more than a handful of lines
FIRST_ORDER_KINDS = {
    "gd": "SGD & momentum",
    "sgd": "SGD & momentum",
    "minibatch": "SGD & momentum",
    "momentum": "SGD & momentum",
    "nesterov": "SGD & momentum",
    "adam": "adaptive",
    "adamw": "adaptive",
    "rmsprop": "adaptive",
    "adagrad": "adaptive",
}

FAMILY_DASHES = {"first-order": "solid", "second-order": "dash", "zeroth-order": "dot"}
OTHER_DASH = "dashdot"
# plotly dash names -> matplotlib line styles
MATPLOTLIB_DASHES = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}


def color(strategy: str) -> str:
    """The strategy's colour as #RRGGBB."""
    strategy = str(strategy)
    if strategy in STRATEGY_COLORS:
        return STRATEGY_COLORS[strategy]
    digest = hashlib.sha256(strategy.encode()).digest()
    return FALLBACK_COLORS[digest[0] % len(FALLBACK_COLORS)]


def sequential(n: int) -> list[str]:
    """n colours (#RRGGBB) along an ordered scale, dark to light: viridis without its pale yellow end (the
    samples seaborn's `color_palette("viridis", n + 1)[:n]` takes), for ordered lines such as batch sizes."""
    if n <= 0:
        return []
    import numpy as np
    from matplotlib import colormaps

    scale = colormaps["viridis"]
    return [
        "#" + "".join(f"{round(255 * float(c)):02X}" for c in scale(x)[:3]) for x in np.linspace(0, 1, n + 3)[1:-1][:n]
    ]


def configuration_colors(strategies: dict[str, str]) -> dict[str, str]:
    """The colours of compared configurations (label -> its strategy, in their order): each its strategy's
    colour when every configuration is a different strategy, else one colour each along the ordered scale
    in the given order (the configurations of one strategy would otherwise share one colour)."""
    if len(set(strategies.values())) == len(strategies):
        return {label: color(strategy) for label, strategy in strategies.items()}
    return dict(zip(strategies, sequential(len(strategies))))


def dash(family: str | None) -> str:
    """The family's line style, as a plotly dash name (solid, dash, dot, dashdot)."""
    return FAMILY_DASHES.get(str(family), OTHER_DASH)


def matplotlib_dash(family: str | None):
    return MATPLOTLIB_DASHES[dash(family)]


SECOND_ORDER = ("lbfgs", "newton_cg", "kfac", "newton")
ZEROTH_ORDER = ("spsa", "fd")


def family(strategy: str) -> str:
    """The family of a strategy known here (ng:NAME is zeroth-order); 'other' for an unknown name."""
    strategy = str(strategy)
    if strategy in FIRST_ORDER_KINDS:
        return "first-order"
    if strategy in SECOND_ORDER:
        return "second-order"
    if strategy in ZEROTH_ORDER or strategy.startswith("ng:"):
        return "zeroth-order"
    return "other"


def family_order(family: str) -> int:
    return FAMILIES.index(family) if family in FAMILIES else len(FAMILIES)


def strategy_order(strategy: str) -> tuple[int, str]:
    """Sort key: the table's order (families together), unknown strategies after, by name."""
    names = list(STRATEGY_COLORS)
    return (names.index(strategy), "") if strategy in STRATEGY_COLORS else (len(names), str(strategy))


PANEL_GROUPS = ("first-order: SGD & momentum", "first-order: adaptive", "second-order", "zeroth-order")


def panel_order(group: str) -> tuple[int, str]:
    return (PANEL_GROUPS.index(group), "") if group in PANEL_GROUPS else (len(PANEL_GROUPS), group)


def panel_group(strategy: str, family: str | None) -> str:
    """The panel a strategy is drawn in when a figure is faceted by kind of method: its family,
    with first-order methods split into SGD & momentum and adaptive ones."""
    family = str(family) if family else "other"
    kind = FIRST_ORDER_KINDS.get(str(strategy)) if family == "first-order" else None
    return f"{family}: {kind}" if kind else family
