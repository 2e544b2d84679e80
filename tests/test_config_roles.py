"""RunConfig's roles: every list of keys is derived from the one declaration, and the identities stores
written before it (commit 55eee6a) recorded stay the same: config hashes, point hashes, workload hashes and
names, seed-group keys."""

import gzip
import json
import shutil
from pathlib import Path

import pytest

from optlab.config import ROLES, RunConfig
from optlab.sweeps import naming
from optlab.sweeps import spec as sweep_spec

DATA = Path(__file__).parent / "data"
SNAPSHOT = json.loads((DATA / "identity_main.json").read_text())


@pytest.mark.parametrize("entry", SNAPSHOT["configs"], ids=lambda e: json.dumps(e["values"], sort_keys=True))
def test_config_and_workload_hashes_are_those_main_recorded(entry):
    config = RunConfig.from_dict(entry["values"])
    assert config.config_hash() == entry["config_hash"]
    assert config.workload_hash() == entry["workload_hash"]


@pytest.mark.parametrize("name", sorted(SNAPSHOT["sweeps"]))
def test_sweep_points_keep_their_hashes_workloads_groups_and_names(name):
    entry = SNAPSHOT["sweeps"][name]
    spec = sweep_spec.parse(sweep_spec.tomllib.loads(entry["text"]), name)
    names = naming.sweep_names(spec)
    got = [
        {
            "point_hash": p.point_hash,
            "config_hash": p.config.config_hash(),
            "workload": p.workload,
            "workload_hash": p.tags(spec.name)["optlab.workload_hash"],
            "group": p.group,
            "role": p.role,
            "name": names[p.point_hash],
        }
        for p in spec.points
    ]
    assert got == entry["points"]


def test_every_field_has_a_role_and_the_derived_lists_follow_it():
    for name in RunConfig.field_names():
        assert RunConfig.declared(name)["role"] in ROLES
    assert set(RunConfig.field_names()) == {k for role in ROLES for k in RunConfig.fields_with_role(role)}
    assert sweep_spec.WORKLOAD_KEYS == RunConfig.fields_with_role("problem") + RunConfig.fields_with_role(
        "budget"
    ) + RunConfig.fields_with_role("target")
    assert {"init", "standardize", "train_size", "dtype", "noise_seed"} <= set(sweep_spec.WORKLOAD_KEYS)
    # the problem key names everything a built Problem depends on, the device included
    base = RunConfig(dataset="digits")
    for change in ({"standardize": True}, {"device": "cpu:0"}, {"init": "zeros"}, {"train_size": 100}):
        assert base.with_updates(**change).problem_key() != base.problem_key(), change
    assert base.with_updates(seed=3, lr=0.5, eval_every=2).problem_key() == base.problem_key()


@pytest.fixture
def main_store(tmp_path, monkeypatch):
    """The store main wrote (tests/data/README.md), opened as the tracking home."""
    (tmp_path / "mlruns").mkdir()
    with gzip.open(DATA / "main_store.db.gz") as source, open(tmp_path / "mlruns" / "mlflow.db", "wb") as target:
        shutil.copyfileobj(source, target)
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_a_store_written_by_main_keeps_its_identities(main_store):
    from optlab.engine import prepare
    from optlab.reports.load import Store
    from optlab.sweeps import seed_groups
    from optlab.tracking.store import client

    spec = sweep_spec.load(DATA / "main_store.toml", check_plans=False)
    runs = Store(progress=False).runs("tiny", include_tuning=True)
    assert len(runs) == 16  # 4 groups x 2 trials (tuning), 4 groups x 2 seeds (reruns)
    rerun = runs[runs["role"] == "rerun"]
    reruns = spec.reruns(dict(zip(rerun["group"], rerun["trial"])))
    points = {p.point_hash: p for p in [*spec.points, *reruns]}
    for row in runs.itertuples():
        point = points[row.point_hash]  # the new code computes every recorded point hash
        assert row.config_hash == prepare(point.config).config.config_hash()  # a run records its resolved config
        assert row.workload_hash == point.config.workload_hash()
        assert row.workload == point.workload
    assert set(runs["workload"]) == {"a", "b"}
    # seed groups: the recorded group keys are the ones the new code computes from the members
    c = client()
    experiment_id = c.get_experiment_by_name("tiny").experiment_id
    groups = seed_groups.groups(c, experiment_id, "tiny")
    assert len(groups) == 4
    members = {r.info.run_id: r for r in c.search_runs([experiment_id])}
    for group in groups:
        children = [r for r in members.values() if r.data.tags.get("mlflow.parentRunId") == group.info.run_id]
        assert len(children) == 2
        assert {seed_groups.configuration_key(r) for r in children} == {group.data.tags[seed_groups.KEY_TAG]}


def test_single_runs_main_recorded_keep_their_hash_and_are_grouped_by_every_workload_setting(main_store):
    from optlab.engine import prepare
    from optlab.reports.load import Store

    runs = Store(progress=False).runs("single").sort_values("start_time")
    base = dict(dataset="digits", hidden=(8,), steps=3)
    configs = [RunConfig(**base), RunConfig(**base, init="zeros"), RunConfig(**base, strategy="sgd", seed=4)]
    assert list(runs["config_hash"]) == [prepare(c).config.config_hash() for c in configs]
    default, zeros, sgd = runs["workload"]
    assert default == sgd  # the same problem, budget and target
    assert zeros != default  # main pooled these two (its list of workload params lacked init)
    assert "init=zeros" in zeros
