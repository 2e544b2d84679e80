"""Per-run measurements read off the store, ready for optlab.analysis: when each run first reached
its validation target on every cost axis, where it stopped, and whether it failed.

The target is the run's own (a validation accuracy, the workload's); reaching it is read from
`val_accuracy` at evaluation points, exactly as the engine's steps_to_target is. Test metrics are
reported, never used here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COST_AXES = ("step", "epoch", "samples_seen", "evaluations", "gradient_equivalents", "wall_time")
COST_NAMES = {
    "step": "steps",
    "epoch": "epochs",
    "samples_seen": "samples seen",
    "evaluations": "function evaluations",
    "gradient_equivalents": "gradient equivalents",
    "wall_time": "wall time (s)",
}


def hits(runs: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """One row per run: `hit_<axis>` (cost at the first evaluation with val_accuracy >= target; NaN if
    never), `stop_<axis>` (cost at its last evaluation), `failed` (status FAILED)."""
    rows = []
    by_run = {run_id: h.sort_values("step") for run_id, h in hist.groupby("run_id")}
    for run in runs.itertuples():
        h = by_run.get(run.run_id)
        row = {"run_id": run.run_id, "failed": run.status == "FAILED"}
        target = getattr(run, "target", np.nan)
        for axis in COST_AXES:
            row[f"hit_{axis}"] = np.nan
            row[f"stop_{axis}"] = np.nan
        if h is not None and len(h):
            last = h.ffill().iloc[-1]  # each axis at the last point that recorded it
            for axis in COST_AXES:
                row[f"stop_{axis}"] = last.get(axis, np.nan)
            if pd.notna(target) and "val_accuracy" in h:
                reached = h[h["val_accuracy"] >= target]
                if len(reached):
                    first = reached.iloc[0]
                    for axis in COST_AXES:
                        row[f"hit_{axis}"] = first.get(axis, np.nan)
        rows.append(row)
    return runs.merge(pd.DataFrame(rows), on="run_id", how="left")
