"""Bulk writes and reads of the sweep's bookkeeping: runs written in one transaction hold the rows MLflow's
client writes and fall back to it on a store of another layout; curves of many runs are read in one query
per metric; resume and selection on a store with thousands of runs read it a fixed number of times."""

import math
import sqlite3

import pandas as pd
import pytest
from store_rows import run_rows
from sweep_helpers import write_spec

from optlab.sweeps import load, resume
from optlab.sweeps.executor import latest_runs, read_selection, reported_points, summarize
from optlab.tracking import bulk_reads, sqlite_recorder
from optlab.tracking.bulk_runs import RunRows, set_tags, write_runs
from optlab.tracking.store import client, ensure_experiment


@pytest.fixture
def home(store, monkeypatch):
    monkeypatch.delenv(sqlite_recorder.WRITER_ENV, raising=False)
    return store


def _experiment(name: str = "e") -> tuple:
    mlflow_client = client()
    return mlflow_client, ensure_experiment(mlflow_client, name)


def _rows(home, run_id: str) -> dict:
    return run_rows(home / "mlruns" / "mlflow.db", run_id)


def _counts(home) -> dict:
    with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


RUN = RunRows(
    "adam lr=0.01 (2 seeds: 0-1)",
    {"optlab.role": "group", "optlab.sweep": "e", "mlflow.parentRunId": "p"},
    {"lr": "0.01", "seeds": "0,1"},
    [
        ("final/val_loss/mean", 0.5, 0),
        ("val_loss", 0.9, 0),
        ("val_loss", 0.7, 1),
        ("val_loss", 0.6, 2),
        ("epoch", float("nan"), 0),
        ("epoch", float("inf"), 1),
    ],
)


def test_runs_written_in_one_transaction_hold_the_rows_mlflows_client_writes(home, monkeypatch):
    mlflow_client, experiment_id = _experiment()
    monkeypatch.setenv(sqlite_recorder.WRITER_ENV, "mlflow")
    before = _counts(home)
    (through_mlflow,) = write_runs(mlflow_client, experiment_id, [RUN])
    between = _counts(home)
    monkeypatch.delenv(sqlite_recorder.WRITER_ENV)
    direct = write_runs(mlflow_client, experiment_id, [RUN, RUN])
    after = _counts(home)
    assert {t: after[t] - between[t] for t in after} == {t: 2 * (between[t] - before[t]) for t in after}
    assert _rows(home, direct[0]) == _rows(home, direct[1]) == _rows(home, through_mlflow)
    run = mlflow_client.get_run(direct[0])
    assert run.info.status == "FINISHED" and run.data.metrics["val_loss"] == 0.6
    assert [m.step for m in mlflow_client.get_metric_history(direct[0], "val_loss")] == [0, 1, 2]


def test_tags_set_in_one_transaction_are_the_tags_mlflow_sets(home, monkeypatch):
    mlflow_client, experiment_id = _experiment()
    ids = write_runs(mlflow_client, experiment_id, [RUN, RUN])
    set_tags(mlflow_client, [(ids[0], "mlflow.parentRunId", "g1"), (ids[1], "optlab.selected", "false")])
    monkeypatch.setenv(sqlite_recorder.WRITER_ENV, "mlflow")
    set_tags(mlflow_client, [(ids[1], "mlflow.parentRunId", "g2")])
    assert mlflow_client.get_run(ids[0]).data.tags["mlflow.parentRunId"] == "g1"
    assert {k: v for k, v in mlflow_client.get_run(ids[1]).data.tags.items() if k != "mlflow.runName"} == {
        **RUN.tags,
        "mlflow.parentRunId": "g2",
        "optlab.selected": "false",
    }


def test_a_store_of_another_layout_gets_mlflows_calls(home, monkeypatch):
    mlflow_client, experiment_id = _experiment()
    with sqlite3.connect(home / "mlruns" / "mlflow.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'abcdef012345'")
    calls = []
    original = mlflow_client.create_run
    monkeypatch.setattr(mlflow_client, "create_run", lambda *a, **k: calls.append(1) or original(*a, **k))
    ids = write_runs(mlflow_client, experiment_id, [RUN, RUN])
    assert len(calls) == 2 and all(mlflow_client.get_run(i).info.status == "FINISHED" for i in ids)


def test_a_value_beyond_mlflows_limits_is_left_to_mlflow(home, monkeypatch):
    mlflow_client, experiment_id = _experiment()
    calls = []
    original = mlflow_client.create_run
    monkeypatch.setattr(mlflow_client, "create_run", lambda *a, **k: calls.append(1) or original(*a, **k))
    long = RunRows("x", {"optlab.note": "y" * 9000})
    write_runs(mlflow_client, experiment_id, [long])
    assert calls == [1]


def test_curves_of_many_runs_are_read_in_one_query_per_metric_and_equal_mlflows_histories(home, monkeypatch):
    mlflow_client, experiment_id = _experiment()
    ids = write_runs(mlflow_client, experiment_id, [RUN] * 5)
    store = mlflow_client._tracking_client.store
    bulk_calls, single_calls = [], []
    bulk = store.get_metric_history_bulk
    monkeypatch.setattr(store, "get_metric_history_bulk", lambda *a, **k: bulk_calls.append(1) or bulk(*a, **k))
    single = mlflow_client.get_metric_history
    monkeypatch.setattr(mlflow_client, "get_metric_history", lambda *a: single_calls.append(1) or single(*a))
    keys = ["val_loss", "epoch", "missing"]
    direct = bulk_reads.metric_histories(mlflow_client, ids, keys)  # SQLite of the checked layout: plain SQL
    assert bulk_calls == [] and single_calls == []
    monkeypatch.setattr(bulk_reads, "database", lambda uri: None)  # another SQL store: MLflow's bulk read
    read = bulk_reads.metric_histories(mlflow_client, ids, keys)
    assert len(bulk_calls) == 3 and single_calls == []
    monkeypatch.setattr(bulk_reads, "_bulk_reader", lambda c: None)  # a tracking server: per-run calls
    again = bulk_reads.metric_histories(mlflow_client, ids, keys)
    assert repr(sorted(again.items())) == repr(sorted(read.items())) == repr(sorted(direct.items()))  # NaN == NaN
    assert len(single_calls) == 15
    assert read[(ids[0], "val_loss")] == {0: 0.9, 1: 0.7, 2: 0.6} and (ids[0], "missing") not in read
    assert math.isnan(direct[(ids[0], "epoch")][0])


def _synthetic_sweep(tmp_path, n_seeds: int):
    """A tuned sweep's every trial recorded FINISHED in bulk (no training): n_seeds tuning seeds x 4 trials."""
    seeds = ", ".join(map(str, range(n_seeds)))
    spec = load(
        write_spec(
            tmp_path,
            f"""
        [grid]
        strategy = ["minibatch", "adam"]

        [tune]
        lr = [0.1, 0.5]
        objective = "train_loss"
        seeds = [{seeds}]

        [rerun]
        seeds = [10000, 10001]
        """,
            name="big",
        ),
        max_points=100_000,
    )
    mlflow_client, experiment_id = _experiment("big")
    rows = []
    for i, point in enumerate(spec.points):
        tags = {
            **point.tags(spec.name),
            "optlab.status": "FINISHED",
            "optlab.summary.wall_time": "0.5",
            "optlab.timing": "alone",
            resume.OWNER_TAG: "elsewhere:1",
        }
        rows.append(
            RunRows(
                point.config.label(),
                tags,
                {"seed": str(point.config.seed), "lr": str(point.config.lr)},
                [("train_loss", 1.0 / (1 + i % 7), 10), ("val_loss", 0.5, 10)],
            )
        )
    write_runs(mlflow_client, experiment_id, rows)
    return spec, mlflow_client, experiment_id


@pytest.mark.parametrize("writer", ["direct", "mlflow"])
def test_resume_and_selection_on_thousands_of_runs_read_the_store_a_fixed_number_of_times(
    home, tmp_path, monkeypatch, writer
):
    """Each phase reads the sweep's runs once: one SQLite snapshot (sqlite_search.py), or through MLflow
    (a store of another layout, a tracking server) its pages of 1,000 runs."""
    from optlab.tracking import sqlite_search

    spec, mlflow_client, experiment_id = _synthetic_sweep(tmp_path, 500)  # 2,000 finished trials
    assert len(spec.points) == 2000
    monkeypatch.setenv(sqlite_recorder.WRITER_ENV, writer)
    searches = []
    original = mlflow_client.search_runs
    monkeypatch.setattr(mlflow_client, "search_runs", lambda *a, **k: searches.append(1) or original(*a, **k))
    direct = sqlite_search.runs_with_tags
    monkeypatch.setattr(sqlite_search, "runs_with_tags", lambda *a: searches.append(1) or direct(*a))
    per_phase = 1 + 2 * (writer == "mlflow")  # the direct attempt, then MLflow's two pages
    forbidden = lambda *a, **k: pytest.fail("a per-run read")  # noqa: E731
    monkeypatch.setattr(mlflow_client, "get_run", forbidden)
    monkeypatch.setattr(mlflow_client, "get_metric_history", forbidden)
    state = resume.reconcile(mlflow_client, experiment_id, spec.name)
    assert len(state.finished) == 2000 and len(searches) == per_phase
    searches.clear()
    reruns = reported_points(spec, mlflow_client, experiment_id)
    assert len(reruns) == 4 and len(searches) == per_phase
    searches.clear()
    runs = resume.children(mlflow_client, experiment_id, spec.name)
    report = summarize(mlflow_client, experiment_id, spec, "parent", False, set(state.finished), runs)
    assert report.counts["skipped"] == 2000 and len(searches) == per_phase
    _, selections = read_selection(spec, latest_runs(mlflow_client, experiment_id, spec, runs))
    assert set(selections) == {g for g in spec.groups}


def test_runs_read_directly_are_the_runs_mlflows_search_returns(home, monkeypatch):
    """Same runs, order, info, tags, params and latest metrics (NaN included) as MlflowClient.search_runs;
    deleted runs, other experiments and other tag values are left out; a run with a dataset input is
    left to MLflow."""
    from optlab.tracking import sqlite_search

    mlflow_client, experiment_id = _experiment("e")
    _, other = _experiment("other")
    ids = write_runs(mlflow_client, experiment_id, [RUN] * 3)
    write_runs(mlflow_client, other, [RUN])
    by_mlflow = mlflow_client.create_run(experiment_id, tags={"optlab.sweep": "e", "optlab.role": "group"})
    mlflow_client.log_metric(by_mlflow.info.run_id, "m", float("nan"), step=3)
    mlflow_client.log_param(by_mlflow.info.run_id, "p", "1")
    mlflow_client.create_run(experiment_id, tags={"optlab.sweep": "E", "optlab.role": "group"})  # another value
    mlflow_client.delete_run(ids[2])
    wanted = {"optlab.sweep": "e", "optlab.role": "group"}
    direct = sqlite_search.runs_with_tags(mlflow_client.tracking_uri, experiment_id, wanted)
    through_mlflow = mlflow_client.search_runs(
        [experiment_id], "tags.`optlab.sweep` = 'e' and tags.`optlab.role` = 'group'"
    )

    def shown(runs):
        return [
            repr({**r.to_dictionary(), "data": {k: sorted(v.items()) for k, v in r.to_dictionary()["data"].items()}})
            for r in runs
        ]

    assert len(direct) == 3 and shown(direct) == shown(through_mlflow)
    assert [r.info.run_id for r in direct] == [
        r.info.run_id for r in resume.search_tags(mlflow_client, experiment_id, wanted)
    ]
    from mlflow.entities import Dataset, DatasetInput

    mlflow_client.log_inputs(ids[0], [DatasetInput(Dataset("d", "h", "s", "src"))])
    assert sqlite_search.runs_with_tags(mlflow_client.tracking_uri, experiment_id, wanted) is None


def test_points_recorded_through_mlflow_batch_their_metrics_and_check_the_artifact_folder_once(home, monkeypatch):
    """A tracking server's round trips per run: 2,500 metric points are three log_batch calls (MLflow's
    limit is 1,000 metrics a call), and the artifact folder's check is made once per process, not per run."""
    from mlflow.tracking import MlflowClient

    from optlab.config import RunConfig
    from optlab.tracking import recorder as recorder_module
    from optlab.tracking.background import PlanFacts, ProblemFacts

    mlflow_client, experiment_id = _experiment()
    parent = mlflow_client.create_run(experiment_id).info.run_id
    calls = {"log_batch metrics": 0, "get_experiment": 0}
    log_batch, get_experiment = MlflowClient.log_batch, MlflowClient.get_experiment

    def counting_log_batch(self, run_id, metrics=(), *args, **kwargs):
        calls["log_batch metrics"] += bool(metrics)
        return log_batch(self, run_id, metrics, *args, **kwargs)

    def counting_get_experiment(self, *args, **kwargs):
        calls["get_experiment"] += 1
        return get_experiment(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counting_log_batch)
    monkeypatch.setattr(MlflowClient, "get_experiment", counting_get_experiment)
    monkeypatch.setattr(recorder_module, "_checked", set())
    monkeypatch.setattr(recorder_module, "log_columns_fast", lambda *a: False)  # as on a server: log_batch
    config = RunConfig.from_dict({"strategy": "adam", "lr": 0.01, "dataset": "digits", "steps": 3})
    for _ in range(2):
        run = recorder_module.RunRecorder(experiment_id=experiment_id, parent_run_id=parent)
        run.start(config, ProblemFacts(4, "f", "1/1/1"), PlanFacts(32, 1.0, 3), {"optlab.sweep": "e"})
        run.log_series(list(range(1250)), {"batch_loss": [1.0] * 1250, "lr": [0.01] * 1250})
        run.finish("FINISHED", None, {}, None)
        assert run.status == "FINISHED"
    assert calls == {"log_batch metrics": 6, "get_experiment": 1}


def _reruns(experiment_id: str, mlflow_client, configurations: int, seeds: int = 3) -> None:
    """`configurations` x `seeds` finished reruns of one workload, with curves, recorded in bulk."""
    rows = []
    for c in range(configurations):
        for seed in range(seeds):
            accuracy = 0.5 + 0.01 * c + 0.001 * seed
            rows.append(
                RunRows(
                    f"adam lr={c} rerun seed={seed}",
                    {
                        "optlab.sweep": "many",
                        "optlab.role": "rerun",
                        "optlab.strategy": "adam",
                        "optlab.workload": "w",
                        "mlflow.parentRunId": "parent",
                    },
                    {"lr": str(c), "seed": str(seed)},
                    [("val_accuracy", accuracy, 2), ("test_accuracy", accuracy, 2)]
                    + [
                        (k, v, s)
                        for s in range(3)
                        for k, v in (("gradient_equivalents", 1.0 + s), ("val_loss", 1 / (1 + s + c)))
                    ],
                )
            )
    write_runs(mlflow_client, experiment_id, rows)


@pytest.mark.parametrize("configurations", [2, 40])
def test_seed_groups_read_and_write_the_store_a_fixed_number_of_times_whatever_their_number(
    home, monkeypatch, configurations
):
    from optlab.sweeps import seed_groups
    from optlab.tracking import sqlite_search

    mlflow_client, experiment_id = _experiment("many")
    _reruns(experiment_id, mlflow_client, configurations)
    calls = []
    for name in (
        "search_runs",
        "get_run",
        "get_metric_history",
        "set_tag",
        "create_run",
        "log_batch",
        "set_terminated",
    ):
        original = getattr(mlflow_client, name)
        monkeypatch.setattr(mlflow_client, name, lambda *a, _o=original, _n=name, **k: calls.append(_n) or _o(*a, **k))
    store = mlflow_client._tracking_client.store
    original_bulk = store.get_metric_history_bulk
    monkeypatch.setattr(
        store, "get_metric_history_bulk", lambda *a, **k: calls.append("bulk") or original_bulk(*a, **k)
    )
    direct = sqlite_search.runs_with_tags
    monkeypatch.setattr(sqlite_search, "runs_with_tags", lambda *a: calls.append("read runs") or direct(*a))
    groups = seed_groups.record(mlflow_client, experiment_id, "parent", "many")
    assert len(groups) == configurations
    assert calls == ["read runs", "read runs"]  # the sweep's runs, its group runs: no call per group
    recorded = [mlflow_client.get_run(g) for g in groups]
    assert {r.data.tags["optlab.verdict"] for r in recorded} >= {"best"}
    assert all(len(mlflow_client.get_metric_history(g, "val_loss")) == seed_groups.GRID_POINTS for g in groups)


class _ServerClient:
    """MLflow's client calls on a tracking server; the first call is held until a second one is in flight:
    a store that wrote run after run would never get past it (the barrier breaks after 10 s)."""

    tracking_uri = "http://127.0.0.1:5000"

    def __init__(self):
        import threading

        self.together = threading.Barrier(2, timeout=10)
        self.lock = threading.Lock()
        self.calls = 0
        self.tags: dict[str, list[tuple[str, str]]] = {}
        self.ended: dict[str, str] = {}

    def _first_two_meet(self):
        with self.lock:
            self.calls += 1
            held = self.calls <= 2
        if held:
            self.together.wait()

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self._first_two_meet()
        with self.lock:
            self.tags.setdefault(run_id, []).extend((t.key, t.value) for t in tags)

    def create_run(self, experiment_id, run_name=None, tags=None):
        from types import SimpleNamespace

        self._first_two_meet()
        return SimpleNamespace(info=SimpleNamespace(run_id=f"id-{run_name}"))

    def set_terminated(self, run_id, status):
        with self.lock:
            self.ended[run_id] = status


def test_on_a_tracking_server_runs_are_written_several_at_once_each_runs_calls_in_order():
    server = _ServerClient()
    tags = [(f"r{i}", f"k{j}", f"v{j}") for i in range(6) for j in range(150)]  # two calls a run, in order
    set_tags(server, tags)
    assert server.tags == {f"r{i}": [(f"k{j}", f"v{j}") for j in range(150)] for i in range(6)}

    runs = [RunRows(name=f"g{i}", tags={"optlab.role": "group"}, metrics=[("loss", 1.0, 0)]) for i in range(5)]
    server = _ServerClient()
    assert write_runs(server, "1", runs) == [f"id-g{i}" for i in range(5)]  # ids in the runs' order
    assert server.ended == {f"id-g{i}": "FINISHED" for i in range(5)}


def test_on_a_tracking_server_a_failed_call_is_raised_after_the_other_runs_are_written():
    class Failing(_ServerClient):
        def log_batch(self, run_id, metrics=(), params=(), tags=()):
            if run_id == "r1":
                raise OSError("server said 503")
            super().log_batch(run_id, metrics, params, tags)

    server = Failing()
    server.calls = 2  # no barrier: the failing call may come first
    with pytest.raises(OSError, match="503"):
        set_tags(server, [(f"r{i}", "k", "v") for i in range(8)])
    assert sorted(server.tags) == [f"r{i}" for i in range(8) if i != 1]


def test_asking_whether_a_store_is_mlflows_sql_store_never_loads_it_for_a_server(home):
    """On a tracking server the seed groups' curve reads and a worker's flushes ask whether the store is MLflow's
    SqlAlchemyStore; answering must not import it (about a second of CPU after the last point, every slot idle)."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from mlflow.tracking import MlflowClient\n"
        "from optlab.tracking import bulk_reads, fast_metrics\n"
        "from optlab.tracking.store import SQL_STORE_MODULE, sql_store\n"
        "server = MlflowClient('http://127.0.0.1:9')\n"
        "assert sql_store(server) is None\n"
        "assert bulk_reads.metric_histories(server, [], ['val_loss']) == {}\n"
        "assert fast_metrics.log_columns_fast(server, 'r', [], [], [], []) is False\n"
        "print(SQL_STORE_MODULE in sys.modules)\n"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "False"
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from optlab.tracking.store import sql_store

    assert isinstance(sql_store(client()), SqlAlchemyStore)  # the default store is one


def test_a_reports_histories_are_read_in_bulk_and_equal_the_per_run_histories(home, monkeypatch):
    from optlab.reports.load import Store

    mlflow_client, experiment_id = _experiment()
    twice = RunRows(RUN.name, RUN.tags, RUN.params, [*RUN.metrics, ("val_loss", 0.65, 2)])  # a step logged twice
    ids = write_runs(mlflow_client, experiment_id, [RUN] * 3 + [twice])
    runs = pd.DataFrame({"run_id": ids, "seed": range(len(ids))})
    store = Store(progress=False)
    single_calls = []
    single = store.client.get_metric_history
    monkeypatch.setattr(store.client, "get_metric_history", lambda *a: single_calls.append(1) or single(*a))
    bulk = store.history(runs, keys=("val_loss", "epoch", "missing"))
    assert single_calls == []  # every curve came from the bulk read
    one_by_one = Store(progress=False)
    monkeypatch.setattr(one_by_one, "_read_ahead", lambda *a: None)  # the per-run reads it replaces
    expected = one_by_one.history(runs, keys=("val_loss", "epoch", "missing"))
    pd.testing.assert_frame_equal(bulk, expected)
    assert bulk[bulk["run_id"] == ids[3]]["val_loss"].tolist() == [0.9, 0.7, 0.65]  # the last in MLflow's history order
    assert store.metric(ids[0], "val_loss")["value"].tolist() == [0.9, 0.7, 0.6]
