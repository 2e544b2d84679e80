"""The store under faults: a full disk during the final writes (a fault-injecting client, and a real
3 MB tmpfs where mounting is allowed), many processes creating one new store, and every failure a
user can cause (files, permissions, disk) reaching the terminal as one line, leaving nothing RUNNING."""

import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from fault_helpers import assert_one_finished_per_point, env_for, optlab, points_of, runs_of
from sweep_helpers import write_spec

from optlab.cli import main
from optlab.sweeps import load, run_sweep
from optlab.tracking import recorder as recorder_module

SMOKE = """
    [grid]
    strategy = ["minibatch", "adam"]
    [tune]
    lr = [0.01, 0.1]
    objective = "train_loss"
    seeds = [0, 1]
    [rerun]
    seeds = [2]
"""


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OPTLAB_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


class DiskFullClient:
    """An MlflowClient whose final writes of some runs fail as on a full disk: the weights artifact
    (ENOSPC) and metric batches (SQLite's "database or disk is full"). Everything else is the real
    client, except the bulk-insert shortcut, so metrics go through log_batch."""

    def __init__(self, real, full_runs):
        self._real, self._full = real, full_runs

    def __getattr__(self, name):
        if name == "_tracking_client":  # fast_metrics' shortcut: refused, so it falls back to log_batch
            raise AttributeError(name)
        return getattr(self._real, name)

    def _is_full(self, run_id) -> bool:
        return self._real.get_run(run_id).data.tags.get("optlab.strategy") in self._full

    def log_artifact(self, run_id, local_path, artifact_path=None):
        if self._is_full(run_id) and local_path.endswith("params.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device", local_path)
        return self._real.log_artifact(run_id, local_path, artifact_path)

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        if metrics and self._is_full(run_id):
            from mlflow.exceptions import MlflowException

            raise MlflowException("(sqlite3.OperationalError) database or disk is full")
        return self._real.log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)


def check_complete_or_failed(name):
    """No run claims FINISHED without its metrics, params, status tag and weights."""
    from optlab.tracking.store import client

    c = client()
    for run in points_of(name):
        if run.info.status == "FINISHED":
            assert run.data.metrics and run.data.params and run.data.tags.get("optlab.status") == "FINISHED"
            assert "params.safetensors" in [a.path for a in c.list_artifacts(run.info.run_id)]


def test_a_failed_final_write_is_recorded_failed_and_a_resume_reruns_it(tmp_path, home, monkeypatch):
    spec = load(write_spec(tmp_path, SMOKE, name="diskfull", steps=30))
    monkeypatch.setenv("OPTLAB_STORE_WRITER", "mlflow")  # the faulty client is MLflow's (the direct path: below)
    real = recorder_module.make_client
    monkeypatch.setattr(recorder_module, "make_client", lambda uri=None: DiskFullClient(real(uri), {"minibatch"}))
    report = run_sweep(spec, progress=False)

    check_complete_or_failed("diskfull")
    runs = points_of("diskfull")
    lost = [r for r in runs if r.data.tags["optlab.strategy"] == "minibatch"]
    assert len(lost) == 4 and all(r.info.status == "FAILED" for r in lost)
    for run in lost:
        reason = run.data.tags["optlab.failure_reason"]
        assert reason.startswith("storage: metrics: cannot write the tracking store") and "disk is full" in reason
        assert "weights: disk full (No space left on device)" in reason
    # adam: 4 tuning trials and the rerun of its selection on the fresh seed, all stored
    assert sorted(r.info.status for r in runs if r.data.tags["optlab.strategy"] == "adam") == ["FINISHED"] * 5
    parent = next(r for r in runs_of("diskfull") if r.data.tags.get("optlab.role") == "parent")
    assert parent.info.status == "FAILED"
    assert parent.data.tags["optlab.failure_reason"].startswith("4 points without an outcome: minibatch")
    # nothing to select from for minibatch, so no rerun of it either
    assert len(report.incomplete) == 4 and "diskfull: strategy=minibatch" not in report.selections
    assert [p.group for p in report.reruns] == ["diskfull: strategy=adam"]

    monkeypatch.setattr(recorder_module, "make_client", real)  # space freed
    again = run_sweep(load(write_spec(tmp_path, SMOKE, name="diskfull", steps=30)), progress=False)
    assert again.counts["skipped"] == 5 and again.counts["finished"] == 5 and not again.incomplete
    finished = assert_one_finished_per_point("diskfull", spec.points + again.reruns)
    selected = [r for r in finished if r.data.tags.get("optlab.selected") == "true"]
    assert (
        sorted(r.data.tags["optlab.group"] for r in selected if r.data.tags["optlab.role"] == "tuning")
        == ["diskfull: strategy=adam"] * 2 + ["diskfull: strategy=minibatch"] * 2
    )
    parent = next(r for r in runs_of("diskfull") if r.data.tags.get("optlab.role") == "parent")
    assert parent.info.status == "FINISHED" and "optlab.failure_reason" not in parent.data.tags


def test_a_run_whose_weights_cannot_be_stored_is_failed_and_the_command_says_so(home, monkeypatch, capsys):
    real = recorder_module.make_client
    monkeypatch.setattr(recorder_module, "make_client", lambda uri=None: DiskFullClient(real(uri), {"adam"}))
    code = main(["run", "-s", "adam", "-d", "digits", "--hidden", "8", "--steps", "20", "-q", "-e", "weights"])
    assert code == 2  # a failure the user fixes (here a full disk): one line, exit 2, like every other
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("optlab: error: run FAILED: storage: metrics: ") and err.count("\n") == 1, err
    [run] = runs_of("weights")
    assert f"(run {run.info.run_id})" in err
    assert run.info.status == "FAILED" and run.data.tags["optlab.status"] == "FAILED"


@contextmanager
def tmpfs(path: Path, size: str):
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (the fault-injecting client test covers a full disk)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.slow
def test_a_real_full_disk_mid_sweep_leaves_no_false_finished_and_a_rerun_completes(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "small", "3m") as disk:
        home = disk / "home"
        monkeypatch.setenv("OPTLAB_HOME", str(home))
        path = write_spec(tmp_path, SMOKE, name="fulldisk", steps=60)  # ~80 KB of store a run
        points = load(path)  # the spec: its tuning points, and the reruns of what the store selected
        env = env_for(home)
        created = optlab(["sweep", str(path), "--dry-run"], env)
        created.communicate(timeout=120)
        from optlab.tracking.store import client

        client()  # the store exists (about 1 MB); fill the disk but ~300 KB: room for a few runs, not 8
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(0, free - 300 * 1024))

        proc = optlab(["sweep", str(path), "-q"], env)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode in (1, 2), (out, err)
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("optlab: "), err
        assert "disk is full" in err or "No space left" in err or "have no outcome" in err, err
        check_complete_or_failed("fulldisk")
        done = {r.data.tags["optlab.point_hash"] for r in points_of("fulldisk") if r.info.status == "FINISHED"}
        assert len(done) < len(points.points)  # the disk filled up before the end

        (disk / "filler").unlink()
        rerun = optlab(["sweep", str(path), "-q"], env)
        _, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        finished = assert_one_finished_per_point("fulldisk", points)
        assert (
            sum(
                r.data.tags.get("optlab.selected") == "true" for r in finished if r.data.tags["optlab.role"] == "tuning"
            )
            == 4
        )
        parent = next(r for r in runs_of("fulldisk") if r.data.tags.get("optlab.role") == "parent")
        assert parent.info.status == "FINISHED"


def test_a_real_full_disk_during_a_run_written_directly_is_failed_and_the_next_run_finishes(tmp_path, monkeypatch):
    """`optlab run` on an existing store writes without MLflow (tracking/sqlite_recorder.py): a disk that fills
    up while it stores the points ends the run FAILED with the reason, in one line, and leaves nothing
    RUNNING and no partial weights file."""
    from optlab.tracking.store import client, ensure_experiment

    with tmpfs(tmp_path / "small", "8m") as disk:
        home = disk / "home"
        monkeypatch.setenv("OPTLAB_HOME", str(home))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow's set_tracking_uri exports it
        ensure_experiment(client(), "fullrun")  # the store (about 1 MB) and its experiment exist
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(0, free - 200 * 1024))  # room for the run, not its ~2 MB of points
        argv = [
            "run",
            "-s",
            "minibatch",
            "-d",
            "digits",
            "--steps",
            "3000",
            "--eval-every",
            "100",
            "-q",
            "-e",
            "fullrun",
        ]
        proc = optlab(argv, env_for(home))
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2 and err.count("\n") == 1, err
        assert err.startswith("optlab: error: run FAILED: storage: metrics: ") and "the disk is full" in err, err
        [failed] = runs_of("fullrun")
        assert failed.info.status == "FAILED" and failed.data.tags["optlab.failure_reason"] in err
        assert not (home / "mlruns" / "artifacts" / failed.info.run_id / "artifacts" / "params.safetensors").exists()

        (disk / "filler").unlink()
        rerun = optlab(argv, env_for(home))
        _, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        assert sorted(r.info.status for r in runs_of("fullrun")) == ["FAILED", "FINISHED"]


def test_several_processes_on_a_brand_new_store_all_succeed(tmp_path, home):
    env = env_for(home)
    procs = [
        optlab(
            [
                "run",
                "-s",
                "adam",
                "-d",
                "digits",
                "--hidden",
                "4",
                "--steps",
                "3",
                "-q",
                "-e",
                "fresh",
                "--seed",
                str(i),
            ],
            env,
        )
        for i in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    runs = runs_of("fresh")
    assert sorted(r.data.params["seed"] for r in runs) == ["0", "1", "2", "3"]
    assert all(r.info.status == "FINISHED" for r in runs)


# ---- one line for every failure a user can cause -------------------------------------------------
def one_line_error(capsys, argv, expected_code=2) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert err.startswith("optlab: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def no_run_left_running(home: Path):
    if (home / "mlruns" / "mlflow.db").exists():
        import mlflow

        assert not [s for s in mlflow.search_runs(search_all_experiments=True)["status"] if s == "RUNNING"]


def test_optlab_home_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("OPTLAB_HOME", str(blocker))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import optlab.engine

    def trained(*args, **kwargs):
        raise AssertionError("the run trained before its tracking home was refused")

    monkeypatch.setattr(optlab.engine, "prepare", trained)  # refused before the data is even loaded
    err = one_line_error(capsys, ["run", "-d", "digits", "--steps", "2", "-q"])
    assert str(blocker) in err and "a file is in the way" in err


def test_a_binary_sweep_file_is_one_line(tmp_path, home, capsys):
    path = tmp_path / "binary.toml"
    path.write_bytes(bytes(range(256)) * 4)
    err = one_line_error(capsys, ["sweep", str(path)])
    assert str(path) in err and "not a UTF-8 text file" in err
    assert not (home / "mlruns").exists()


def test_a_report_into_an_unwritable_folder_is_refused_before_building(tmp_path, home, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    err = one_line_error(capsys, ["report", "-o", str(blocker / "out"), "-q"])
    assert f"cannot write the report into {blocker / 'out'}" in err


def test_an_mnist_cache_path_that_is_a_folder_is_one_line(tmp_path, home, monkeypatch, capsys):
    monkeypatch.setenv("OPTLAB_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "train-images-idx3-ubyte.gz").mkdir(parents=True)
    err = one_line_error(capsys, ["run", "-d", "mnist", "--steps", "2", "-q"])
    assert "train-images-idx3-ubyte.gz" in err
    no_run_left_running(home)


@contextmanager
def read_only(path: Path):
    """`path` read-only for this process: a read-only bind mount as root, file modes otherwise."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    bind = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {bind.stderr.decode().strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], capture_output=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remount.stderr.decode().strip()}")
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_store_is_one_line_and_leaves_nothing(home, capsys):
    assert main(["run", "-d", "digits", "--hidden", "4", "--steps", "2", "-q", "-e", "ro"]) == 0
    capsys.readouterr()
    with read_only(home / "mlruns" / "mlflow.db"):  # a new process: this one holds a writable connection
        proc = optlab(["run", "-d", "digits", "--hidden", "4", "--steps", "2", "-q", "-e", "ro"], env_for(home))
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and err.count("\n") == 1 and err.startswith("optlab: error: "), err
    assert "the store is read-only" in err and str(home / "mlruns" / "mlflow.db") in err
    assert [r.info.status for r in runs_of("ro")] == ["FINISHED"]


def test_read_only_artifacts_are_refused_before_a_run_or_a_sweep_parent_exists(tmp_path, home, capsys):
    assert main(["run", "-d", "digits", "--hidden", "4", "--steps", "2", "-q", "-e", "roa"]) == 0
    capsys.readouterr()
    spec = write_spec(tmp_path, "[grid]\nseed = [0]\n", name="roa", steps=2)
    with read_only(home / "mlruns" / "artifacts"):
        err = one_line_error(capsys, ["run", "-d", "digits", "--hidden", "4", "--steps", "2", "-q", "-e", "roa"])
        assert "cannot write run artifacts" in err and str(home / "mlruns" / "artifacts") in err
        err = one_line_error(capsys, ["sweep", str(spec), "-q"])
        assert "cannot write run artifacts" in err
    assert [r.info.status for r in runs_of("roa")] == ["FINISHED"]  # the first run only: nothing new, nothing RUNNING


# ---- a new store that cannot be created whole -----------------------------------------------------
def limited_file_size(kilobytes: int):
    """A preexec_fn capping every file the child writes at `kilobytes` (writes beyond fail with EFBIG, which
    SQLite reports as an I/O error): a disk that fills up midway through MLflow's schema migrations."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (kilobytes * 1024, resource.RLIM_INFINITY))

    return limit


TINY_RUN = ["run", "-s", "adam", "-d", "digits", "--hidden", "4", "--steps", "3", "-q", "-e", "fresh"]


def test_a_new_store_that_fails_midway_through_creation_leaves_nothing_and_the_next_run_finishes(home):
    store = home / "mlruns" / "mlflow.db"
    failed = optlab(TINY_RUN, env_for(home), preexec_fn=limited_file_size(200))  # the schema is ~1 MB
    _, err = failed.communicate(timeout=300)
    assert failed.returncode == 2 and err.count("\n") == 1 and err.startswith("optlab: error: "), err
    assert not store.exists(), "a half-created store was left in place"
    assert not list(store.parent.glob("mlflow.db.tmp-*")), "the store built aside was left behind"

    again = optlab(TINY_RUN, env_for(home))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert [r.info.status for r in runs_of("fresh")] == ["FINISHED"]


def test_a_new_store_is_in_write_ahead_log_mode_so_readers_never_wait_for_a_writer(home):
    import sqlite3
    from contextlib import closing

    done = optlab(TINY_RUN, env_for(home))
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    store = home / "mlruns" / "mlflow.db"
    copy = home / "copy.db"
    shutil.copy(store, copy)  # the file alone, as a user copies a store once the command is done
    with closing(sqlite3.connect(copy)) as copied:
        assert copied.execute("SELECT status FROM runs").fetchall() == [("FINISHED",)]
    writer = sqlite3.connect(store, isolation_level=None)
    reader = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=0)
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        writer.execute("BEGIN EXCLUSIVE")  # with a rollback journal this shuts every reader out
        writer.execute("UPDATE runs SET name = 'renamed'")
        assert reader.execute("SELECT name FROM runs").fetchall() != [("renamed",)]  # read at once, committed state
        writer.execute("COMMIT")
        assert reader.execute("SELECT name FROM runs").fetchall() == [("renamed",)]
    finally:
        reader.close()
        writer.close()


def test_the_write_ahead_log_stays_near_a_megabyte_however_many_commits_a_process_makes(home):
    """SQLite's own bound (1,000 pages: 4 MB) is more than a nearly full disk has: a rerun after freeing a
    couple of megabytes failed on the log alone. MLflow's connections and optlab's direct writer both fold
    it after 128 pages and cut it back to 1 MB."""
    from contextlib import closing

    from optlab.tracking import sqlite_recorder
    from optlab.tracking.sqlite_creation import LOG_FOLD_PAGES, LOG_KEPT_BYTES
    from optlab.tracking.store import client, ensure_experiment

    mlflow_client = client()
    store = home / "mlruns" / "mlflow.db"
    run = mlflow_client.create_run(ensure_experiment(mlflow_client, "log"))
    largest = 0
    for step in range(400):  # each commit appends its pages (~5) to the log: ~8 MB unbounded
        mlflow_client.log_param(run.info.run_id, f"p{step}", "x" * 200)
        largest = max(largest, (home / "mlruns" / "mlflow.db-wal").stat().st_size)
    assert largest > LOG_FOLD_PAGES * 4096 / 2  # the loop did write a log worth bounding ...
    assert largest <= LOG_KEPT_BYTES + 4 * LOG_FOLD_PAGES * 4096, largest  # ... and it stayed bounded
    with closing(sqlite_recorder.connect(store)) as direct:
        assert direct.execute("PRAGMA wal_autocheckpoint").fetchone() == (LOG_FOLD_PAGES,)
        assert direct.execute("PRAGMA journal_size_limit").fetchone() == (LOG_KEPT_BYTES,)


def test_a_real_full_disk_while_a_new_store_is_created_then_freed_lets_the_next_run_finish(tmp_path):
    with tmpfs(tmp_path / "small", "3m") as disk:
        home = disk / "home"
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(0, free - 200 * 1024))
        failed = optlab(TINY_RUN, env_for(home))
        _, err = failed.communicate(timeout=300)
        assert failed.returncode == 2 and "the disk is full" in err and err.count("\n") == 1, err
        assert not (home / "mlruns" / "mlflow.db").exists()

        (disk / "filler").unlink()
        again = optlab(TINY_RUN, env_for(home))
        _, err = again.communicate(timeout=300)
        assert again.returncode == 0, err


def test_a_store_left_half_migrated_by_mlflow_itself_says_what_to_do_in_one_line(home, capsys):
    """A store that MLflow's own in-place creation left at an intermediate revision (as optlab's creation did
    before it built stores aside) is refused in one line naming the file and what to do."""
    import sys

    store = home / "mlruns" / "mlflow.db"
    store.parent.mkdir(parents=True)
    build = "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as S; import sys; S(sys.argv[1], '.')"
    created = subprocess.run(
        [sys.executable, "-c", build, f"sqlite:///{store}"],
        preexec_fn=limited_file_size(200),
        capture_output=True,
        cwd=home,
    )
    assert created.returncode != 0 and store.exists()  # MLflow's migrations stopped midway

    err = one_line_error(capsys, TINY_RUN)
    assert f"the tracking store {store} was left half-created" in err and f"delete {store} and run again" in err, err
