"""The verdict of each seed-group run against its workload's best, as tags the MLflow UI can filter on.

After a sweep's reruns are done and its seed groups recorded (seed_groups.py), the groups of one workload
are compared as the report compares them (optlab.analysis.verdicts): final test accuracy, the best chosen
on final validation accuracy — or, on a workload whose runs stop at the target, gradient equivalents to
the validation target (a run that did not reach it is censored at its last cost), the best being the
configuration that reached it on most seeds, then fastest. Each group run gets

- `optlab.verdict`: best | better | equivalent | worse | undecided (against the best),
- `optlab.verdict_vs`: the best group's run name, `optlab.verdict_metric`: the compared metric,
- `optlab.verdict_detail`: the comparison in words (difference, test, Holm p, margin, seeds needed).

The report's numbers come from the store, not from these tags; the tags are a view of the same verdicts.
"""

from __future__ import annotations

import gc
import json
import math
from collections import defaultdict

import pandas as pd

VERDICT_TAG = "optlab.verdict"
VS_TAG = "optlab.verdict_vs"
METRIC_TAG = "optlab.verdict_metric"
DETAIL_TAG = "optlab.verdict_detail"


def _seed(run) -> int:
    return int(float(run.data.params.get("seed", 0)))


def _stops(runs: list) -> bool:
    return str(runs[0].data.params.get("stop_at_target", "")).lower() == "true"


def _reached(run) -> bool:
    target = run.data.params.get("target")
    accuracy = run.data.metrics.get("val_accuracy")
    try:
        return run.info.status == "FINISHED" and accuracy is not None and accuracy >= float(target)
    except (TypeError, ValueError):
        return False


def workload_frames(members: dict[str, list], stops: bool) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """(values, validation-or-reached, censored) as seeds x group ids."""
    values, second, censored = {}, {}, {}
    for gid, runs in members.items():
        if stops:
            values[gid] = {_seed(r): r.data.metrics.get("gradient_equivalents", math.nan) for r in runs}
            second[gid] = {_seed(r): float(_reached(r)) for r in runs}
            censored[gid] = {_seed(r): not _reached(r) for r in runs}
        else:
            done = [r for r in runs if r.info.status == "FINISHED"]
            values[gid] = {_seed(r): r.data.metrics.get("test_accuracy", math.nan) for r in done}
            second[gid] = {_seed(r): r.data.metrics.get("val_accuracy", math.nan) for r in done}
    frame = lambda d: pd.DataFrame(d).astype(float)
    return frame(values), frame(second), (pd.DataFrame(censored).fillna(True).astype(bool) if stops else None)


def tags(client, groups: dict[str, list], run_names: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """The verdict tags (run id, key, value) of every group run of a workload with two or more groups.
    `groups`: group run id -> its member runs (seeds of one configuration); `run_names`: group run id -> its
    run name, where the caller knows them (else each is read from the store).

    The comparisons run with the objects already in memory frozen out of the garbage collector
    (`gc.freeze`): statsmodels' Holm correction calls `gc.collect()`, which otherwise walks every run
    entity of the sweep, seconds per workload on a sweep of two thousand runs."""
    from optlab.analysis import verdicts

    found: list[tuple[str, str, str]] = []
    by_workload: dict[str, dict[str, list]] = defaultdict(dict)
    for gid, runs in groups.items():
        by_workload[runs[0].data.tags.get("optlab.workload", "")][gid] = runs
    for members in by_workload.values():
        if len(members) < 2:
            continue
        stops = _stops(next(iter(members.values())))
        metric = verdicts.METRICS["time_to_target" if stops else "test_accuracy"]
        values, second, censored = workload_frames(members, stops)
        values = values.loc[:, values.notna().any()]
        if values.shape[1] < 2:
            continue
        if stops:
            score = pd.DataFrame({"reached": second.mean(), "cost": values.mean()}).loc[values.columns]
            best = str(score.sort_values(["reached", "cost"], ascending=[False, True]).index[0])
        else:
            best = verdicts.best_on(second[values.columns], larger_is_better=True)
        margin = declared_margin(next(iter(members.values())), metric.name)
        if censored is not None:
            censored = censored.reindex_like(values).fillna(True)
        gc.freeze()
        try:
            rows = verdicts.comparisons(values, metric, best, margin=margin, censored=censored)
        finally:
            gc.unfreeze()
        known = run_names or {}
        names = {
            gid: (known[gid] if gid in known else client.get_run(gid).info.run_name) or gid for gid in values.columns
        }
        for gid in values.columns:
            row = rows[rows["a"] == gid]
            verdict = "best" if gid == best else (row["verdict"].iloc[0] if len(row) else "undecided")
            detail = (
                "best on validation"
                if gid == best
                else verdicts.verdict_text(row.iloc[0].replace({gid: names[gid], best: names[best]}), metric)
            )
            found += [
                (gid, VERDICT_TAG, verdict),
                (gid, VS_TAG, names[best]),
                (gid, METRIC_TAG, metric.name),
                (gid, DETAIL_TAG, detail[:5000]),
            ]
    return found


def declared_margin(runs: list, metric: str) -> float | None:
    from optlab.sweeps.spec import MARGINS_TAG

    text = runs[0].data.tags.get(MARGINS_TAG, "")
    try:
        value = json.loads(text).get(metric) if text else None
    except (ValueError, AttributeError):
        return None
    return float(value) if value is not None else None
