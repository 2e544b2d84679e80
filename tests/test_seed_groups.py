"""Seed-group runs: one per compared configuration, aggregating its seeds, with its seed runs as children."""

from __future__ import annotations

import numpy as np
import pytest
from sweep_helpers import write_spec

from optlab.analysis.curves import common_grid, on_grid
from optlab.analysis.stats import bootstrap_ci
from optlab.sweeps import load, run_sweep, seed_groups

BODY = """
[grid]
strategy = ["minibatch", "adam"]
[tune]
lr = [0.1, 0.5]
objective = "val_loss"
seeds = [0]
[rerun]
seeds = [100, 101, 102]
[overrides.adam.tune]
lr = [0.003, 0.03]
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    from optlab.tracking.store import client

    home = tmp_path_factory.mktemp("groups")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        spec = load(write_spec(home, BODY, name="grouped", steps=30))
        report = run_sweep(spec, progress=False)
        c = client()
        experiment_id = c.get_experiment_by_name("grouped").experiment_id
        yield {"spec": spec, "report": report, "client": c, "experiment_id": experiment_id, "home": home}


def runs_of(swept):
    from optlab.sweeps.resume import search_all

    return search_all(swept["client"], swept["experiment_id"], "")


def test_each_configuration_has_one_group_run_whose_children_are_its_seeds(swept):
    runs = runs_of(swept)
    groups = [r for r in runs if r.data.tags.get("optlab.role") == "group"]
    reruns = [r for r in runs if r.data.tags.get("optlab.role") == "rerun"]
    assert len(groups) == 2 and len(reruns) == 6
    by_id = {g.info.run_id: g for g in groups}
    for group in groups:
        assert group.data.tags["mlflow.parentRunId"] == swept["report"].parent_run_id
        kids = [r for r in reruns if r.data.tags["mlflow.parentRunId"] == group.info.run_id]
        assert sorted(int(r.data.params["seed"]) for r in kids) == [100, 101, 102]
        assert {r.data.tags["optlab.strategy"] for r in kids} == {group.data.tags["optlab.strategy"]}
        assert group.info.run_name.endswith("(3 seeds: 100-102)") and "seed=" not in group.info.run_name
    assert set(by_id) == {r.data.tags["mlflow.parentRunId"] for r in reruns}
    names = [r.info.run_name for r in runs if r.data.tags.get("optlab.role") != "parent"]
    assert len(set(names)) == len(names)  # unique within the experiment, groups included


def test_group_metrics_are_the_mean_and_bootstrap_interval_over_its_seeds(swept):
    runs = runs_of(swept)
    c = swept["client"]
    for group in [r for r in runs if r.data.tags.get("optlab.role") == "group"]:
        kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == group.info.run_id]
        values = np.array([k.data.metrics["val_accuracy"] for k in kids])
        ci = bootstrap_ci(values)
        metrics = group.data.metrics
        assert metrics["final/val_accuracy/mean"] == pytest.approx(values.mean(), rel=1e-3)
        shown = [v for k, v in metrics.items() if k.startswith("final/")]
        assert shown and all(v == float(f"{v:.4g}") for v in shown)  # the UI's table shows 4 significant digits
        if np.isfinite(ci.low):
            assert metrics["final/val_accuracy/ci_low"] == pytest.approx(ci.low, rel=1e-3)
            assert metrics["final/val_accuracy/ci_high"] == pytest.approx(ci.high, rel=1e-3)
        # the mean curve on the common grid of gradient-equivalents, one step per grid point
        grid = [
            p.value
            for p in sorted(c.get_metric_history(group.info.run_id, "gradient_equivalents"), key=lambda p: p.step)
        ]
        curve = {p.step: p.value for p in c.get_metric_history(group.info.run_id, "val_accuracy")}
        assert len(grid) == seed_groups.GRID_POINTS and np.all(np.diff(grid) > 0)
        members = []
        for kid in kids:
            x = {p.step: p.value for p in c.get_metric_history(kid.info.run_id, "gradient_equivalents")}
            y = {p.step: p.value for p in c.get_metric_history(kid.info.run_id, "val_accuracy")}
            steps = sorted(set(x) & set(y))
            members.append(([x[s] for s in steps], [y[s] for s in steps]))
        expected_grid = common_grid([(x, x) for x, _ in members], points=seed_groups.GRID_POINTS)
        assert np.allclose(grid, expected_grid)
        mean = np.mean([on_grid(x, y, expected_grid) for x, y in members], axis=0)
        assert np.allclose([curve[i] for i in range(len(grid))], mean)


def test_a_resumed_sweep_keeps_its_group_runs_and_reports_ignore_them(swept, monkeypatch):
    before = sorted(r.info.run_id for r in runs_of(swept) if r.data.tags.get("optlab.role") == "group")
    monkeypatch.setenv("OPTLAB_HOME", str(swept["home"]))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run_sweep(swept["spec"], progress=False)
    after = sorted(r.info.run_id for r in runs_of(swept) if r.data.tags.get("optlab.role") == "group")
    assert after == before
    from optlab.reports.load import Store

    frame = Store().runs("grouped")
    assert set(frame["role"]) == {"rerun"} and len(frame) == 6


def test_each_group_carries_its_verdict_against_the_workloads_best(swept):
    from optlab.analysis import verdicts

    runs = runs_of(swept)
    groups = [r for r in runs if r.data.tags.get("optlab.role") == "group"]
    tags = {g.info.run_name: g.data.tags for g in groups}
    # the best is the group with the higher mean final validation accuracy over its reruns
    reruns = [r for r in runs if r.data.tags.get("optlab.role") == "rerun"]
    val = {}
    for r in reruns:
        val.setdefault(r.data.tags["mlflow.parentRunId"], []).append(r.data.metrics["val_accuracy"])
    best_id = max(val, key=lambda gid: np.mean(val[gid]))
    best = next(g for g in groups if g.info.run_id == best_id)
    other = next(g for g in groups if g.info.run_id != best_id)
    assert best.data.tags["optlab.verdict"] == "best"
    assert other.data.tags["optlab.verdict"] in verdicts.VERDICTS
    assert {t["optlab.verdict_vs"] for t in tags.values()} == {best.info.run_name}
    assert {t["optlab.verdict_metric"] for t in tags.values()} == {"test_accuracy"}
    assert best.info.run_name in other.data.tags["optlab.verdict_detail"]


def _sweep_recording_tag_writes(tmp_path, monkeypatch, name: str) -> tuple[list[list[tuple]], object]:
    """A small tuned sweep on a fresh store; every `set_tags` call's tags, in order."""
    from optlab.tracking import bulk_runs

    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    calls: list[list[tuple]] = []
    original = bulk_runs.set_tags

    def spy(client, tags):
        calls.append(list(tags))
        return original(client, tags)

    monkeypatch.setattr(bulk_runs, "set_tags", spy)
    report = run_sweep(load(write_spec(tmp_path, BODY, name=name, steps=30)), progress=False)
    return calls, report


def test_each_runs_group_verdict_and_view_tags_are_set_in_one_write(tmp_path, monkeypatch):
    """On a tracking server a write is one call per run: a rerun's group (its parent) and the tags its
    workload's view groups and sorts it by go together, as do a group run's verdict tags."""
    from optlab.sweeps.group_verdicts import VERDICT_TAG
    from optlab.tracking.ui import CONFIG_TAG, ORDER_TAG

    calls, report = _sweep_recording_tag_writes(tmp_path, monkeypatch, "one_write")
    grouped = [c for c in calls if any(k == "mlflow.parentRunId" and v != report.parent_run_id for _, k, v in c)]
    assert len(grouped) == 1
    (write,) = grouped
    keys_of: dict[str, set] = {}
    for run_id, key, _ in write:
        keys_of.setdefault(run_id, set()).add(key)
    members = [keys for keys in keys_of.values() if "mlflow.parentRunId" in keys]
    assert len(members) == 6 and all({CONFIG_TAG, ORDER_TAG} <= keys for keys in members)
    assert sum(VERDICT_TAG in keys for keys in keys_of.values()) == 2  # the two group runs


def test_a_verdict_that_cannot_be_computed_still_leaves_each_seed_in_its_group(tmp_path, monkeypatch, capsys):
    from optlab.sweeps import group_verdicts

    def broken(*args, **kwargs):
        raise ValueError("no verdict today")

    monkeypatch.setattr(group_verdicts, "tags", broken)
    _, report = _sweep_recording_tag_writes(tmp_path, monkeypatch, "no_verdicts")
    assert (
        "seed-group runs of sweep 'no_verdicts' not recorded: ValueError: no verdict today" in capsys.readouterr().err
    )
    from optlab.sweeps.resume import search_all
    from optlab.tracking.store import client

    c = client()
    runs = search_all(c, c.get_experiment_by_name("no_verdicts").experiment_id, "")
    groups = {r.info.run_id for r in runs if r.data.tags.get("optlab.role") == "group"}
    reruns = [r for r in runs if r.data.tags.get("optlab.role") == "rerun"]
    assert len(groups) == 2 and {r.data.tags["mlflow.parentRunId"] for r in reruns} == groups
