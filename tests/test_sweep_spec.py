"""Experiment files: grid expansion, overrides, series, tuning groups, and one-line validation errors."""

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sweep_helpers import write_spec

from optlab.errors import ConfigError
from optlab.sweeps import load

ROOT = Path(__file__).resolve().parents[1]


def test_grid_expands_with_overrides_tuning_reruns_and_series(tmp_path):
    path = write_spec(
        tmp_path,
        """
        [grid]
        strategy = ["minibatch", "adam"]
        batch_size = [8, 32]
        [tune]
        lr = [0.1, 0.3]
        objective = "steps_to_target"
        seeds = [0, 1, 2]
        [rerun]
        seeds = [10, 11]
        [overrides.adam]
        momentum = 0.8
        tune = { lr = [0.001, 0.01, 0.03] }
        [series.fixed_lr]
        lr = 0.2
    """,
    )
    spec = load(path)
    assert spec.grid_size == 2 * 2 and spec.workloads == ["tiny"]
    tuning = [p for p in spec.points if p.role == "tuning"]
    series = [p for p in spec.points if p.series == "fixed_lr"]
    # minibatch: 2 batch x 2 lr x 3 tuning seeds; adam: 2 x 3 lr x 3; the series: one per grid point and rerun seed
    assert len(tuning) == 12 + 18 and len(series) == 4 * 2
    assert {p.config.seed for p in tuning} == {0, 1, 2} and {p.config.seed for p in series} == {10, 11}
    assert all(p.role == "rerun" for p in series)  # a tuned sweep's series is reported: fresh seeds
    assert {p.config.lr for p in tuning if p.config.strategy == "adam"} == {0.001, 0.01, 0.03}
    assert all(p.config.momentum == 0.8 for p in spec.points if p.config.strategy == "adam")
    assert all(p.config.lr == 0.2 and p.config.experiment == "tiny" for p in series)
    # default groups: every grid axis, within the workload
    assert {p.group for p in tuning} == {
        f"tiny: strategy={s} batch_size={b}" for s in ("minibatch", "adam") for b in (8, 32)
    }
    assert {p.trial for p in tuning if p.config.strategy == "minibatch"} == {"lr=0.1", "lr=0.3"}
    assert {p.trials for p in tuning if p.config.strategy == "adam"} == {3}
    hashes = [p.point_hash for p in spec.points]
    assert len(set(hashes)) == len(hashes)
    # the hash is stable across loads and separates a series run from an identical tuning config
    assert [p.point_hash for p in load(path).points] == hashes
    # after selection: the selected trial of each group on the rerun seeds only
    reruns = spec.reruns(
        {"tiny: strategy=adam batch_size=8": "lr=0.01", "tiny: strategy=minibatch batch_size=32": "lr=0.3"}
    )
    assert sorted((p.config.strategy, p.config.batch_size, p.config.lr, p.config.seed) for p in reruns) == [
        ("adam", 8, 0.01, 10),
        ("adam", 8, 0.01, 11),
        ("minibatch", 32, 0.3, 10),
        ("minibatch", 32, 0.3, 11),
    ]
    assert all(p.role == "rerun" and p.tags("tiny")["optlab.selected"] == "true" for p in reruns)
    assert not {p.point_hash for p in reruns} & set(hashes)


def test_every_grid_point_runs_on_every_workload_and_runs_carry_the_workload(tmp_path):
    spec = load(
        write_spec(
            tmp_path,
            """
        [workloads.small]
        hidden = [8]
        steps = 20
        target = 0.5
        [workloads.wide]
        hidden = [32]
        steps = 40
        target = 0.7
        [grid]
        strategy = ["minibatch", "adam"]
        [tune]
        lr = [0.01, 0.1]
        objective = "val_loss"
        [rerun]
        seeds = [5, 6]
        [overrides.adam]
        tune = {}
    """,
        )
    )
    assert spec.workloads == ["small", "wide"]
    for workload, hidden, steps in (("small", (8,), 20), ("wide", (32,), 40)):
        points = [p for p in spec.points if p.workload == workload]
        assert {p.config.hidden for p in points} == {hidden} and {p.config.steps for p in points} == {steps}
        assert {p.config.strategy for p in points} == {"minibatch", "adam"}
        assert len({p.tags("x")["optlab.workload_hash"] for p in points}) == 1
    # adam is not tuned (tune = {}): it runs as given, on the rerun seeds, one trial
    adam = [p for p in spec.points if p.config.strategy == "adam"]
    assert {p.role for p in adam} == {"rerun"} and {p.config.seed for p in adam} == {5, 6}
    assert {p.trials for p in adam} == {1}
    assert spec.points[0].tags("x")["optlab.workload_hash"] != spec.points[-1].tags("x")["optlab.workload_hash"]


def test_workload_keys_that_vary_in_the_grid_name_the_workload(tmp_path):
    spec = load(
        write_spec(
            tmp_path,
            """
        [grid]
        hidden = [[8], [16]]
        label_noise = [0.0, 0.5]
        seed = [0]
        [series.gaussian]
        variant = "gaussian"
        label_noise = 0.0
    """,
            name="mem",
        )
    )
    ids = {p.workload for p in spec.points}
    assert (
        "mem hidden=8 label_noise=0.5 variant=none" in ids and "mem hidden=16 label_noise=0.0 variant=gaussian" in ids
    )
    assert len(ids) == 6


def test_series_point_with_a_tuning_config_is_still_its_own_point(tmp_path):
    spec = load(
        write_spec(
            tmp_path,
            """
        [grid]
        seed = [0]
        lr = [0.1]
        [series.fixed_lr]
        lr = 0.1
    """,
        )
    )
    assert len(spec.points) == 2
    assert spec.points[0].config.config_hash() == spec.points[1].config.config_hash()
    assert spec.points[0].point_hash != spec.points[1].point_hash


def test_identical_points_run_once(tmp_path):
    spec = load(
        write_spec(
            tmp_path,
            """
        [grid]
        strategy = ["adam"]
        lr = [0.1, 0.2]
        [overrides.adam]
        lr = 0.01
    """,
            name="dup",
        )
    )
    assert len(spec.points) == 1 and spec.points[0].config.lr == 0.01


@pytest.mark.parametrize(
    "body, expected",
    [
        ("[grid]\nlerning_rate = [0.1]", "[grid]: unknown key 'lerning_rate'"),
        ("[grid]\nlr = []", "[grid]: axis lr is empty"),
        ("[grid]\nlr = 0.1", "[grid]: axis lr must be a list of values, got 0.1"),
        ('[grid]\nlr = [0.1, "fast"]', "lr must be a number, got 'fast'"),
        ("[grid]\nseed = [0, 1.5]", "seed must be an integer, got 1.5"),
        ('[grid]\nstrategy = ["adam", "nope"]', "unknown strategy 'nope'"),
        ("[grid]\nbatch_size = [64, 5000]", "batch_size 5000 is larger than the training set"),
        ('[tune]\nlr = [0.1]\nobjective = "accuracy"\n[rerun]\nseeds = [1]', "objective must be one of"),
        ('[tune]\nlr = [0.1]\nobjective = "test_accuracy"\n[rerun]\nseeds = [1]', "tuning never reads a test metric"),
        ('[tune]\nobjective = "train_loss"\n[rerun]\nseeds = [1]', "no tuning axis given"),
        ('[tune]\nlr = [0.1]\nobjective = "val_loss"', "[rerun]: a tuned sweep reports fresh-seed reruns"),
        (
            '[tune]\nlr = [0.1]\nobjective = "val_loss"\nseeds = [0, 1]\n[rerun]\nseeds = [1, 2]',
            "[rerun]: seeds [1] are also tuning seeds",
        ),
        (
            '[grid]\nseed = [0, 1]\n[tune]\nlr = [0.1]\nobjective = "val_loss"\n[rerun]\nseeds = [5]',
            "seed cannot be an axis of a tuned sweep",
        ),
        ("[rerun]\nseeds = [5]", "[rerun]: reruns need a [tune] section"),
        (
            '[grid]\nstrategy = ["adam", "gd"]\n[overrides.gd]\nsteps = 200',
            "[overrides.gd]: steps = 200 is part of the workload",
        ),
        ("[workloads.w]\nlr = 0.1", "[workloads.w]: 'lr' is not a workload setting"),
        ("[overrides.sgd]\nlr = 0.1", "strategy 'sgd' is not in the sweep"),
        ("[overrides.adam]\nbogus = 1", "[overrides.adam]: unknown key 'bogus'"),
        ('colour = "blue"', "unknown key 'colour'"),
    ],
)
def test_validation_errors_name_file_key_and_value(tmp_path, body, expected):
    path = write_spec(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_bad_file_records_nothing(tmp_path):
    path = write_spec(tmp_path, "[grid]\nlr = []")
    env = {"OPTLAB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "optlab", "sweep", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "axis lr is empty" in out.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("name", ["smoke", "convergence", "convergence_cnn", "batch_size", "memorization"])
def test_shipped_experiment_files_load(name):
    spec = load(ROOT / "experiments" / f"{name}.toml", check_plans=False)
    assert spec.name == name and spec.points
    if name == "smoke":
        assert len(spec.points) <= 8


@pytest.mark.parametrize(
    "name, seeds", [("convergence", 20), ("second_order", 20), ("zeroth_order", 20), ("batch_size", 10)]
)
def test_the_default_suite_reruns_on_enough_fresh_seeds_with_five_timed_alone(name, seeds):
    spec = load(ROOT / "experiments" / f"{name}.toml", check_plans=False)
    assert len(spec.rerun_seeds) >= seeds and not set(spec.rerun_seeds) & set(spec.tune_seeds)
    assert spec.timed_alone >= 5


def test_memorization_trains_every_condition_on_ten_seeds():
    spec = load(ROOT / "experiments" / "memorization.toml", check_plans=False)
    per_condition = Counter((p.config.hidden, p.config.label_noise, p.config.variant) for p in spec.points)
    assert len(per_condition) == 16 and min(per_condition.values()) >= 10


def test_timed_alone_trains_the_first_rerun_seeds_alone_and_margins_reach_the_tags(tmp_path):
    import json

    path = write_spec(
        tmp_path,
        """
        [grid]
        strategy = ["minibatch", "adam"]
        [tune]
        lr = [0.1, 0.3]
        objective = "val_loss"
        [rerun]
        seeds = [10, 11, 12, 13]
        timed_alone = 2
        [margins]
        test_accuracy = 0.02
        [overrides.adam]
        tune = {}
    """,
    )
    spec = load(path)
    assert spec.timed_alone == 2
    as_given = sorted((p.config.seed, p.alone) for p in spec.points if p.config.strategy == "adam")
    assert as_given == [(10, True), (11, True), (12, False), (13, False)]
    reruns = spec.reruns({"tiny: strategy=minibatch": "lr=0.1"})
    assert sorted((p.config.seed, p.alone) for p in reruns) == [(10, True), (11, True), (12, False), (13, False)]
    assert {json.loads(p.tags("tiny")["optlab.margins"])["test_accuracy"] for p in reruns} == {0.02}


def test_a_workload_declares_its_own_margins(tmp_path):
    import json

    path = write_spec(
        tmp_path,
        """
        [workloads.short]
        steps = 10
        margins = { test_accuracy = 0.03, time_to_target = 0.2 }
        [workloads.long]
        steps = 20
        [grid]
        strategy = ["minibatch"]
        [margins]
        test_accuracy = 0.005
    """,
    )
    spec = load(path)
    margins = {p.workload: json.loads(p.tags("x")["optlab.margins"]) for p in spec.points}
    assert margins == {"short": {"test_accuracy": 0.03, "time_to_target": 0.2}, "long": {"test_accuracy": 0.005}}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[margins]\ntest_acc = 0.01", "unknown metric 'test_acc'"),
        ("[margins]\ntest_accuracy = -1", "test_accuracy must be a positive number, got -1"),
        (
            "[tune]\nlr = [0.1]\nobjective = 'val_loss'\n[rerun]\nseeds = [5, 6]\ntimed_alone = 3",
            "timed_alone must be an integer from 1 to the number of rerun seeds (2), got 3",
        ),
    ],
)
def test_bad_margins_and_timed_alone_are_one_line_errors(tmp_path, text, message):
    path = write_spec(tmp_path, "[grid]\nstrategy = ['minibatch']\n" + text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load(path)
