"""Seed groups: one MLflow run per compared configuration of a sweep, so the UI shows one line per
configuration without hand-made filters.

A configuration is a workload × strategy × the values it was run with (the selected trial of a tuning
group, or a point of an untuned sweep) × its series; its reported runs differ only in their seed. Its
group run (tag `optlab.role=group`, a child of the sweep's parent) carries

- `final/<metric>/mean`, `/ci_low`, `/ci_high`: the mean over seeds of each final metric every finished
  member recorded, with its 95 % BCa bootstrap interval, to `SIGNIFICANT_DIGITS` significant digits (they
  are read in the UI's table; the report computes its own). The intervals of a group's metrics come from
  one vectorized scipy.stats.bootstrap (`optlab.analysis.stats.bootstrap_band`: same method, resample
  count and seed as `bootstrap_ci`, but resamples drawn for all the metrics at once, so a bound can differ
  from a per-metric `bootstrap_ci` in its last digits); a metric with a non-finite value gets
  `bootstrap_ci` of its finite values. Metrics only
  some members reached (steps to a target) are left to the report, which counts the misses;
- the mean curves on the configuration's work grid: every evaluation metric (losses, accuracies, and the
  other cost axes: epoch, samples seen, evaluations, wall time) interpolated at `GRID_POINTS` values of
  gradient-equivalents that every member covers, averaged over the members and logged as a stepped metric
  (step i = grid point i, `gradient_equivalents` = the grid itself), so the UI's charts against
  gradient-equivalents or wall time draw the group like any run.

The per-seed runs become the group run's children (`mlflow.parentRunId`). Recording is idempotent: a
group whose members have not changed is left as it is; one whose members changed is replaced. Once a
sweep's groups are recorded, each carries its verdict against its workload's best (group_verdicts.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict

import numpy as np

from optlab.config import RunConfig
from optlab.sweeps import group_verdicts, resume
from optlab.tracking import ui
from optlab.tracking.bulk_runs import RunRows

ROLE = "group"
KEY_TAG = "optlab.group_key"
MEMBERS_TAG = "optlab.members"
FINAL_KEYS = (
    "val_accuracy",
    "test_accuracy",
    "train_accuracy",
    "val_loss",
    "test_loss",
    "train_loss",
    "wall_time",
    "gradient_equivalents",
    "epoch",
)
CURVE_KEYS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "epoch",
    "samples_seen",
    "evaluations",
    "wall_time",
)
X_KEY = "gradient_equivalents"
GRID_POINTS = 60
SIGNIFICANT_DIGITS = 4
# params that differ between seeds of one configuration
NOT_CONFIGURATION = RunConfig.fields_with_role("seed", "identity")
COPIED_TAGS = (
    "optlab.sweep",
    "optlab.strategy",
    "optlab.family",
    "optlab.workload",
    "optlab.workload_hash",
    "optlab.series",
    "optlab.group",
    "optlab.trial",
    "optlab.trials",
    "optlab.dataset",
    "optlab.timing",
)


def reported(run) -> bool:
    """A run the report compares: a rerun still selected, or a point of an untuned sweep or series."""
    tags = run.data.tags
    role = tags.get("optlab.role")
    return role == "point" or (role == "rerun" and tags.get("optlab.selected", "true").lower() != "false")


def configuration_key(run) -> str:
    params = {k: v for k, v in run.data.params.items() if k not in NOT_CONFIGURATION}
    identity = {
        "params": params,
        "series": run.data.tags.get("optlab.series", ""),
        "workload": run.data.tags.get("optlab.workload_hash", run.data.tags.get("optlab.workload", "")),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def group_name(member_name: str, seeds: list) -> str:
    """'adam lr=0.01 rerun seed=100' -> 'adam lr=0.01 rerun (5 seeds: 100-104)'."""
    stem = " ".join(part for part in member_name.split() if not part.startswith("seed="))
    shown = (
        f"{min(seeds)}-{max(seeds)}" if seeds == list(range(min(seeds), max(seeds) + 1)) else ",".join(map(str, seeds))
    )
    return f"{stem} ({len(seeds)} seeds: {shown})"


def record(client, experiment_id: str, parent_run_id: str, sweep: str, tags_out: list | None = None) -> list[str]:
    """Create or refresh the group run of every configuration with two or more reported runs, one of them
    finished; returns the group runs' ids. The store is read a fixed number of times (the sweep's runs, its
    group runs, and each curve key of every new group's members at once), whatever the number of groups.
    With `tags_out` the runs' tags (each member's group, each group's verdict) are appended to it as
    (run id, key, value) for the caller to set with others (on a tracking server one call per run for all
    of them), not set here."""
    from optlab.tracking.bulk_reads import metric_histories
    from optlab.tracking.bulk_runs import set_tags, write_runs

    children = resume.children(client, experiment_id, sweep)
    members = defaultdict(list)
    for run in children:
        if reported(run) and run.info.status in ("FINISHED", "FAILED"):
            members[configuration_key(run)].append(run)
    existing = defaultdict(list)
    for run in groups(client, experiment_id, sweep):
        existing[run.data.tags.get(KEY_TAG)].append(run)
    wanted = {}
    for key, runs in members.items():
        runs = one_per_seed(runs)
        if len(runs) < 2 or not any(r.info.status == "FINISHED" for r in runs):
            continue  # one seed is not a group; a group of failures has nothing to aggregate
        runs = sorted(runs, key=lambda r: int(float(r.data.params.get("seed", 0))))
        signature = hashlib.sha256(json.dumps([(r.info.run_id, r.info.status) for r in runs]).encode()).hexdigest()[:16]
        wanted[key] = (runs, signature)
    new = [
        r.info.run_id
        for key, (runs, signature) in wanted.items()
        if not any(g.data.tags.get(MEMBERS_TAG) == signature for g in existing.get(key, []))
        for r in runs
        if r.info.status == "FINISHED"
    ]
    histories = metric_histories(client, new, [X_KEY, *CURVE_KEYS]) if new else {}
    group_of, names, new = {}, {}, []
    for key, (_runs, signature) in wanted.items():
        olds = existing.pop(key, [])
        keep = next((g for g in olds if g.data.tags.get(MEMBERS_TAG) == signature), None)
        for old in olds:
            if old is not keep:
                retire(client, old)
        if keep is not None:
            group_of[key] = keep.info.run_id
            names[keep.info.run_id] = keep.info.run_name
        else:
            new.append(key)
    rows = [group_rows(parent_run_id, key, wanted[key][1], wanted[key][0], histories) for key in new]
    created = write_runs(client, experiment_id, rows)
    group_of.update(zip(new, created))
    names.update({run_id: row.name for run_id, row in zip(created, rows)})
    parents = [
        (run.info.run_id, "mlflow.parentRunId", group_of[key])
        for key, (runs, _) in wanted.items()
        for run in runs
        if run.data.tags.get("mlflow.parentRunId") != group_of[key]
    ]
    stale = {g.info.run_id for olds in existing.values() for g in olds}  # configurations gone below two runs
    parents += [
        (run.info.run_id, "mlflow.parentRunId", parent_run_id)
        for run in children
        if run.data.tags.get("mlflow.parentRunId") in stale
    ]
    tags = tags_out if tags_out is not None else []
    tags += parents  # before the verdicts: a comparison that fails still leaves each run in its group
    try:
        tags += group_verdicts.tags(client, {group_of[key]: runs for key, (runs, _) in wanted.items()}, names)
    finally:
        if tags_out is None:
            set_tags(client, tags)
    for olds in existing.values():
        for old in olds:
            retire(client, old)
    return [group_of[key] for key in wanted]


def one_per_seed(runs: list) -> list:
    """A seed counts once: its FINISHED run, else its latest FAILED one (retries of a point that failed to be
    stored, then finished, are not more seeds)."""
    chosen = {}
    for run in sorted(runs, key=lambda r: (r.info.status == "FINISHED", r.info.start_time)):
        chosen[seed_of(run)] = run
    return list(chosen.values())


def seed_of(run) -> int:
    return int(float(run.data.params.get("seed", 0)))


def retire(client, group_run) -> None:
    """A superseded group run: ended (a group run whose recording failed midway is still RUNNING), then deleted."""
    if group_run.info.status == "RUNNING":
        client.set_terminated(group_run.info.run_id, "KILLED")
    client.delete_run(group_run.info.run_id)


def groups(client, experiment_id: str, sweep: str, key: str | None = None) -> list:
    return resume.search_tags(
        client, experiment_id, {"optlab.sweep": sweep, "optlab.role": ROLE, **({KEY_TAG: key} if key else {})}
    )


def group_rows(parent_run_id: str, key: str, signature: str, runs: list, histories: dict) -> RunRows:
    """The group run of `runs` (bulk_runs.write_runs records it); `histories`: their curves
    (bulk_reads.metric_histories)."""
    first = runs[0]
    seeds = [int(float(r.data.params.get("seed", 0))) for r in runs]
    finished = [r for r in runs if r.info.status == "FINISHED"]
    strategy = first.data.tags.get("optlab.strategy", "")
    tags = {k: first.data.tags[k] for k in COPIED_TAGS if k in first.data.tags}
    tags.update(
        {
            "optlab.role": ROLE,
            KEY_TAG: key,
            MEMBERS_TAG: signature,
            "mlflow.parentRunId": parent_run_id,
            "optlab.seeds": ",".join(map(str, seeds)),
            "optlab.finished": f"{len(finished)}/{len(runs)}",
            **ui.run_tags(strategy),
            ui.NOTE_TAG: (
                f"Seed group: {len(runs)} runs of one configuration (seeds {', '.join(map(str, seeds))}; "
                f"{len(finished)} finished). `final/<metric>/mean` and its 95 % bootstrap interval "
                f"`ci_low`/`ci_high` are over the finished runs' final values; the curves are their "
                f"mean on a common grid of gradient-equivalents (step = grid point). The runs "
                f"themselves are this run's children."
            ),
            "optlab.status": "FINISHED",
        }
    )
    params = {k: str(v)[:6000] for k, v in first.data.params.items() if k not in NOT_CONFIGURATION}
    params["seeds"] = ",".join(map(str, seeds))
    metrics = [(name, value, 0) for name, value in final_metrics(finished).items()]
    metrics += [(name, value, step) for name, step, value in mean_curves(histories, finished)]
    return RunRows(group_name(first.info.run_name or strategy, seeds), tags, params, metrics)


def final_metrics(runs: list) -> dict[str, float]:
    """final/<key>/mean, /ci_low, /ci_high for every key all `runs` recorded (finite bounds only). The keys
    whose values are all finite share one vectorized bootstrap (`bootstrap_band`), the others get
    `bootstrap_ci` of their finite values; see the module's docstring."""
    from optlab.analysis.stats import bootstrap_band, bootstrap_ci

    recorded = {}
    for key in FINAL_KEYS:
        values = [r.data.metrics.get(key) for r in runs]
        if runs and not any(v is None for v in values):
            recorded[key] = np.sort(np.asarray(values, dtype=float))
    finite = [key for key, values in recorded.items() if np.isfinite(values).all()]
    intervals = {}
    if finite:
        _, low, high = bootstrap_band(np.stack([recorded[key] for key in finite], axis=1))
        intervals = {key: (float(np.mean(recorded[key])), low[i], high[i]) for i, key in enumerate(finite)}
    for key in recorded.keys() - intervals.keys():
        ci = bootstrap_ci(recorded[key])
        intervals[key] = (ci.estimate, ci.low, ci.high)
    out = {}
    for key in recorded:
        for part, value in zip(("mean", "ci_low", "ci_high"), intervals[key]):
            if math.isfinite(value):
                out[f"final/{key}/{part}"] = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    return out


def mean_curves(histories: dict, runs: list) -> list[tuple[str, int, float]]:
    """(metric, step, value): the members' curves averaged on the work grid every member covers.
    `histories`: {(run_id, key): {step: value}} (bulk_reads.metric_histories)."""
    from optlab.analysis.axes import spans_decades
    from optlab.analysis.curves import common_grid, on_grid

    if len(runs) < 1:
        return []
    xs = []
    for run in runs:
        x = histories.get((run.info.run_id, X_KEY), {})
        if len(x) < 2:
            return []
        xs.append((run.info.run_id, x))
    grid = common_grid(
        [(list(x.values()), list(x.values())) for _, x in xs],
        points=GRID_POINTS,
        log=spans_decades([v for _, x in xs for v in x.values()]),
    )
    if len(grid) == 0:
        return []
    out = [(X_KEY, i, float(v)) for i, v in enumerate(grid)]
    for key in CURVE_KEYS:
        curves = []
        for run_id, x in xs:
            y = histories.get((run_id, key), {})
            steps = sorted(set(x) & set(y))
            if len(steps) < 2:
                break
            curves.append(on_grid([x[s] for s in steps], [y[s] for s in steps], grid))
        else:
            mean = np.mean(np.stack(curves), axis=0)
            out += [(key, i, float(v)) for i, v in enumerate(mean) if math.isfinite(v)]
    return out
