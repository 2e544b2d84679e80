"""Whether compared final values came from comparable amounts of work: a ranking of final values over
strategies that spent very different work (a gradient-free method's thousand evaluations against a few
passes of adam) says so beside it."""

from __future__ import annotations

import pandas as pd

from optlab.analysis.numbers import significant

UNEQUAL = 10.0  # the most / least work (mean gradient-equivalents) from which a ranking is said to be unequal


WORK = "final_gradient_equivalents"  # a run's work at its end, as the report's loader names it


def amount(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{significant(value)}"


def unequal_work(runs: pd.DataFrame, by: str = "label") -> str:
    """A sentence stating the work behind each compared final value when it differs by UNEQUAL-fold or more
    ("" otherwise)."""
    if WORK not in runs or by not in runs:
        return ""
    work = runs.groupby(by)[WORK].mean().dropna()
    work = work[work > 0]
    if len(work) < 2 or work.max() / work.min() < UNEQUAL:
        return ""
    listed = ", ".join(f"{name} {amount(value)}" for name, value in work.sort_values(ascending=False).items())
    return (
        f"These final values come from unequal work: {listed} gradient-equivalents (mean over seeds), a "
        f"{work.max() / work.min():,.0f}-fold range; the ranking compares each at the end of its own budget, "
        f"not at equal work (the curves against gradient-equivalents do)."
    )


def budget_exceeded(runs: pd.DataFrame, by: str = "label") -> str:
    """A sentence naming the compared configurations whose runs went past the workload's epoch budget (a
    strategy whose step is a whole inner solve can end beyond it), "" when none did."""
    if "epochs" not in runs or "final_epoch" not in runs or by not in runs:
        return ""
    over = runs[(runs["final_epoch"] > runs["epochs"] * (1 + 1e-6)) & runs["epochs"].notna()]
    if over.empty:
        return ""
    parts = [
        f"{name} up to {significant(group['final_epoch'].max())} epochs "
        f"({len(group)} of {int((runs[by] == name).sum())} runs)"
        for name, group in over.groupby(by)
    ]
    return (
        f"Past the budget of {amount(float(over['epochs'].max()))} epochs: {', '.join(parts)}; their last step "
        f"ended beyond it, and their final values include that extra work."
    )
