"""Learning-rate (hyperparameter) sensitivity and the edge-of-grid check.

A tuned value that sits at the lowest or highest value of its grid may be the grid's limit rather
than the optimum: the result could improve past it. `edge_of_grid` names such selections; the sweep
summary and the report flag them (DeepOBS shows the sensitivity curve beside each result for the
same reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from optlab.analysis.stats import bootstrap_ci


@dataclass(frozen=True)
class EdgeFlag:
    axis: str
    value: float
    side: str  # "lowest" | "highest" | "only"
    grid: tuple

    def text(self) -> str:
        shown = ", ".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in self.grid)
        if self.side == "only":
            return f"{self.axis}={self.value:g} is the only value tried"
        return f"{self.axis}={self.value:g} is the {self.side} value of its grid [{shown}]"


def edge_of_grid(selected: dict, grid: dict) -> list[EdgeFlag]:
    """Flags for each tuned axis whose selected value is the smallest or largest of its grid.
    Non-numeric axes (e.g. a schedule name) have no order and are never flagged."""
    flags = []
    for axis, values in grid.items():
        if axis not in selected:
            continue
        numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numeric) != len(values):
            continue
        ordered = tuple(sorted(numeric))
        value = selected[axis]
        if len(ordered) == 1:
            flags.append(EdgeFlag(axis, value, "only", ordered))
        elif math.isclose(value, ordered[0]):
            flags.append(EdgeFlag(axis, value, "lowest", ordered))
        elif math.isclose(value, ordered[-1]):
            flags.append(EdgeFlag(axis, value, "highest", ordered))
    return flags


def sensitivity(trials: pd.DataFrame, by: list[str], axis: str, metric: str) -> pd.DataFrame:
    """Per group (`by`) and value of `axis`: the trials' `metric` over seeds, mean with its bootstrap
    CI and the number of seeds that produced a finite value (a failed trial contributes none)."""
    rows = []
    for keys, group in trials.groupby([*by, axis], sort=True, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        values = group[metric].to_numpy(float)
        ci = bootstrap_ci(values)
        rows.append(
            {
                **dict(zip([*by, axis], keys)),
                "mean": ci.estimate,
                "low": ci.low,
                "high": ci.high,
                "finite": int(np.isfinite(values).sum()),
                "trials": len(values),
            }
        )
    return pd.DataFrame(rows, columns=[*by, axis, "mean", "low", "high", "finite", "trials"])
