"""Hyperparameter tuning as data (Shallue et al. 2019; DeepOBS): every trial is a recorded run; per
group the trial with the best objective is tagged `optlab.selected=true`, the others `false`, and the
selection is then rerun on fresh seeds (spec.SweepSpec.reruns) for the reported numbers.

A trial (one setting of the tuned values in one group, on every tuning seed) is scored on
validation (or training) metrics only, never on test metrics:
- steps_to_target: first the number of seeds that never reached the (validation) target, then the
  mean steps of those that did, then the mean final validation loss;
- any other objective: its mean final value over the seeds (maximized for accuracies), then the
  mean final validation loss.
A trial with a FAILED seed (diverged) is never selected; a group whose trials all failed selects nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from optlab.analysis.sensitivity import EdgeFlag, edge_of_grid
from optlab.sweeps.spec import OBJECTIVES, Group

TIE_BREAK = "val_loss"


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
    trial: str  # the selected tuned values, e.g. "lr=0.1"
    score: float  # its objective: mean over seeds (steps_to_target: over the seeds that reached it)
    run_ids: tuple[str, ...]  # its runs (one per tuning seed)
    n_trials: int  # the tuning budget: trials in the group
    reached: tuple[int, int] | None = None  # steps_to_target: (seeds that reached the target, seeds)
    edge: tuple[EdgeFlag, ...] = field(default=())  # tuned values at the edge of their grid

    def text(self, objective: str) -> str:
        if objective == "steps_to_target" and self.reached is not None:
            hit, n = self.reached
            value = f"{self.score:.4g}" if math.isfinite(self.score) else "never"
            return f"{self.trial} (steps_to_target {value}, reached {hit}/{n})"
        return f"{self.trial} ({objective} {self.score:.4g})"


def _value(metrics: dict, key: str, sign: float = 1.0) -> float:
    """sign * the metric, or infinity (worst) when it is missing or not finite."""
    value = metrics.get(key)
    return sign * value if value is not None and math.isfinite(value) else math.inf


def score(runs: list[Trial], objective: str) -> tuple[float, float, float]:
    """(misses, objective, tie-break), smaller is better, for one trial's runs over its seeds."""
    if not runs or any(r.status != "FINISHED" for r in runs):
        return math.inf, math.inf, math.inf
    tie = sum(_value(r.metrics, TIE_BREAK) for r in runs) / len(runs)
    if objective == "steps_to_target":
        hits = [_value(r.metrics, objective) for r in runs]
        reached = [h for h in hits if math.isfinite(h)]
        return len(runs) - len(reached), (sum(reached) / len(reached) if reached else math.inf), tie
    values = [_value(r.metrics, objective, -1.0 if OBJECTIVES[objective] else 1.0) for r in runs]
    return 0.0, sum(values) / len(values), tie


def select(trials: list[Trial], objective: str, groups: dict[str, Group] | None = None) -> dict[str, Selection]:
    """The best trial of each group; a group whose trials all failed selects nothing. With `groups`
    (from the spec), each selection carries its edge-of-grid flags."""
    by_group: dict[str, dict[str, list[Trial]]] = defaultdict(lambda: defaultdict(list))
    for t in trials:
        by_group[t.group][t.trial].append(t)
    chosen = {}
    for group, options in by_group.items():
        scored = sorted(
            ((score(runs, objective), label, runs) for label, runs in options.items()), key=lambda s: (s[0], s[1])
        )
        (misses, best, tie), label, runs = scored[0]
        if math.isinf(misses) or (math.isinf(best) and math.isinf(tie)):
            continue  # every trial failed: nothing to select
        value = -best if OBJECTIVES[objective] and math.isfinite(best) else best
        reached = (len(runs) - int(misses), len(runs)) if objective == "steps_to_target" else None
        n_trials = len(groups[group].trials) if groups and group in groups else len(options)
        edge = tuple(edge_flags(groups[group], label)) if groups and group in groups else ()
        chosen[group] = Selection(group, label, value, tuple(r.run_id for r in runs), n_trials, reached, edge)
    return chosen


def edge_flags(group: Group, trial: str) -> list[EdgeFlag]:
    """Tuned values of `trial` that sit at the lowest or highest value of the group's grid."""
    config = group.trials.get(trial)
    if config is None or not group.tuned:
        return []
    return edge_of_grid({axis: getattr(config, axis) for axis in group.grid}, group.grid)


def mark(client, trials: list[Trial], selections: dict[str, Selection]) -> None:
    """Tag every trial selected true/false (a rerun may change the choice: no stale `true`)."""
    from mlflow.entities import RunTag

    picked = {run_id for s in selections.values() for run_id in s.run_ids}
    for t in trials:
        client.log_batch(t.run_id, tags=[RunTag("optlab.selected", "true" if t.run_id in picked else "false")])
