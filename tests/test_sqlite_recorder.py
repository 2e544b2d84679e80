"""The direct SQLite recorder (tracking/sqlite_recorder.py) that `optlab run` uses on an existing store:
it writes the rows MLflow writes for the same run, MLflow reads its runs as its own, it steps aside for
MLflow whenever the store is not the layout it knows, and it keeps the promise of a FINISHED run."""

import errno
import math
import socket
import sqlite3
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from safetensors.numpy import load_file
from store_rows import run_rows

from optlab.config import RunConfig
from optlab.errors import StoreError
from optlab.tracking import sqlite_recorder
from optlab.tracking.background import PlanFacts, ProblemFacts
from optlab.tracking.owners import OWNER_TAG
from optlab.tracking.recorder import RunRecorder
from optlab.tracking.sqlite_recorder import NotDirect, SqliteRunRecorder
from optlab.tracking.store import client, default_uri, ensure_experiment

FACTS = ProblemFacts(n_params=4, data_fingerprint="f1ngerprint", data_split="1257/180/360")
PLAN = PlanFacts(batch_size=32, steps_per_epoch=39.28125, max_steps=3)
WEIGHTS = np.array([0.5, -1.25, 3.0, 7.75], dtype=np.float32)


@pytest.fixture
def home(store, monkeypatch):
    monkeypatch.delenv(sqlite_recorder.WRITER_ENV, raising=False)
    return store


def _described(name: str = "e") -> MlflowClient:
    mlflow_client = client()
    ensure_experiment(mlflow_client, name)
    return mlflow_client


def _config(**changes) -> RunConfig:
    return RunConfig.from_dict(
        {"strategy": "adam", "lr": 0.01, "dataset": "digits", "steps": 3, "experiment": "e", **changes}
    )


def _record(recorder, status: str = "FINISHED", tags: dict | None = None) -> str:
    recorder.start(
        _config(), FACTS, PLAN, extra_tags={"optlab.family": "first-order", "optlab.timing": "alone", **(tags or {})}
    )
    recorder.log(0, {"val_accuracy": 0.1, "train_loss": 2.5, "epoch": 0.0})
    recorder.log_series([1, 2, 3], {"batch_loss": [2.0, math.nan, math.inf], "lr": [0.01, 0.01, 0.005]})
    recorder.log(3, {"val_accuracy": 0.75, "train_loss": -math.inf, "epoch": 3 / 39.28125})
    recorder.finish(status, None if status == "FINISHED" else "diverged: test", {"steps": 3, "wall_time": 0.5}, WEIGHTS)
    return recorder.run_id


def _rows(home: Path, run_id: str) -> dict:
    """Everything the store holds of a run, without its ids and clock times."""
    out = run_rows(home / "mlruns" / "mlflow.db", run_id)
    with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
        stamps = db.execute(
            "SELECT min(m.timestamp) >= r.start_time, max(m.timestamp) <= r.end_time FROM metrics m "
            "JOIN runs r ON r.run_uuid = m.run_uuid WHERE m.run_uuid = ?",
            (run_id,),
        ).fetchone()
        out["stamps within the run"] = stamps
    folder = home / "mlruns" / "artifacts" / run_id / "artifacts"
    out["artifacts"] = sorted(p.name for p in folder.iterdir())
    out["config.json"] = (folder / "config.json").read_text()
    weights = folder / "params.safetensors"  # a FINISHED run's only
    out["weights"] = load_file(weights)["params"].tolist() if weights.exists() else None
    return out


def test_the_store_mlflow_creates_is_the_layout_written_directly(home):
    """Fails when an MLflow upgrade moves its schema: the direct writer must then be checked again."""
    _described()
    assert sqlite_recorder.database(default_uri()) == home / "mlruns" / "mlflow.db"
    with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
        found = db.execute("SELECT version_num FROM alembic_version").fetchall()
    assert found == [(sqlite_recorder.SCHEMA_REVISION,)], schema_moved_message(found)


def schema_moved_message(found) -> str:
    revision = found[0][0] if found else "none"
    return (
        f"MLflow {mlflow.__version__} creates stores at schema revision {revision}; the direct writer knows "
        f"revision {sqlite_recorder.SCHEMA_REVISION} (MLflow 3.17). To go back to the tested MLflow: `make install` "
        f"(requirements.lock pins it). To move to this MLflow: set SCHEMA_REVISION = {revision!r} in "
        f"optlab/tracking/sqlite_recorder.py, make `pytest tests/test_sqlite_recorder.py` pass (it compares the "
        f"direct writer's rows with MLflow's), widen the mlflow range in pyproject.toml, then `make lock`."
    )


def test_a_moved_schema_says_which_revisions_and_what_to_do():
    message = schema_moved_message([("abcdef012345",)])
    assert "schema revision abcdef012345" in message and sqlite_recorder.SCHEMA_REVISION in message
    assert "SCHEMA_REVISION = 'abcdef012345'" in message and "make lock" in message and "make install" in message


def _counts(home: Path) -> dict[str, int]:
    """Rows in every table of the store."""
    with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


@pytest.mark.parametrize("status", ["FINISHED", "FAILED"])
def test_a_direct_run_holds_the_rows_mlflow_writes_for_the_same_run(home, status):
    _described()
    before = _counts(home)
    through_mlflow = _record(RunRecorder(experiment="e"), status)
    between = _counts(home)
    direct = SqliteRunRecorder.open(default_uri(), "e")
    assert direct is not None
    written_directly = _record(direct, status)
    after = _counts(home)
    # no table MLflow writes for a run is left out (inputs, logged models, ...)
    assert {t: after[t] - between[t] for t in after} == {t: between[t] - before[t] for t in after}
    expected, got = _rows(home, through_mlflow), _rows(home, written_directly)
    assert got == expected
    assert got["stamps within the run"] == (1, 1)
    assert ("batch_loss", 0.0, 2, 1) in got["metrics"]  # NaN: 0 with is_nan, as MLflow
    assert ("batch_loss", 1.7976931348623157e308, 3, 0) in got["metrics"]  # +inf: the largest float
    assert direct.status == status
    assert (got["weights"] is not None) == (status == "FINISHED")


def test_mlflow_reads_a_direct_run_as_its_own(home):
    mlflow_client = _described()
    run_id = _record(SqliteRunRecorder.open(default_uri(), "e"))
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == _config().label()
    assert run.data.tags["optlab.status"] == "FINISHED" and run.data.tags["optlab.summary.steps"] == "3"
    assert run.data.params["n_params"] == "4" and run.data.params["strategy"] == "adam"
    assert run.data.metrics["val_accuracy"] == 0.75 and math.isnan(run.data.metrics["batch_loss"]) is False
    history = mlflow_client.get_metric_history(run_id, "batch_loss")
    assert [m.step for m in history] == [1, 2, 3] and math.isnan(history[1].value)
    found = mlflow_client.search_runs(
        [run.info.experiment_id],
        "tags.`optlab.status` = 'FINISHED' and params.strategy = 'adam' and metrics.val_accuracy > 0.5",
    )
    assert [r.info.run_id for r in found] == [run_id]
    assert sorted(a.path for a in mlflow_client.list_artifacts(run_id)) == ["config.json", "params.safetensors"]
    weights = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="params.safetensors", dst_path=str(home / "download")
    )
    assert load_file(weights)["params"].tolist() == WEIGHTS.tolist()
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == _config().to_dict()


def test_points_stored_in_several_flushes_keep_the_latest_value_per_metric(home):
    _described()
    recorder = SqliteRunRecorder.open(default_uri(), "e")
    recorder.start(_config(), FACTS, PLAN)
    recorder.log(2, {"val_accuracy": 0.5})
    recorder.flush()
    recorder.log(1, {"val_accuracy": 0.9})  # an older step logged later: not the latest
    recorder.log(3, {"train_loss": 1.0})
    recorder.flush()
    recorder.finish("FINISHED", None, {}, WEIGHTS)
    run = client().get_run(recorder.run_id)
    assert run.data.metrics == {"val_accuracy": 0.5, "train_loss": 1.0}
    assert sorted(m.step for m in client().get_metric_history(recorder.run_id, "val_accuracy")) == [1, 2]


def _set_up(home, case: str, monkeypatch) -> str:
    """A store where the direct writer must step aside; returns the experiment name to ask for."""
    if case == "no database yet":
        return "e"
    mlflow_client = _described()
    if case == "another schema revision":
        with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
            db.execute("UPDATE alembic_version SET version_num = 'abcdef012345'")
    elif case == "a new experiment":
        return "not-yet"
    elif case == "a deleted experiment":
        mlflow_client.delete_experiment(mlflow_client.get_experiment_by_name("e").experiment_id)
    elif case == "an experiment without optlab's UI tags":
        mlflow_client.create_experiment("plain", artifact_location=(home / "mlruns" / "artifacts").as_uri())
        return "plain"
    elif case == "remote artifacts":
        mlflow_client.create_experiment("remote", artifact_location="s3://bucket/optlab")
        ensure_experiment(mlflow_client, "remote")
        return "remote"
    elif case == "switched off":
        monkeypatch.setenv(sqlite_recorder.WRITER_ENV, "mlflow")
    elif case == "MLflow workspaces":
        monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    return "e"


@pytest.mark.parametrize(
    "case",
    [
        "no database yet",
        "another schema revision",
        "a new experiment",
        "a deleted experiment",
        "an experiment without optlab's UI tags",
        "remote artifacts",
        "switched off",
        "MLflow workspaces",
    ],
)
def test_the_direct_writer_steps_aside_for_a_store_it_does_not_know(home, case, monkeypatch):
    experiment = _set_up(home, case, monkeypatch)
    assert SqliteRunRecorder.open(default_uri(), experiment) is None


def test_the_direct_writer_takes_only_sqlite_stores(home):
    _described()
    assert SqliteRunRecorder.open("http://127.0.0.1:5000", "e") is None
    assert SqliteRunRecorder.open("postgresql://u@127.0.0.1/db", "e") is None
    assert SqliteRunRecorder.open("sqlite:///:memory:", "e") is None


def test_a_value_beyond_mlflows_limits_is_left_to_mlflow_before_anything_is_written(home):
    _described()
    recorder = SqliteRunRecorder.open(default_uri(), "e")
    with pytest.raises(NotDirect):
        recorder.start(_config(), FACTS, PLAN, extra_tags={"optlab.note": "x" * 9000})
    with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_metrics_write_that_fails_ends_the_run_failed_with_the_reason(home, monkeypatch):
    _described()
    recorder = SqliteRunRecorder.open(default_uri(), "e")

    def full(self):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SqliteRunRecorder, "flush", full)
    _record(recorder)
    run = client().get_run(recorder.run_id)
    assert run.info.status == "FAILED" == recorder.status
    assert run.data.tags["optlab.failure_reason"] == recorder.reason
    assert recorder.reason.startswith("storage: metrics: ") and recorder.reason.endswith("the disk is full")


def test_weights_that_cannot_be_written_end_the_run_failed(home, monkeypatch):
    _described()
    recorder = SqliteRunRecorder.open(default_uri(), "e")

    def no_space(params, path):
        Path(path).write_bytes(b"half a header")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(sqlite_recorder, "save_weights", no_space)
    _record(recorder)
    run = client().get_run(recorder.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["optlab.failure_reason"].startswith("storage: weights: ")
    assert "no space left" in run.data.tags["optlab.failure_reason"].lower()
    assert [a.path for a in client().list_artifacts(recorder.run_id)] == ["config.json"]  # no partial weights


def test_a_run_whose_end_cannot_be_written_raises_and_stays_running(home, monkeypatch):
    _described()
    recorder = SqliteRunRecorder.open(default_uri(), "e")

    def locked(self, status, tags):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SqliteRunRecorder, "_end", locked)
    with pytest.raises(StoreError, match="could not record its end .*stays RUNNING"):
        _record(recorder)
    assert client().get_run(recorder.run_id).info.status == "RUNNING"


def test_a_run_left_running_by_a_dead_process_is_closed_killed_at_the_next_start(home):
    mlflow_client = _described()
    experiment_id = mlflow_client.get_experiment_by_name("e").experiment_id
    host = socket.gethostname()
    dead = mlflow_client.create_run(experiment_id, tags={OWNER_TAG: f"{host}:999999999"}).info.run_id
    sweeps = mlflow_client.create_run(experiment_id, tags={OWNER_TAG: f"{host}:999999999", "optlab.sweep": "s"})
    _record(SqliteRunRecorder.open(default_uri(), "e"))
    closed = mlflow_client.get_run(dead)
    assert closed.info.status == "KILLED" and closed.info.end_time is not None
    assert closed.data.tags["optlab.failure_reason"] == f"interrupted: its process ({host}:999999999) died"
    assert mlflow_client.get_run(sweeps.info.run_id).info.status == "RUNNING"  # a sweep closes its own runs


SWEEP_TAGS = {"optlab.sweep": "e", "optlab.role": "rerun", "optlab.point_hash": "abc123", OWNER_TAG: "host:1"}


@pytest.mark.parametrize("status", ["FINISHED", "FAILED"])
def test_a_sweep_point_written_directly_holds_the_rows_mlflows_client_writes(home, status):
    """A sweep's point, nested under its parent run: the rows of the direct writer and of MLflow's client."""
    from optlab.tracking.point_recorder import PointRecorder

    mlflow_client = _described()
    experiment_id = mlflow_client.get_experiment_by_name("e").experiment_id
    parent = mlflow_client.create_run(experiment_id, tags={"optlab.role": "parent"}).info.run_id
    before = _counts(home)
    through_mlflow = _record(RunRecorder(experiment_id=experiment_id, parent_run_id=parent), status, SWEEP_TAGS)
    between = _counts(home)
    point = PointRecorder(default_uri(), experiment_id, parent)
    written_directly = _record(point, status, SWEEP_TAGS)
    assert isinstance(point.writer, SqliteRunRecorder) and point.status == status
    after = _counts(home)
    assert {t: after[t] - between[t] for t in after} == {t: between[t] - before[t] for t in after}
    expected, got = _rows(home, through_mlflow), _rows(home, written_directly)
    assert got == expected
    assert ("mlflow.parentRunId", parent) in got["tags"] and ("optlab.point_hash", "abc123") in got["tags"]
    nested = mlflow_client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert sorted(r.info.run_id for r in nested) == sorted([through_mlflow, written_directly])


@pytest.mark.parametrize("case", ["another schema revision", "switched off"])
def test_a_sweep_point_is_recorded_through_mlflow_when_the_store_is_not_the_known_layout(home, case, monkeypatch):
    from optlab.tracking.point_recorder import PointRecorder

    _set_up(home, case, monkeypatch)
    experiment_id = client().get_experiment_by_name("e").experiment_id
    point = PointRecorder(default_uri(), experiment_id, None)
    run_id = _record(point, "FINISHED", SWEEP_TAGS)
    assert isinstance(point.writer, RunRecorder) and point.status == "FINISHED"
    assert _rows(home, run_id)["artifacts"] == ["config.json", "params.safetensors"]


def test_a_sweep_point_beyond_mlflows_limits_is_recorded_through_mlflow(home):
    from optlab.tracking.point_recorder import PointRecorder

    experiment_id = _described().get_experiment_by_name("e").experiment_id
    point = PointRecorder(default_uri(), experiment_id, None)
    _record(point, "FINISHED", {**SWEEP_TAGS, "optlab.note": "x" * 9000})
    assert isinstance(point.writer, RunRecorder) and point.status == "FINISHED"
