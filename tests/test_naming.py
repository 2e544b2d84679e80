"""Run names: unique within a sweep and saying what differs (strategy, tuned values, axes, series, seed)."""

from __future__ import annotations

from sweep_helpers import write_spec

from optlab.sweeps import load
from optlab.sweeps.naming import sweep_names


def names_of(tmp_path, body: str, name: str = "names") -> list[str]:
    spec = load(write_spec(tmp_path, body, name=name), check_plans=False)
    names = sweep_names(spec)
    assert len(names) == len(spec.points)
    return [names[p.point_hash] for p in spec.points]


def test_names_carry_tuned_values_axes_and_seed_and_are_unique(tmp_path):
    names = names_of(
        tmp_path,
        """
        [grid]
        strategy = ["minibatch", "adam"]
        batch_size = [8, 32]
        [tune]
        lr = [0.1, 0.5]
        objective = "train_loss"
        seeds = [0, 1]
        [rerun]
        seeds = [100]
        [overrides.adam.tune]
        lr = [0.001, 0.01]
    """,
    )
    assert len(set(names)) == len(names) == 16
    assert "adam lr=0.001 B=32 tuning seed=1" in names
    assert "minibatch lr=0.5 B=8 tuning seed=0" in names


def test_a_series_is_named_so_it_never_takes_a_tuned_runs_name(tmp_path):
    names = names_of(
        tmp_path,
        """
        [grid]
        strategy = ["minibatch"]
        batch_size = [8, 32]
        [tune]
        lr = [0.03, 0.3]
        objective = "train_loss"
        [rerun]
        seeds = [100]
        [series.fixed_lr]
        lr = 0.03
    """,
    )
    assert len(set(names)) == len(names) == 6
    assert "minibatch lr=0.03 B=8 tuning seed=0" in names
    assert "minibatch lr=0.03 B=8 [fixed_lr] rerun seed=100" in names  # a selected lr=0.03 rerun has no label


def test_every_varying_data_setting_is_named_but_a_strategys_own_override_is_not(tmp_path):
    names = names_of(
        tmp_path,
        """
        [grid]
        strategy = ["adam", "sgd"]
        hidden = [[8], [32]]
        label_noise = [0.0, 0.6]
        seed = [3]
        [overrides.sgd]
        lr = 0.1
    """,
    )
    assert len(set(names)) == len(names) == 8
    assert "adam hidden=32 p=0.6 seed=3" in names
    assert "sgd hidden=8 p=0 seed=3" in names  # sgd's lr is what sgd is here, not an axis


def test_tuning_trials_and_reruns_name_their_role_and_declared_workloads_are_named(tmp_path):
    spec = load(
        write_spec(
            tmp_path,
            """
        [workloads.small]
        hidden = [8]
        [workloads.wide]
        hidden = [32]
        [grid]
        strategy = ["minibatch", "adam"]
        [tune]
        lr = [0.1, 0.5]
        objective = "train_loss"
        seeds = [0]
        [rerun]
        seeds = [100, 101]
        diagnostics = "cheap"
    """,
            name="roles",
        ),
        check_plans=False,
    )
    reruns = spec.reruns({g: next(iter(group.trials)) for g, group in spec.groups.items()})
    names = sweep_names(spec, reruns)
    values = list(names.values())
    assert len(set(values)) == len(values) == len(spec.points) + len(reruns)
    assert "adam [wide] lr=0.1 tuning seed=0" in values
    assert "minibatch [small] lr=0.1 rerun seed=101" in values  # its diagnostics are a measurement: not named
    assert all(p.config.diagnostics == "cheap" for p in reruns)
    tuning_only = sweep_names(spec)  # before the reruns are known the names are already final
    assert all(names[h] == n for h, n in tuning_only.items())
