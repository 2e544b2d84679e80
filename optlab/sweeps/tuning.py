"""Learning-rate tuning as data (Shallue et al. 2019): every trial is a recorded run; per group the
trial with the best objective is tagged `optlab.selected=true`, the others `false`.

A trial (one setting of the tuned values in one group) is scored by the mean of its objective
over its seeds. For steps_to_target a seed that never reached the target, or any FAILED seed,
scores infinity; ties (e.g. no trial reached the target) fall back to the mean final train loss.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from optlab.sweeps.spec import OBJECTIVES


@dataclass(frozen=True)
class Trial:
    """One finished or failed tuning run, as read back from the store."""
    run_id: str
    group: str
    trial: str
    status: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class Selection:
    group: str
    trial: str               # the selected tuned values, e.g. "lr=0.1"
    score: float             # its objective (mean over seeds; inf when it never reached the target)
    run_ids: tuple[str, ...]  # its runs (one per seed)
    n_trials: int


def score(trial: Trial, objective: str) -> tuple[float, float]:
    """(objective, tie-break) where smaller is better."""
    if trial.status != "FINISHED":
        return math.inf, math.inf
    value = trial.metrics.get(objective)
    if value is None or not math.isfinite(value):
        value = math.inf
    elif OBJECTIVES[objective]:
        value = -value
    loss = trial.metrics.get("train_loss", math.inf)
    return value, loss if math.isfinite(loss) else math.inf


def select(trials: list[Trial], objective: str) -> dict[str, Selection]:
    """The best trial of each group; a group whose trials all failed selects nothing."""
    by_group: dict[str, dict[str, list[Trial]]] = defaultdict(lambda: defaultdict(list))
    for t in trials:
        by_group[t.group][t.trial].append(t)
    chosen = {}
    for group, options in by_group.items():
        scored = []
        for label, runs in options.items():
            parts = [score(r, objective) for r in runs]
            mean = tuple(sum(p[i] for p in parts) / len(parts) for i in range(2))
            scored.append((mean, label, runs))
        (best, tie), label, runs = min(scored, key=lambda s: (s[0], s[1]))
        if math.isinf(best) and math.isinf(tie):
            continue  # every trial failed: nothing to select
        value = -best if OBJECTIVES[objective] and math.isfinite(best) else best
        chosen[group] = Selection(group, label, value, tuple(r.run_id for r in runs), len(options))
    return chosen


def mark(client, trials: list[Trial], selections: dict[str, Selection]) -> None:
    """Tag every trial selected true/false (a rerun may change the choice: no stale `true`)."""
    from mlflow.entities import RunTag

    picked = {run_id for s in selections.values() for run_id in s.run_ids}
    for t in trials:
        client.log_batch(t.run_id, tags=[RunTag("optlab.selected", "true" if t.run_id in picked else "false")])
