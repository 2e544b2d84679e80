"""The validation phase: options declared once (type, choices, bounds, finiteness), knobs a strategy does
not use, and nesterov's momentum — each refused in one line before any run exists."""

import mlflow
import pytest

from optlab.cli import main
from optlab.config import RunConfig
from optlab.engine import prepare, run_many
from optlab.errors import ConfigError
from optlab.strategies import Option, registry


def _no_run_recorded(store) -> bool:
    db = store / "mlruns" / "mlflow.db"
    return not db.exists() or len(mlflow.search_runs(search_all_experiments=True)) == 0


BAD_OPTIONS = [
    (
        ["-s", "ng:OnePlusOne", "--evaluations", "10", "-o", "sigma=Infinity"],
        "option sigma of 'ng:OnePlusOne' must be finite, got inf",
    ),
    (
        ["-s", "ng:OnePlusOne", "--evaluations", "10", "-o", "sigma=-1"],
        "option sigma of 'ng:OnePlusOne' must be > 0 and <= 1000, got -1.0",
    ),
    (
        ["-s", "ng:OnePlusOne", "--evaluations", "10", "-o", "num_workers=100000"],
        "option num_workers of 'ng:OnePlusOne' must be >= 1 and <= 4096, got 100000",
    ),
    (["-s", "spsa", "-o", "q=0"], "option q of 'spsa' must be >= 1 and <= 100000, got 0"),
    (["-s", "spsa", "-o", "eps=NaN"], "option eps of 'spsa' must be finite, got nan"),
    (["-s", "newton_cg", "-o", "cg_decay=1"], "option cg_decay of 'newton_cg' must be >= 0 and < 1, got 1.0"),
    (["-s", "kfac", "-o", "fisher=exact"], "option fisher of 'kfac' must be one of true, empirical, got 'exact'"),
    (["-s", "lbfgs", "-o", "history_size=2.5"], "option history_size of 'lbfgs' must be an integer, got 2.5"),
    (["-s", "newton", "-d", "ravine", "-o", "damping=-0.5"], "option damping of 'newton' must be >= 0, got -0.5"),
    (["-s", "lbfgs", "-o", "nope=1"], "strategy 'lbfgs' has no option 'nope'"),
]


@pytest.mark.parametrize("argv,message", BAD_OPTIONS)
def test_an_option_out_of_its_bounds_is_refused_in_one_line_before_any_run(store, capsys, argv, message):
    assert main(["run", "--steps", "2", "-d", "digits", "-q", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"optlab: error: {message}\n" or (message in err and err.count("\n") == 1), err
    assert _no_run_recorded(store)


def test_every_declared_option_default_passes_its_own_checks():
    for cls in registry.available():
        for key, option in cls.options.items():
            assert option.check(key, option.default, cls.name) == option.default, (cls.name, key)


def test_an_option_may_declare_that_it_accepts_infinity():
    assert Option(float, 1.0, "a cap", finite=False).check("cap", float("inf"), "x") == float("inf")
    with pytest.raises(ConfigError, match="must be finite"):
        Option(float, 1.0, "a cap").check("cap", float("inf"), "x")


# which strategies apply momentum and weight decay; a value given to one that does not is refused
USES = {
    "gd": {"weight_decay"},
    "sgd": {"weight_decay"},
    "minibatch": {"weight_decay"},
    "adagrad": {"weight_decay"},
    "momentum": {"momentum", "weight_decay"},
    "nesterov": {"momentum", "weight_decay"},
    "adam": {"momentum", "weight_decay"},
    "adamw": {"momentum", "weight_decay"},
    "rmsprop": {"momentum", "weight_decay"},
    "kfac": {"momentum", "weight_decay"},
    "lbfgs": set(),
    "newton": set(),
    "newton_cg": set(),
    "spsa": {"momentum", "weight_decay"},
    "fd": {"momentum", "weight_decay"},
    "ng:OnePlusOne": set(),
}


def test_each_strategy_declares_the_knobs_it_uses():
    assert {name: set(registry.resolve(name).knobs()) for name in USES} == USES


@pytest.mark.parametrize(
    "strategy,knob", [(s, k) for s, used in USES.items() for k in ("momentum", "weight_decay") if k not in used]
)
def test_a_knob_the_strategy_does_not_use_is_refused_in_one_line(store, capsys, strategy, knob):
    assert (
        main(
            [
                "run",
                "-s",
                strategy,
                f"--{knob.replace('_', '-')}",
                "0.5",
                "--evaluations",
                "4",
                "-d",
                "digits",
                "--hidden",
                "4",
                "-q",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith(f"optlab: error: {strategy} does not use {knob} (got 0.5)") and err.count("\n") == 1, err
    assert _no_run_recorded(store)


def test_a_run_records_only_the_knobs_its_strategy_uses():
    for strategy in ("gd", "sgd", "minibatch", "adagrad", "lbfgs", "ng:OnePlusOne"):
        resolved = prepare(RunConfig(strategy=strategy, dataset="digits", evaluations=4)).config
        assert resolved.momentum is None, strategy
    assert prepare(RunConfig(strategy="lbfgs", dataset="digits")).config.weight_decay is None
    assert prepare(RunConfig(strategy="momentum", dataset="digits")).config.momentum == 0.9
    assert prepare(RunConfig(strategy="adagrad", dataset="digits")).config.weight_decay == 0.0


def test_nesterov_without_momentum_is_refused_by_every_path(store):
    config = RunConfig(strategy="nesterov", dataset="digits", momentum=0.0, steps=5)
    with pytest.raises(ConfigError, match=r"nesterov needs momentum > 0, got 0.0"):
        prepare(config)
    with pytest.raises(ConfigError, match=r"nesterov needs momentum > 0"):  # the batched path trained it before
        run_many([config, config.with_updates(seed=1)])
    assert _no_run_recorded(store)
