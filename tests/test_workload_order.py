"""A sweep hands out its longest tasks first, so its runs start out of the sweep file's order: every run
carries its workload's place in the file (`optlab.workload_order`), and the report follows that order."""

from __future__ import annotations

import pandas as pd

from optlab.reports.workloads import ordered
from optlab.sweeps.spec import WORKLOAD_ORDER_TAG, parse

SPEC = {
    "name": "order",
    "base": {"dataset": "digits", "hidden": [8], "steps": 10},
    "workloads": {"zeta": {"activation": "relu"}, "alpha": {"activation": "tanh"}},
    "grid": {"strategy": ["minibatch", "lbfgs"]},
    "tune": {"lr": [0.1, 0.3], "seeds": [0], "objective": "train_loss"},
    "rerun": {"seeds": [100, 101]},
    "overrides": {"lbfgs": {"tune": {}}},
}


def test_every_point_and_rerun_carries_its_workloads_place_in_the_file():
    spec = parse(SPEC)
    assert spec.workloads == ["zeta", "alpha"]
    reruns = spec.reruns({name: next(iter(group.trials)) for name, group in spec.groups.items() if group.tuned})
    places = {(p.workload, p.tags("order")[WORKLOAD_ORDER_TAG]) for p in spec.points + reruns}
    assert places == {("zeta", "0"), ("alpha", "1")}
    assert {p.role for p in spec.points} == {"tuning", "rerun"}  # lbfgs runs as given: a rerun up front


def runs(**columns) -> pd.DataFrame:
    return pd.DataFrame({"experiment": "order", **columns})


def test_the_report_orders_workloads_as_the_file_does_not_as_their_runs_started():
    frame = runs(workload=["zeta", "alpha", "alpha"], start_time=[30, 10, 20], workload_order=["0", "1", "1"])
    assert ordered(frame) == ["zeta", "alpha"]


def test_runs_recorded_before_the_tag_existed_keep_the_order_they_started_in():
    frame = runs(workload=["zeta", "alpha"], start_time=[30, 10])
    assert ordered(frame) == ["alpha", "zeta"]
    frame = runs(workload=["zeta", "alpha"], start_time=[30, 10], workload_order=[None, None])
    assert ordered(frame) == ["alpha", "zeta"]
