"""Workloads in the report: gathering the reported runs of experiments, naming each workload and
its protocol in words, and reading each selection's tuning grid back from the trials.

Every comparison in the report is made within one workload (runs with one `workload` value); this
module is where runs are split that way, and where a caption learns what it is about.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from optlab.analysis.sensitivity import EdgeFlag, edge_of_grid
from optlab.reports.load import Store, series_labels


def gather(store: Store, experiments, include_tuning: bool = False) -> tuple[pd.DataFrame | None, list[str]]:
    """Runs of the given experiments that exist (reported runs unless `include_tuning`), with a `label`
    per strategy configuration, and the names of the experiments that do not exist.

    Runs of two sweeps are never one workload: a workload name that two of the experiments use becomes
    'NAME (sweep EXPERIMENT)' in each (experiments/convergence.toml and experiments/modern.toml both have
    a `mnist5k-relu-ce`); a name only one experiment uses is left as it is."""
    frames, missing = [], []
    for name in experiments:
        runs = store.runs(name, include_tuning=include_tuning)
        if runs is None:
            missing.append(name)
        else:
            frames.append(runs)
    if not frames:
        return None, missing
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["status"] != "RUNNING"].reset_index(drop=True)
    runs["family"] = runs["family"].replace("", "unknown")
    runs["workload"] = sweep_names(runs)
    runs["label"] = ""
    for _, group in runs.groupby("workload", sort=False):
        labels = series_labels(group)
        runs.loc[group.index, "label"] = [
            f"{label} ({series})" if isinstance(series, str) and series else label
            for label, series in zip(labels, group["series"])
        ]
    return runs, missing


def sweep_names(runs: pd.DataFrame) -> pd.Series:
    """Each run's workload name, with ' (sweep EXPERIMENT)' added where the name is used by more than one
    experiment."""
    sweeps = runs.groupby("workload")["experiment"].nunique()
    shared = set(sweeps[sweeps > 1].index)
    return pd.Series(
        [f"{w} (sweep {e})" if w in shared else w for w, e in zip(runs["workload"], runs["experiment"])],
        index=runs.index,
    )


def sweep_of(runs: pd.DataFrame) -> str:
    """The one experiment (sweep) the runs of a comparison come from; runs of two sweeps are refused."""
    names = sorted({str(e) for e in runs["experiment"].dropna()}) if "experiment" in runs else []
    if len(names) > 1:
        workload = ", ".join(sorted({str(w) for w in runs["workload"]}))
        raise ValueError(f"workload {workload} pools runs of the sweeps {', '.join(names)}: compare within one sweep")
    return names[0] if names else ""


def ordered(runs: pd.DataFrame) -> list[str]:
    """Workloads grouped by experiment (in the order the experiments were gathered), each experiment's in
    the order of its sweep file (the runs' `optlab.workload_order`; a sweep hands out its longest tasks
    first, so runs start out of that order), else in the order their runs were started."""
    if "experiment" not in runs:
        return list(runs.groupby("workload")["start_time"].min().sort_values().index)
    rank = {name: i for i, name in enumerate(dict.fromkeys(runs["experiment"]))}
    place = (
        pd.to_numeric(runs["workload_order"], errors="coerce")
        if "workload_order" in runs
        else pd.Series(float("nan"), index=runs.index)
    )
    first = (
        runs.assign(place=place)
        .groupby("workload")
        .agg(experiment=("experiment", "first"), place=("place", "min"), start=("start_time", "min"))
    )
    first["sweep"] = first["experiment"].map(rank)
    return list(first.sort_values(["sweep", "place", "start"], kind="stable", na_position="last").index)


def _one(runs: pd.DataFrame, key: str):
    values = runs[key].dropna().unique() if key in runs else []
    values = [v for v in values if str(v) not in ("", "nan", "None")]
    return values[0] if len(values) == 1 else None


def describe(runs: pd.DataFrame) -> str:
    """The workload in words: data and split, network, cost, budget, validation target."""
    parts = []
    dataset = _one(runs, "dataset")
    split = _one(runs, "split")
    if dataset is not None:
        variant = _one(runs, "variant")
        noise = _one(runs, "label_noise")
        data = str(dataset) + (f" (train/val/test {split})" if split else "")
        if variant not in (None, "none"):
            data += f", inputs {variant}"
        if noise not in (None, 0, 0.0):
            data += f", label noise p={noise:g}"
        parts.append(data)
    hidden, activation, cost = _one(runs, "hidden"), _one(runs, "activation"), _one(runs, "cost")
    reference = _one(runs, "workload_ref")
    if reference is not None:  # a user's workload: its network is in its file, not in hidden/activation
        parts.append(f"the network of {reference}")
    elif hidden is not None:
        parts.append(f"hidden {hidden} {activation or ''}".strip())
    if cost is not None:
        parts.append(str(cost).replace("_", "-"))
    budget = [
        f"{_num(_one(runs, k))} {name}"
        for k, name in (("epochs", "epochs"), ("steps", "steps"), ("evaluations", "evaluations"), ("seconds", "s"))
        if _one(runs, k) is not None
    ]
    if budget:
        parts.append("budget " + " or ".join(budget))
    target = _one(runs, "target")
    if target is not None:
        parts.append(f"validation target {target:g}")
    if str(_one(runs, "stop_at_target")).lower() == "true":
        parts.append("runs stop at the target")
    return "; ".join(parts)


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.floating)) else str(value)


def seeds_of(runs: pd.DataFrame) -> list[int]:
    return sorted({int(s) for s in runs["seed"].dropna()})


def protocol(runs: pd.DataFrame) -> str:
    """How the reported runs were obtained: reruns on fresh seeds, trained alone, or plain points."""
    seeds = seeds_of(runs)
    seed_text = f"seeds {', '.join(map(str, seeds))}" if seeds else "unknown seeds"
    roles = set(runs["role"])
    timing = set(runs["timing"])
    how = "trained alone" if timing == {"alone"} else "some trained batched: wall time from those trained alone"
    if "rerun" in roles:
        return f"reported runs: the selected configuration of each strategy rerun on fresh {seed_text} ({how})"
    return f"{len(runs)} runs on {seed_text} ({how})"


AS_GIVEN = "(as given)"  # the trial label a sweep gives a strategy it runs without tuning
NOT_TUNED = "not tuned"


def shown_trial(trial: str) -> str:
    """A trial label as the report shows it: 'not tuned' for a strategy run with its file's settings."""
    return NOT_TUNED if trial == AS_GIVEN else trial


def tuned_axes(trial: str) -> list[str]:
    """Axis names in a trial label such as 'lr=0.1 momentum=0.9' ('(as given)' has none)."""
    return [part.split("=", 1)[0] for part in str(trial).split() if "=" in part]


def group_trials(trials: pd.DataFrame | None, experiment: str, group: str) -> pd.DataFrame:
    """The tuning trials of one tuning group of one sweep (a group's name is only unique within its sweep:
    two sweeps with a workload of the same name have groups of the same name)."""
    if trials is None or not group:
        return pd.DataFrame(columns=["group", "trial", "role"])
    mine = trials[(trials["group"] == group) & (trials["role"] == "tuning")]
    return mine[mine["experiment"] == experiment] if experiment and "experiment" in mine else mine


def trial_count(trials: pd.DataFrame | None, experiment: str, group: str, tagged=None) -> float:
    """Every trial the group ran: its distinct trial settings in the store, so a grid widened by a later
    sweep counts the added values too (the reruns' `optlab.trials` tag keeps the first pass's count when
    the selection did not change). Without tuning trials in the store, the `tagged` count."""
    mine = group_trials(trials, experiment, group)
    if len(mine):
        return float(mine["trial"].nunique())
    return float(tagged) if tagged is not None and pd.notna(tagged) else np.nan


def edge_flags(trials: pd.DataFrame | None, group: str, trial: str, selected: dict, experiment: str) -> list[EdgeFlag]:
    """The edge-of-grid flags of a selection, with its grid read back from the tuning trials of its group
    in its experiment (sweep)."""
    mine = group_trials(trials, experiment, group)
    grid = {}
    for axis in tuned_axes(trial):
        if axis in mine:
            values = sorted({float(v) for v in pd.to_numeric(mine[axis], errors="coerce").dropna()})
            if values:
                grid[axis] = values
    return edge_of_grid({k: float(v) for k, v in selected.items() if k in grid and pd.notna(v)}, grid)


def selection_table(runs: pd.DataFrame, trials: pd.DataFrame | None) -> pd.DataFrame:
    """Per label: the selected values, the tuning budget (every trial its group ran) and edge-of-grid flags."""
    rows = []
    for label, group in runs.groupby("label", sort=True):
        first = group.iloc[0]
        trial = first.get("trial", "") or ""
        axes = tuned_axes(trial)
        selected = {axis: first.get(axis) for axis in axes}
        experiment = str(first.get("experiment", "") or "")
        flags = edge_flags(trials, first.get("group", ""), trial, selected, experiment)
        n_trials = trial_count(trials, experiment, first.get("group", ""), first.get("trials"))
        rows.append(
            {
                "label": label,
                "selected": shown_trial(trial) or "-",
                "trials": int(n_trials) if pd.notna(n_trials) else (1 if trial == AS_GIVEN else np.nan),
                "edge": "; ".join(f.text() for f in flags),
            }
        )
    return pd.DataFrame(rows, columns=["label", "selected", "trials", "edge"]).set_index("label")
