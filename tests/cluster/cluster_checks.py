"""What the cluster tests share: the sweep they run, how they run it, and how they read it back.

Stored runs are read straight from the database rows (SQLAlchemy on the PostgreSQL or SQLite store),
so a duplicated or missing metric point shows as a row, whatever the REST API would summarize.
A clean in-process sweep of the same file on a local SQLite store is the reference every cluster
sweep is compared with, point by point (matched by `optlab.point_hash`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OPTLAB = str(Path(sys.executable).parent / "optlab")

# 12 points (2 strategies x 6 seeds) of 120 epochs: long enough that a fault lands in the middle of a run
# (with 20 epochs a run trained in about 0.2 s and stored its points in one request to optlab's server app,
# and six node kills in a row landed between runs; with 60 they did again once the run's end became one
# request), short enough for CI
SPEC = """
name = "{name}"
[base]
dataset = "digits"
hidden = [16]
activation = "relu"
epochs = 120
eval_every = 20

lr = 0.03

[grid]
strategy = ["minibatch", "adam"]
seed = [0, 1, 2, 3, 4, 5]

# steps small enough that neither strategy is chaotic: runs trained in stacks of other sizes agree
[overrides.adam]
lr = 0.003
"""
SWEEP_TIMEOUT = 240  # seconds a healthy or faulted sweep may take before the test calls it a hang


def write_spec(directory: Path, name: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(SPEC.format(name=name))
    return path


def point_hashes(spec_path: Path) -> dict[str, str]:
    from optlab.sweeps import load

    return {p.point_hash: p.config.label() for p in load(spec_path).points}


# ---- running sweeps -------------------------------------------------------------------------
@dataclass
class Sweep:
    """An `optlab sweep` process in its own process group, output in files."""

    proc: subprocess.Popen
    out: Path
    err: Path

    def wait(self, timeout: float = SWEEP_TIMEOUT) -> int | None:
        """The exit code, or None after killing the whole group when it is still running at `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def stderr_lines(self) -> list[str]:
        # the progress bar redraws with carriage returns: keep the final state of each line
        return [line.split("\r")[-1] for line in self.err.read_text(errors="replace").splitlines() if line.strip()]


def start_sweep(
    spec: Path, cluster, workdir: Path, tag: str, tracking_uri: str | None = None, extra: tuple[str, ...] = ()
) -> Sweep:
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{tag}.out", workdir / f"{tag}.err"
    argv = [OPTLAB, "sweep", str(spec), "--backend", "ray", "--address", cluster.ray_address, "--workers", "2", *extra]
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(
            argv,
            stdout=o,
            stderr=e,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=cluster.env(tracking_uri),
            start_new_session=True,
        )
    return Sweep(proc, out, err)


def run_sweep(spec: Path, cluster, workdir: Path, tag: str, **kwargs) -> tuple[int | None, Sweep]:
    sweep = start_sweep(spec, cluster, workdir, tag, **kwargs)
    return sweep.wait(), sweep


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---- reading a store ------------------------------------------------------------------------
@dataclass
class StoredRun:
    run_id: str
    status: str
    uri: str  # the store it was read from
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[tuple] = field(default_factory=list)  # (key, step, value, is_nan[, timestamp]) rows
    latest: list[tuple] = field(default_factory=list)  # latest_metrics rows, the same columns


def read_store(uri: str, experiment: str, timestamps: bool = False) -> list[StoredRun]:
    """Every run of `experiment` in the SQL store at `uri`, with all its metric rows (their
    timestamps too when asked: they differ between two sweeps of the same points)."""
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    try:
        with engine.connect() as db:
            found = db.execute(
                sa.text("select experiment_id from experiments where name = :n"), {"n": experiment}
            ).fetchone()
            if found is None:
                return []
            runs = {
                r.run_uuid: StoredRun(r.run_uuid, r.status, uri, {}, {})
                for r in db.execute(
                    sa.text(
                        "select run_uuid, status from runs where experiment_id = :e and lifecycle_stage = 'active'"
                    ),
                    {"e": found[0]},
                )
            }
            if not runs:
                return []
            ids = {"ids": list(runs)}
            expanding = lambda q: sa.text(q).bindparams(sa.bindparam("ids", expanding=True))  # noqa: E731
            for r in db.execute(expanding("select run_uuid, key, value from tags where run_uuid in :ids"), ids):
                runs[r.run_uuid].tags[r.key] = r.value
            for r in db.execute(expanding("select run_uuid, key, value from params where run_uuid in :ids"), ids):
                runs[r.run_uuid].params[r.key] = r.value
            for table, rows in (("metrics", "metrics"), ("latest_metrics", "latest")):
                query = f"select run_uuid, key, step, value, is_nan, timestamp from {table} where run_uuid in :ids"
                for r in db.execute(expanding(query), ids):
                    row = (r.key, r.step, r.value, bool(r.is_nan)) + ((r.timestamp,) if timestamps else ())
                    getattr(runs[r.run_uuid], rows).append(row)
    finally:
        engine.dispose()
    for run in runs.values():
        run.metrics.sort()
        run.latest.sort()
    return list(runs.values())


def children(runs: list[StoredRun]) -> list[StoredRun]:
    return [r for r in runs if r.tags.get("optlab.role") not in ("parent", "group")]  # points, not seed groups


def reference_sweep(spec: Path, home: Path) -> dict[str, StoredRun]:
    """The same file swept in this process on a fresh local SQLite store: FINISHED run by point hash."""
    from optlab.sweeps import load
    from optlab.sweeps import run_sweep as sweep_here

    uri = f"sqlite:///{home / 'reference.db'}"
    old = os.environ.get("OPTLAB_HOME")
    os.environ["OPTLAB_HOME"] = str(home)
    try:
        report = sweep_here(load(spec), workers=1, progress=False, tracking_uri=uri)
    finally:
        if old is None:
            os.environ.pop("OPTLAB_HOME", None)
        else:
            os.environ["OPTLAB_HOME"] = old
    assert report.counts["finished"] == report.counts["points"], report.table
    return {
        r.tags["optlab.point_hash"]: r for r in children(read_store(uri, load(spec).name)) if r.status == "FINISHED"
    }


def timing_key(key: str) -> bool:
    """Metrics that measure the machine (wall time), not the computation: equal steps, other values."""
    return "time" in key


def values_match(rows: list[tuple], reference: list[tuple]) -> bool:
    """Same (key, step) rows with the same values, timing metrics aside; points trained in a stack of a
    different size sum in another order, so values agree to float32 rounding, not bit for bit."""
    import numpy as np

    ours = [r for r in rows if not timing_key(r[0])]
    theirs = [r for r in reference if not timing_key(r[0])]
    if [r[:2] for r in ours] != [r[:2] for r in theirs]:
        return False
    return bool(np.allclose([r[2] for r in ours], [r[2] for r in theirs], rtol=1e-3, atol=1e-4, equal_nan=True))


def assert_sweep_complete(runs: list[StoredRun], points: dict[str, str], reference: dict[str, StoredRun]) -> None:
    """Exactly one FINISHED child per point, nothing left RUNNING, and every FINISHED run holds exactly
    the reference's metric points: no (key, step) duplicated or missing, the same values."""
    kids = children(runs)
    running = [(r.run_id, r.tags.get("optlab.point_hash")) for r in runs if r.status in ("RUNNING", "SCHEDULED")]
    assert not running, f"runs left RUNNING: {running}"
    finished = Counter(r.tags.get("optlab.point_hash") for r in kids if r.status == "FINISHED")
    problems = {points[p]: finished[p] for p in points if finished[p] != 1}
    assert not problems, f"points without exactly one FINISHED run (label: count): {problems}"
    assert set(finished) == set(points), f"FINISHED runs of unknown points: {set(finished) - set(points)}"
    for run in kids:
        if run.status != "FINISHED":
            continue
        point = run.tags["optlab.point_hash"]
        want = reference[point]
        got_steps = Counter((k, s) for k, s, _, _ in run.metrics)
        want_steps = Counter((k, s) for k, s, _, _ in want.metrics)
        duplicated = {ks: n for ks, n in got_steps.items() if n > want_steps.get(ks, 0)}
        # wall_time_share exists only for runs trained in a stack: a retried point may train alone
        missing = {ks: n for ks, n in want_steps.items() if got_steps.get(ks, 0) < n and ks[0] != "wall_time_share"}
        assert not duplicated and not missing, (
            f"{points[point]} (run {run.run_id}): metric points duplicated {dict(list(duplicated.items())[:5])}, "
            f"missing {dict(list(missing.items())[:5])} ({len(run.metrics)} rows, reference {len(want.metrics)})"
        )
        assert values_match(run.metrics, want.metrics), f"{points[point]} (run {run.run_id}): metric values differ"
        latest = lambda rows: [r[:2] for r in rows if r[0] != "wall_time_share"]  # noqa: E731
        assert latest(run.latest) == latest(want.latest), f"{points[point]}: latest_metrics differ"
