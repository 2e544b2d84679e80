"""Experiment files: grid expansion, overrides, series, tuning groups, and one-line validation errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from optlab.errors import ConfigError
from optlab.sweeps import load
from sweep_helpers import write_spec

ROOT = Path(__file__).resolve().parents[1]


def test_grid_expands_with_overrides_tuning_and_series(tmp_path):
    path = write_spec(tmp_path, """
        [grid]
        strategy = ["minibatch", "adam"]
        batch_size = [8, 32]
        seed = [0, 1, 2]
        [tune]
        lr = [0.1, 0.3]
        objective = "steps_to_target"
        [overrides.adam]
        momentum = 0.8
        tune = { lr = [0.001, 0.01, 0.03] }
        [series.fixed_lr]
        lr = 0.2
    """)
    spec = load(path)
    assert spec.grid_size == 2 * 2 * 3
    tuning = [p for p in spec.points if p.role == "tuning"]
    series = [p for p in spec.points if p.series == "fixed_lr"]
    # minibatch: 2 batch x 3 seeds x 2 lr; adam: 2 x 3 x 3 lr; the series: one per grid point
    assert len(tuning) == 12 + 18 and len(series) == 12
    assert {p.config.lr for p in tuning if p.config.strategy == "adam"} == {0.001, 0.01, 0.03}
    assert all(p.config.momentum == 0.8 for p in spec.points if p.config.strategy == "adam")
    assert all(p.config.lr == 0.2 and p.config.experiment == "tiny" for p in series)
    # default groups: every grid axis but the seed
    assert {p.group for p in tuning} == {f"strategy={s} batch_size={b}" for s in ("minibatch", "adam") for b in (8, 32)}
    assert {p.trial for p in tuning if p.config.strategy == "minibatch"} == {"lr=0.1", "lr=0.3"}
    hashes = [p.point_hash for p in spec.points]
    assert len(set(hashes)) == len(hashes)
    # the hash is stable across loads and separates a series run from an identical tuning config
    assert [p.point_hash for p in load(path).points] == hashes


def test_series_point_with_a_tuning_config_is_still_its_own_point(tmp_path):
    spec = load(write_spec(tmp_path, """
        [grid]
        seed = [0]
        [tune]
        lr = [0.1]
        objective = "train_loss"
        [series.fixed_lr]
        lr = 0.1
    """))
    assert len(spec.points) == 2
    assert spec.points[0].config.config_hash() == spec.points[1].config.config_hash()
    assert spec.points[0].point_hash != spec.points[1].point_hash


def test_identical_points_run_once(tmp_path):
    spec = load(write_spec(tmp_path, """
        [grid]
        strategy = ["adam"]
        lr = [0.1, 0.2]
        [overrides.adam]
        lr = 0.01
    """, name="dup"))
    assert len(spec.points) == 1 and spec.points[0].config.lr == 0.01


@pytest.mark.parametrize("body, expected", [
    ('[grid]\nlerning_rate = [0.1]', "[grid]: unknown key 'lerning_rate'"),
    ('[grid]\nlr = []', "[grid]: axis lr is empty"),
    ('[grid]\nlr = 0.1', "[grid]: axis lr must be a list of values, got 0.1"),
    ('[grid]\nlr = [0.1, "fast"]', "lr must be a number, got 'fast'"),
    ('[grid]\nseed = [0, 1.5]', "seed must be an integer, got 1.5"),
    ('[grid]\nstrategy = ["adam", "nope"]', "unknown strategy 'nope'"),
    ('[grid]\nbatch_size = [64, 5000]', "batch_size 5000 is larger than the training set"),
    ('[tune]\nlr = [0.1]\nobjective = "accuracy"', "objective must be one of"),
    ('[tune]\nobjective = "train_loss"', "no tuning axis given"),
    ('[overrides.sgd]\nlr = 0.1', "strategy 'sgd' is not in the sweep"),
    ('[overrides.adam]\nbogus = 1', "[overrides.adam]: unknown key 'bogus'"),
    ('colour = "blue"', "unknown key 'colour'"),
])
def test_validation_errors_name_file_key_and_value(tmp_path, body, expected):
    path = write_spec(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_bad_file_records_nothing(tmp_path):
    path = write_spec(tmp_path, '[grid]\nlr = []')
    env = {"OPTLAB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "optlab", "sweep", str(path)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "axis lr is empty" in out.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("name", ["smoke", "convergence", "batch_size", "memorization"])
def test_shipped_experiment_files_load(name):
    spec = load(ROOT / "experiments" / f"{name}.toml", check_plans=False)
    assert spec.name == name and spec.points
    if name == "smoke":
        assert len(spec.points) <= 8
