"""`optlab run` as a user calls it (a separate process): the tracking store started in a helper process,
the status line, Ctrl-C and a killed process, a store that fails; and the thread choice."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from optlab.config import RunConfig
from optlab.engine import prepare
from optlab.engine.runner import intra_op_threads

OPTLAB = [sys.executable, "-m", "optlab", "run"]


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["OPTLAB_HOME"] = str(home)
    return env


def _runs(home: Path, experiment: str):
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=[experiment])


def _wait_for(predicate, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _statuses(home: Path) -> list[str]:
    """Run statuses read straight from SQLite, read-only: opening a store that is still being created with
    MLflow would race its creation."""
    import sqlite3

    db = home / "mlruns" / "mlflow.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            return [status for (status,) in connection.execute("SELECT status FROM runs")]
    except sqlite3.Error:  # tables not created yet
        return []


def test_a_tracked_run_is_recorded_through_the_background_store(tmp_path):
    from safetensors.numpy import load_file

    done = subprocess.run(
        [*OPTLAB, "-s", "adam", "-d", "digits", "--steps", "30", "--eval-every", "10", "-e", "bg"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.startswith("optlab: adam on digits: loading torch and the data, starting the tracking store")
    runs = _runs(tmp_path, "bg")
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row.status == "FINISHED" and row["tags.optlab.status"] == "FINISHED"
    assert row["tags.optlab.timing"] == "alone" and row["params.strategy"] == "adam"
    assert row.run_id in done.stdout  # the summary line names the run the store holds
    client = mlflow.MlflowClient()
    assert sorted(m.step for m in client.get_metric_history(row.run_id, "batch_loss")) == list(range(1, 31))
    assert [m.step for m in client.get_metric_history(row.run_id, "val_accuracy")] == [0, 10, 20, 30]
    weights = load_file(
        mlflow.artifacts.download_artifacts(
            run_id=row.run_id, artifact_path="params.safetensors", dst_path=str(tmp_path / "w")
        )
    )
    assert weights["params"].shape == (int(row["params.n_params"]),)


def _existing_store(home: Path, experiment: str, monkeypatch) -> None:
    """A store and experiment made beforehand (as by an earlier run): `optlab run` then writes its run
    directly (tracking/sqlite_recorder.py) instead of through MLflow."""
    from optlab.tracking.store import client, ensure_experiment

    monkeypatch.setenv("OPTLAB_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ensure_experiment(client(), experiment)


def test_a_run_on_an_existing_store_is_written_without_mlflow_while_it_trains(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    _existing_store(tmp_path, "direct", monkeypatch)
    blocked = tmp_path / "no-mlflow" / "mlflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('optlab run imported mlflow')\n")
    env = {**_env(tmp_path), "PYTHONPATH": os.pathsep.join([str(blocked.parent), str(Path(__file__).parents[1])])}
    done = subprocess.run(
        [
            *OPTLAB,
            "-s",
            "minibatch",
            "-b",
            "32",
            "-d",
            "digits",
            "--steps",
            "4000",
            "--eval-every",
            "100",
            "-q",
            "-e",
            "direct",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    row = _runs(tmp_path, "direct").iloc[0]
    assert row.status == "FINISHED" and row["tags.optlab.status"] == "FINISHED" and row.run_id in done.stdout
    client = mlflow.MlflowClient()
    # handed to the store in pieces while training: every point once, none lost at the seams
    assert sorted(m.step for m in client.get_metric_history(row.run_id, "batch_loss")) == list(range(1, 4001))
    assert [m.step for m in client.get_metric_history(row.run_id, "val_accuracy")] == list(range(0, 4001, 100))
    assert row["metrics.val_accuracy"] == client.get_metric_history(row.run_id, "val_accuracy")[-1].value
    weights = load_file(
        mlflow.artifacts.download_artifacts(
            run_id=row.run_id, artifact_path="params.safetensors", dst_path=str(tmp_path / "w")
        )
    )
    assert weights["params"].shape == (int(row["params.n_params"]),)


@pytest.mark.parametrize("kind", ["new", "existing"])
def test_ctrl_c_records_the_run_killed_and_exits_130(tmp_path, kind, monkeypatch):
    if kind == "existing":
        _existing_store(tmp_path, "int", monkeypatch)
    process = subprocess.Popen(
        [*OPTLAB, "-s", "minibatch", "-d", "digits", "--epochs", "100000", "-q", "-e", "int"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a suite started in the background (`make test &`) inherits SIGINT ignored,
        # and a process that starts with SIGINT ignored rightly keeps ignoring it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for(lambda: _statuses(tmp_path) == ["RUNNING"], what="the run to start")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err[-2000:]
    row = _runs(tmp_path, "int").iloc[0]
    assert row.status == "KILLED" and row["tags.optlab.failure_reason"] == "interrupted"


@pytest.mark.parametrize("kind", ["new", "existing"])
def test_a_killed_optlab_process_leaves_no_run_running(tmp_path, kind, monkeypatch):
    if kind == "existing":
        _existing_store(tmp_path, "kill", monkeypatch)
    process = subprocess.Popen(
        [*OPTLAB, "-s", "minibatch", "-d", "digits", "--epochs", "100000", "-q", "-e", "kill"],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _statuses(tmp_path) == ["RUNNING"], what="the run to start")
        helpers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(helpers) == 1  # the store process
        process.kill()  # SIGKILL: nothing in the process can react; its store process ends the run
        process.wait(timeout=30)
        _wait_for(lambda: _statuses(tmp_path) == ["KILLED"], timeout=60, what="the store process to end the run")
        _wait_for(
            lambda: (
                not Path(f"/proc/{helpers[0]}").exists() or "zombie" in Path(f"/proc/{helpers[0]}/status").read_text()
            ),
            timeout=30,
            what="the store process to exit",
        )
    finally:
        process.kill()
    row = _runs(tmp_path, "kill").iloc[0]
    assert row.status == "KILLED" and "ended before recording" in row["tags.optlab.failure_reason"]


def test_a_store_that_cannot_be_opened_is_one_line(tmp_path):
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    done = subprocess.run(
        [*OPTLAB, "-s", "adam", "-d", "digits", "--steps", "5", "-q"],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("optlab: error:") and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_small_steps_train_on_one_thread_and_full_batches_on_torchs_default():
    assert intra_op_threads(prepare(RunConfig(strategy="minibatch", batch_size=32))) == 1
    assert intra_op_threads(prepare(RunConfig(strategy="gd"))) is None


def test_bad_input_with_the_status_line_off_is_one_line_and_starts_no_store(tmp_path):
    done = subprocess.run(
        [*OPTLAB, "-s", "nope", "-q"], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and done.stderr.startswith("optlab: error: unknown strategy 'nope'")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "mlruns").exists()


def test_sigterm_to_the_whole_process_group_leaves_no_run_running(tmp_path):
    # service managers stop a command by signalling its whole group: the store process must outlive the
    # signal long enough to record the run's end
    process = subprocess.Popen(
        [*OPTLAB, "-s", "minibatch", "-d", "digits", "--epochs", "100000", "-q", "-e", "term"],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(lambda: _statuses(tmp_path) == ["RUNNING"], what="the run to start")
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        _wait_for(lambda: _statuses(tmp_path) == ["KILLED"], timeout=60, what="the run's end to be recorded")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_runs_started_at_once_on_an_existing_store_in_an_odd_folder_are_all_stored(tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    home = tmp_path / 'it\'s a "home" ü'
    _existing_store(home, "many", monkeypatch)
    processes = [
        subprocess.Popen(
            [
                *OPTLAB,
                "-s",
                "adam",
                "-d",
                "digits",
                "--steps",
                "300",
                "--eval-every",
                "50",
                "--seed",
                str(seed),
                "-q",
                "-e",
                "many",
            ],
            env=_env(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(3)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    runs = _runs(home, "many")
    assert sorted(runs["params.seed"]) == ["0", "1", "2"] and set(runs.status) == {"FINISHED"}
    client = mlflow.MlflowClient()
    for run_id in runs.run_id:
        assert sorted(m.step for m in client.get_metric_history(run_id, "batch_loss")) == list(range(1, 301))
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="params.safetensors", dst_path=str(tmp_path / run_id)
        )
        assert load_file(path)["params"].ndim == 1


def test_optlab_run_loads_no_plotting_or_statistics_library(tmp_path):
    """A run's process needs torch and a store, not what reports and analyses use: importing pandas, scipy
    and seaborn cost `optlab run` about a second of start-up (the UI's views pulled them in once)."""
    code = (
        "import sys\n"
        "from optlab.cli import main\n"
        "try:\n"
        "    main(['run', '-s', 'adam', '--lr', '0.01', '-d', 'digits', '--epochs', '1', '--device', 'cpu'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in ('pandas', 'scipy', 'seaborn', 'matplotlib', 'plotly') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, timeout=300, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
