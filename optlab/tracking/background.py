"""The tracking store in a helper process, so that recording a run overlaps training instead of adding to it.

Importing MLflow and opening its store cost seconds of CPU, more than loading torch, the data and
training a short run together. `BackgroundStore()` forks a child process at once, before the caller
imports torch. On an existing SQLite store the child writes the run directly, without MLflow
(sqlite_recorder.py); otherwise it imports MLflow while the parent loads torch and the data and records
through a `RunRecorder`. `store.recorder(experiment)` is a recorder (start / log / log_series / finish /
run_id) whose calls go to the child. The parent never waits for the store before its first step: it
sends the run's start as soon as the run is planned and keeps its metric points in memory; a child that
writes directly is handed them every STREAM_EVERY seconds and stores them while the run trains (a child
recording through MLflow, possibly to a slow server, gets them at the end: a training step never waits
on a send). At the end the parent sends the rest with the final parameters and waits until the child
has stored everything and ended the run. A store error reported by the child is raised in the parent
(`StoreError`, one line) at the next log call or at the end. The run's final status is the one the store
recorded: a run whose metrics or weights could not all be stored ends FAILED, not FINISHED.

The child ignores Ctrl-C and SIGTERM (sent to the process group, they are the parent's to handle: it records
KILLED through the child); if the parent dies without ending its run, the child ends it KILLED.
Only `optlab run` uses this, and only from a process that has not imported torch (forking then is cheap
and safe); elsewhere `RunRecorder` runs in-process.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optlab.tracking.point_recorder import StartedRun

from optlab.errors import StoreError

STREAM_EVERY = 0.25  # seconds between hand-overs of metric points to a child that stores them as they come


@dataclass(frozen=True)
class ProblemFacts:
    """What a RunRecorder reads of a problem, computed in the parent (the child has no tensors)."""

    n_params: int
    data_fingerprint: str | None
    data_split: str | None
    name: str = ""
    record_tags: dict | None = None  # a user workload's provenance tags (run_facts.run_tags)
    artifacts: dict | None = None  # ... and its file's copy (run_facts.write_artifacts)

    @classmethod
    def of(cls, problem) -> ProblemFacts:
        dataset = getattr(problem, "dataset", None)
        return cls(
            problem.n_params,
            dataset.fingerprint() if dataset is not None else None,
            dataset.split if dataset is not None else None,
            getattr(problem, "name", ""),
            dict(getattr(problem, "record_tags", {})),
            dict(getattr(problem, "artifacts", {})),
        )

    @property
    def dataset(self):
        return self if self.data_fingerprint is not None else None

    def fingerprint(self) -> str:
        if self.data_fingerprint is None:  # `dataset` is None then: nobody asks
            raise RuntimeError("a problem without a dataset has no fingerprint")
        return self.data_fingerprint

    @property
    def split(self) -> str:
        if self.data_split is None:
            raise RuntimeError("a problem without a dataset has no split")
        return self.data_split


@dataclass(frozen=True)
class PlanFacts:
    """A run's plan as RunRecorder reads it (the engine's Plan class would bring torch into the child)."""

    batch_size: int | None
    steps_per_epoch: float
    max_steps: int | None

    @classmethod
    def of(cls, plan) -> PlanFacts:
        return cls(plan.batch_size, plan.steps_per_epoch, plan.max_steps)


def can_fork() -> bool:
    """A clean fork is possible: POSIX, no other thread running (a lock held by one would stay held in the
    child), and torch, with its thread pools, not loaded yet."""
    import threading

    return (
        "fork" in multiprocessing.get_all_start_methods()
        and "torch" not in sys.modules
        and threading.active_count() == 1
    )


class BackgroundStore:
    """A child process holding the MLflow client; one run at a time is recorded through it."""

    def __init__(self, tracking_uri: str | None = None):
        context = multiprocessing.get_context("fork")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=_serve, args=(child_end, self.connection, tracking_uri), daemon=True, name="optlab-store"
        )
        self.process.start()
        child_end.close()
        self.used = False  # a run was started through it (else closing it may simply stop it)

    def recorder(self, experiment: str | None = None) -> BackgroundRecorder:
        return BackgroundRecorder(self, experiment)

    def send(self, message: tuple) -> None:
        self.used = True
        try:
            self.connection.send(message)
        except (BrokenPipeError, EOFError, OSError):
            raise StoreError("the tracking store process ended unexpectedly") from None

    def receive(self) -> tuple:
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            raise StoreError("the tracking store process ended unexpectedly") from None

    def close(self) -> None:
        """End the child once its work is done (it has replied to every finish it was sent)."""
        if self.used and self.process.is_alive():
            try:
                self.connection.send(("close",))
            except OSError:
                pass
            self.process.join(timeout=30)
        self.discard()

    def discard(self) -> None:
        """Stop the child now (bad input: no run was started through it, nothing is written). It ignores
        SIGTERM, so it is killed."""
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.connection.close()


class BackgroundRecorder:
    """The recorder protocol of RunRecorder, carried out by the store's child process."""

    def __init__(self, store: BackgroundStore, experiment: str | None):
        self.store, self.experiment = store, experiment
        self._run_id: str | None = None
        self._points: list[tuple] = []  # ("log", step, values) and ("series", steps, columns), in order
        self._stream = False  # the child stores points as they come (it said so at start)
        self._sent = time.monotonic()
        self._failed: str | None = None
        self.status: str | None = None  # what the store recorded once the run has ended
        self.reason: str | None = None

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def start(self, config, problem, plan, extra_tags: dict | None = None) -> BackgroundRecorder:
        self.store.send(
            ("start", self.experiment, config, ProblemFacts.of(problem), PlanFacts.of(plan), dict(extra_tags or {}))
        )
        return self

    def log(self, step: int, values: dict[str, float]) -> None:
        self._check()
        self._points.append(("log", step, {k: float(v) for k, v in values.items() if v is not None}))
        if self._stream and time.monotonic() - self._sent >= STREAM_EVERY:
            self.store.send(("points", self._points))
            self._points, self._sent = [], time.monotonic()

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        self._points.append(("series", list(steps), {k: list(map(float, v)) for k, v in columns.items()}))

    def finish(self, status: str, reason: str | None, summary: dict, params) -> None:
        weights = params.detach().cpu().numpy() if params is not None else None
        self.store.send(("finish", self._points, status, reason, summary, weights))
        self._points = []
        while True:
            kind, payload = self.store.receive()
            if kind == "started":
                self._run_id, self._stream = payload
            elif kind == "error":
                self._failed = self._failed or payload
            elif kind == "finished":
                if payload is not None:
                    self.status, self.reason = payload
                break
        if self._failed:
            raise StoreError(self._failed)

    def abort(self, status: str, reason: str) -> None:
        """End a run that cannot go on (interrupted, failed outside the loop) as KILLED or FAILED, with the
        points it logged so far; never raises."""
        if self.status is not None or not self.store.used:
            return
        try:
            self.finish(status, reason, {}, None)
        except Exception:  # noqa: BLE001 - the store process ends the run KILLED when we are gone
            pass

    def _check(self) -> None:
        """Raise a store error the child reported (non-blocking), so a run does not train for nothing."""
        while self._failed is None and self.store.connection.poll():
            kind, payload = self.store.receive()
            if kind == "started":
                self._run_id, self._stream = payload
            elif kind == "error":
                self._failed = payload
        if self._failed:
            raise StoreError(self._failed)


def _serve(connection, parent_end, tracking_uri: str | None) -> None:
    """The child: import MLflow now, then carry out the parent's messages until it closes or dies."""
    # Ctrl-C and SIGTERM sent to the whole process group are the parent's to handle: it records the run's
    # end through us, and we exit on its "close" or, if it died, on end-of-file
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent_end.close()  # the fork copied it: closed here, the parent's death reaches us as end-of-file
    import threading

    from optlab.tracking import provenance

    # the run's git commit comes from two git processes: ask them while MLflow is imported (cached)
    threading.Thread(target=provenance.git_commit, daemon=True).start()
    from optlab.tracking import sqlite_creation, sqlite_recorder
    from optlab.tracking.store import tracking_uri as current_uri
    from optlab.tracking.uri import sqlite_path

    tracking_uri = tracking_uri or current_uri()
    # what the run's end needs, imported while the parent loads torch and the data: numpy and safetensors
    # for its weights (50 ms, else at the end); MLflow (2 s) unless the run is written directly
    import safetensors.numpy  # noqa: F401

    if sqlite_recorder.database(tracking_uri) is None:
        try:
            import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - the heavy part
        except Exception:  # noqa: BLE001 - another store type; the client reports any real problem below
            pass
    try:
        _Server(connection, tracking_uri).serve()
    finally:  # this process ends without running exit handlers: the store's log is folded here
        if (database := sqlite_path(tracking_uri)) is not None:
            sqlite_creation.fold_log(database)


class _ParentGone(Exception):
    pass


class _Server:
    """The child's side: one run at a time, driven by the parent's messages."""

    def __init__(self, connection, tracking_uri: str):
        self.connection, self.tracking_uri = connection, tracking_uri
        self.recorder: StartedRun | None = None
        self.ended = True
        self.error: str | None = None
        self.problem: str | None = None

    def serve(self) -> None:
        try:
            while True:
                try:
                    message = self.connection.recv()
                except (EOFError, OSError):
                    raise _ParentGone from None
                if message[0] == "close":
                    return
                if message[0] == "start":
                    self.start(*message[1:])
                elif message[0] == "points":
                    self.points(message[1])
                elif message[0] == "finish":
                    self.finish(*message[1:])
        except _ParentGone:  # the parent died (or closed its end) before ending its run: end it KILLED
            if self.recorder is not None and not self.ended:
                try:
                    self.recorder.finish("KILLED", "the optlab process ended before recording its run's end", {}, None)
                except Exception:  # noqa: BLE001 - nobody is left to tell
                    pass

    def reply(self, message: tuple) -> None:
        try:
            self.connection.send(message)
        except (BrokenPipeError, EOFError, OSError):
            raise _ParentGone from None

    def start(self, experiment, config, facts, plan, tags) -> None:
        from optlab.tracking.sqlite_recorder import SqliteRunRecorder

        self.recorder, self.ended, self.error, self.problem = None, False, None, None
        try:
            recorder = _started_recorder(experiment or config.experiment, self.tracking_uri, config, facts, plan, tags)
        except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
            self.error = _describe(exc, self.tracking_uri)
            self.reply(("error", self.error))
            return
        self.recorder = recorder
        # a direct SQLite write of a few thousand points takes milliseconds: those are stored while the
        # run trains (through MLflow, or to a server, the parent keeps them: it must never wait on a send)
        self.reply(("started", (recorder.run_id, isinstance(recorder, SqliteRunRecorder))))

    def points(self, points) -> None:
        """Store points now; a failure is kept and turns the run FAILED at its end (its points are incomplete)."""
        if self.recorder is None or self.error is not None or self.problem is not None:
            return
        try:
            self.feed(points)
            self.recorder.flush()
        except Exception as exc:  # noqa: BLE001
            self.problem = f"metrics: {_describe(exc, self.tracking_uri)}"

    def feed(self, points) -> None:
        if self.recorder is None:
            raise RuntimeError("points arrived before a run was started")
        for point in points:
            if point[0] == "log":
                self.recorder.log(point[1], point[2])
            else:
                self.recorder.log_series(point[1], point[2])

    def finish(self, points, status, reason, summary, weights) -> None:
        from optlab.tracking.run_facts import end_status

        if self.recorder is not None and self.error is None:
            if self.problem is None:
                try:
                    self.feed(points)
                except Exception as exc:  # noqa: BLE001
                    self.problem = f"metrics: {_describe(exc, self.tracking_uri)}"
            if self.problem is not None:
                status, reason = end_status(status, reason, [self.problem])
            try:
                self.recorder.finish(status, reason, summary, weights)
            except Exception as exc:  # noqa: BLE001
                self.error = _describe(exc, self.tracking_uri)
            self.ended = True
        if self.error is not None:
            self.reply(("error", self.error))
        ended = (self.recorder.status, self.recorder.reason) if self.recorder is not None else None
        self.reply(("finished", ended))


def _started_recorder(experiment: str, uri: str, config, facts, plan, tags) -> StartedRun:
    """The run started in the store: written directly when the store allows it (sqlite_recorder), else
    through MLflow."""
    from optlab.tracking.point_recorder import start_recorder

    return start_recorder(uri, config, facts, plan, tags, experiment=experiment)


def _describe(exc: BaseException, uri: str | None = None) -> str:
    """One line for the parent: optlab's own errors as they are, a store's failure through `describe`."""
    from optlab.errors import OptlabError
    from optlab.tracking.failures import describe
    from optlab.tracking.store import tracking_uri

    text = str(exc) if isinstance(exc, OptlabError) else describe(exc, uri or tracking_uri())
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__
