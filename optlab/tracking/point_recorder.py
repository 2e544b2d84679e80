"""A recorder that picks its writer when its run starts: the direct SQLite writer (sqlite_recorder.py)
where the store has the layout that writer was checked against; for a sweep's point on a tracking server
that serves the artifacts itself, MLflow's REST calls sent directly (rest_recorder.py); else MLflow's
client (recorder.py).

A sweep's workers record their points through it, so on the default store and on a plain tracking server
a worker never imports MLflow (about 1.5-2 s of CPU per worker) and a run on SQLite costs a few
transactions instead of a dozen ORM round trips; any other store (PostgreSQL, a server that needs
credentials, a different schema revision) is recorded by MLflow as before. `OPTLAB_STORE_WRITER=mlflow`
always records through MLflow.
"""

from __future__ import annotations

from typing import Protocol


class StartedRun(Protocol):
    """What a started run's writer offers (SqliteRunRecorder, RestRunRecorder and RunRecorder alike)."""

    run_id: str | None
    status: str | None
    reason: str | None

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None: ...

    def flush(self) -> None: ...

    def finish(self, status: str, reason: str | None, summary: dict, params) -> None: ...

    def abort(self, status: str, reason: str) -> None: ...


def start_recorder(
    uri: str,
    config,
    problem,
    plan,
    tags: dict,
    experiment: str | None = None,
    experiment_id: str | None = None,
    parent_run_id: str | None = None,
) -> StartedRun:
    """The run started in the store at `uri` (in `experiment`, a name, or `experiment_id`): written
    directly when the store allows it, else through MLflow."""
    from optlab.tracking.sqlite_recorder import NotDirect, SqliteRunRecorder

    direct = SqliteRunRecorder.open(uri, experiment, experiment_id, parent_run_id)
    if direct is not None:
        try:
            return direct.start(config, problem, plan, extra_tags=dict(tags))
        except NotDirect:
            direct.connection.close()
    from optlab.tracking.rest_recorder import RestRunRecorder

    remote = RestRunRecorder.open(uri, experiment_id, parent_run_id)
    if remote is not None:
        return remote.start(config, problem, plan, extra_tags=dict(tags))
    from optlab.tracking.recorder import RunRecorder

    return RunRecorder(
        experiment=experiment, experiment_id=experiment_id, parent_run_id=parent_run_id, tracking_uri=uri
    ).start(config, problem, plan, extra_tags=dict(tags))


class PointRecorder:
    """The recorder protocol (start, log, log_series, flush, finish, abort, run_id, status, reason) of a
    run nested under `parent_run_id`, carried out by the writer `start_recorder` picks."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str | None = None):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.writer: StartedRun | None = None

    def start(self, config, problem, plan, extra_tags: dict | None = None) -> PointRecorder:
        self.writer = start_recorder(
            self.tracking_uri,
            config,
            problem,
            plan,
            dict(extra_tags or {}),
            experiment_id=self.experiment_id,
            parent_run_id=self.parent_run_id,
        )
        return self

    @property
    def run_id(self) -> str | None:
        return self.writer.run_id if self.writer is not None else None

    @property
    def status(self) -> str | None:
        return self.writer.status if self.writer is not None else None

    @property
    def reason(self) -> str | None:
        return self.writer.reason if self.writer is not None else None

    @property
    def started(self) -> StartedRun:
        """The writer of the started run (logging before `start` is a programming error)."""
        if self.writer is None:
            raise RuntimeError("PointRecorder: start() the run before logging to it")
        return self.writer

    def log(self, step: int, values: dict[str, float]) -> None:
        self.started.log(step, values)

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        self.started.log_series(steps, columns)

    def flush(self) -> None:
        self.started.flush()

    def finish(self, status: str, reason: str | None, summary: dict, params) -> None:
        self.started.finish(status, reason, summary, params)

    def abort(self, status: str, reason: str) -> None:
        if self.writer is not None:
            self.writer.abort(status, reason)
