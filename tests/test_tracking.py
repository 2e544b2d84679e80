import subprocess
import sys

import mlflow
import pytest
import torch

from optlab.cli import main
from optlab.config import RunConfig
from optlab.engine import run
from optlab.errors import ConfigError
from optlab.tracking import RunRecorder, tracking_uri
from optlab.tracking.recorder import load_config, load_params

METRICS = [
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "grad_norm",
    "lr",
    "samples_seen",
    "evaluations",
    "wall_time",
]


def _runs(experiment="default"):
    mlflow.set_tracking_uri(tracking_uri())
    return mlflow.search_runs(experiment_names=[experiment])


def test_a_run_is_recorded_with_params_metrics_tags_and_artifacts(store):
    config = RunConfig(strategy="momentum", dataset="digits", steps=60, eval_every=20, experiment="t")
    result = run(config, recorder=RunRecorder())
    assert str(store) in tracking_uri() and tracking_uri().startswith("sqlite:///")
    runs = _runs("t")
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row.status == "FINISHED" and row.run_id == result.run_id
    assert row["params.strategy"] == "momentum" and row["params.n_params"] == str(64 * 16 + 16 + 16 * 16 + 16 + 170)
    assert row["params.lr"] == "0.1" and row["params.momentum"] == "0.9" and row["params.batch_size"] == "32"
    for metric in METRICS:
        assert f"metrics.{metric}" in runs.columns, metric
    from optlab.problem import load_dataset

    assert row["tags.optlab.data_fingerprint"] == load_dataset("digits").fingerprint()
    assert row["tags.optlab.config_hash"] == result.config.config_hash()
    assert row["tags.version.torch"] == torch.__version__
    assert row["tags.mlflow.source.git.commit"]
    history = mlflow.MlflowClient().get_metric_history(result.run_id, "test_accuracy")
    assert [m.step for m in history] == [0, 20, 40, 60]
    assert len(mlflow.MlflowClient().get_metric_history(result.run_id, "batch_loss")) == 60
    assert torch.equal(load_params(result.run_id), result.params)
    assert load_config(result.run_id) == result.config


def test_a_diverged_run_is_recorded_as_failed_with_the_reason(store):
    result = run(RunConfig(strategy="gd", dataset="rosenbrock", lr=1.0, steps=50), recorder=RunRecorder())
    row = _runs().iloc[0]
    assert row.status == "FAILED" and result.status == "FAILED"
    assert row["tags.optlab.failure_reason"].startswith("diverged")


BAD_INPUTS = [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--lr", "-0.1"], "lr must be positive, got -0.1"),
    (["--lr", "0"], "lr must be positive, got 0.0"),
    (["--strategy", "minibatch", "--batch-size", "5000"], "batch_size 5000 is larger than the training set"),
    (["--lr", "fast"], "invalid float value: 'fast'"),
    (["--epochs", "ten"], "invalid float value: 'ten'"),
    (["--activation", "softsign"], "unknown activation 'softsign'"),
    (["--schedule", "wavy"], "unknown schedule 'wavy'"),
    (["--strategy", "sgd", "--batch-size", "8"], "batch_size 8 needs strategy 'minibatch'"),
    (["--momentum", "1.5"], "momentum must be in [0, 1)"),
    (["--device", "tpu"], "unknown device 'tpu'"),
]


@pytest.mark.parametrize("argv,message", BAD_INPUTS)
def test_bad_input_gets_a_one_line_error_and_leaves_no_run(store, capsys, argv, message):
    with pytest.raises(SystemExit) if "invalid" in message else _no_raise():
        code = main(["run", "--steps", "5", "--quiet", *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    db = store / "mlruns" / "mlflow.db"
    if db.exists():
        assert len(mlflow.search_runs(search_all_experiments=True)) == 0


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_wrong_types_in_a_config_dict_name_the_key():
    with pytest.raises(ConfigError, match=r"batch_size must be an integer, got 'big'"):
        RunConfig.from_dict({"batch_size": "big"})
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate'"):
        RunConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match=r"hidden must be a list of integers"):
        RunConfig.from_dict({"hidden": "wide"})


def test_cli_run_records_and_prints_a_summary(store, capsys):
    assert main(["run", "-s", "adam", "-d", "digits", "--steps", "30", "-q", "-e", "cli"]) == 0
    out = capsys.readouterr().out
    assert "adam" in out and "FINISHED" in out and "test acc" in out
    assert len(_runs("cli")) == 1


def test_strategies_command_lists_every_strategy_with_a_description():
    out = subprocess.run(
        [sys.executable, "-m", "optlab", "strategies"], capture_output=True, text=True, check=True
    ).stdout
    for name in ("gd", "sgd", "minibatch", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"):
        line = next(row for row in out.splitlines() if row.strip().startswith(name + " "))
        assert len(line.split()) > 3
