"""One tracked run: params and tags up front, metrics buffered and sent with log_batch, artifacts at
the end, and a terminal status (FINISHED, FAILED with its reason, KILLED).

FINISHED is a promise that everything is stored: `finish` records FINISHED only when the metrics,
the params, the status tag and the weights were all written and read back; any storage failure
(full disk, read-only artifacts, a lost server) turns the run FAILED with the reason
("storage: ..."), so a resumed sweep runs that point again. A run that cannot even be marked
FAILED stays RUNNING in the store; the next sweep start marks it KILLED.

A single `log_metric` call costs ~3 ms on SQLite here, about three training steps of the reference
net, so metric points are appended to in-memory lists (~1 us each) and flushed in chunks of up to
1,000 with one `log_batch` call each.

On a tracking server every call is a round trip, so a run makes the fewest MLflow allows
(docs/guide/cluster.md): create_run with its tags, one log_batch per 100 params, the config file, one
log_batch per 1,000 metric points (the last one also carrying the end tags), the weights file, and
set_terminated. Artifacts go straight to the run's artifact location (create_run names it; MLflow's
client would ask the server for the run first), and a FINISHED run is not read back: every call was
acknowledged by the server, which answers only once its transaction is committed or its file written.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optlab.errors import StoreError
from optlab.tracking.accounting import timed
from optlab.tracking.failures import describe
from optlab.tracking.fast_metrics import log_columns_fast
from optlab.tracking.point_buffer import MLFLOW_METRICS, MLFLOW_PARAMS, MLFLOW_TAGS, BufferedRecorder, held_back
from optlab.tracking.preflight import check_artifacts_writable
from optlab.tracking.run_facts import (
    CONFIG,
    WEIGHTS,
    abandoned,
    abandoned_reason,
    discarded,
    end_status,
    end_tags,
    run_files,
    run_params,
    run_tags,
    save_weights,
    storage_problems,
)
from optlab.tracking.store import client as make_client
from optlab.tracking.store import ensure_experiment
from optlab.tracking.uri import is_http

if TYPE_CHECKING:  # torch is imported where tensors are made; the store process never needs it
    import torch

_checked: set[tuple[str, str]] = set()  # (tracking URI, experiment id) whose artifact folder was checked here


class NullRecorder:
    """Records nothing: for quick experiments and for measuring tracking overhead."""

    run_id = None
    status: str | None = None  # no store, so it never disagrees with the run's own status
    reason: str | None = None

    def start(self, config, problem, plan, extra_tags=None):
        return self

    def log(self, step: int, values: dict[str, float]) -> None:
        pass

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        pass

    def finish(self, status: str, reason: str | None, summary: dict, params: torch.Tensor | None):
        pass

    def abort(self, status: str, reason: str) -> None:
        pass


class RunRecorder(BufferedRecorder):
    def __init__(
        self,
        experiment: str | None = None,
        parent_run_id: str | None = None,
        experiment_id: str | None = None,
        tracking_uri: str | None = None,
    ):
        super().__init__()
        self.client = make_client(tracking_uri)
        self.experiment_id = experiment_id
        self.experiment_name = experiment
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None
        self.status: str | None = None  # what the store says once the run has ended
        self.reason: str | None = None
        self._logged_keys: set[str] = set()
        self._n_params = 0
        self.remote = is_http(self.client.tracking_uri)  # a tracking server: every call is a round trip
        self._artifacts: Any = None  # the run's artifact repository, on a tracking server

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, config, problem, plan, extra_tags: dict | None = None) -> RunRecorder:
        with timed("run creation"):
            return self._start(config, problem, plan, extra_tags)

    def _start(self, config, problem, plan, extra_tags: dict | None = None) -> RunRecorder:
        from mlflow.entities import Param

        if self.experiment_id is None:
            self.experiment_id = ensure_experiment(self.client, self.experiment_name or config.experiment)
        if self.parent_run_id is None or (self.client.tracking_uri, self.experiment_id) not in _checked:
            # before a run exists that could not finish; a sweep's points check once per process (on a
            # server it is a round trip per run, and the sweep process checked before any worker started)
            check_artifacts_writable(self.client, self.experiment_id)
            _checked.add((self.client.tracking_uri, self.experiment_id))
        tags = run_tags(config, problem, self.parent_run_id, extra_tags)
        if not self.parent_run_id:
            close_abandoned_runs(self.client, self.experiment_id)
        run = self.client.create_run(self.experiment_id, run_name=config.run_name or config.label(), tags=tags)
        self.run_id = run.info.run_id
        if self.remote:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            self._artifacts = get_artifact_repository(run.info.artifact_uri, tracking_uri=self.client.tracking_uri)
        params = run_params(config, problem, plan)
        items = [Param(k, v) for k, v in params.items()]
        self._n_params = len(items)
        try:
            for i in range(0, len(items), MLFLOW_PARAMS):
                self.client.log_batch(self.run_id, params=items[i : i + MLFLOW_PARAMS])
            with timed("artifacts"):
                # what MlflowClient.log_dict writes, byte for byte
                config_file = json.dumps(config.to_dict(), indent=2, default=str).encode()
                self._log_files({CONFIG: config_file, **run_files(config, problem)})
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"storage: {describe(exc)}"
            self.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", reason)
            if isinstance(exc, Exception):
                raise StoreError(f"run {self.run_id}: could not record its params: {describe(exc)}") from exc
            raise
        return self

    def _flush(self, keep: int = 0) -> list:
        """Store the buffered points; `keep` > 0 holds back the last points that share a log_batch call
        with up to `keep` tags and returns them (as Metric entities) for that call."""
        from mlflow.entities import Metric

        if self.run_id is None:
            raise RuntimeError("RunRecorder: start() the run before logging to it")
        columns = self._points.take()
        self._logged_keys.update(columns[0])
        if not keep and log_columns_fast(self.client, self.run_id, *columns):
            return []
        metrics, held = held_back([Metric(k, v, t, s) for k, v, t, s in zip(*columns)], keep)
        for i in range(0, len(metrics), MLFLOW_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MLFLOW_METRICS])
        return held

    def finish(self, status: str, reason: str | None, summary: dict, params: torch.Tensor | None) -> None:
        """Store what is left and end the run. FINISHED only when everything is stored; a storage
        failure ends it FAILED with the reason. Raises StoreError only when the end itself cannot be
        recorded (the run then stays RUNNING until a sweep start marks it KILLED)."""
        from mlflow.entities import RunTag

        with timed("run end"):
            held: list = []  # on a server: the last metric points, sent with the end tags in one call
            most_tags = min(len(end_tags("FAILED", "reason", summary)), MLFLOW_TAGS)  # with or without a reason

            def flush() -> None:
                if self.remote and self._points:
                    with timed("metric writes"):
                        held.extend(self._flush(keep=most_tags))
                else:
                    self.flush()

            # on a server every call was acknowledged once stored: nothing to read back
            read_back = (lambda with_weights: []) if self.remote else self._missing
            problems = storage_problems(
                status, params, flush, self._log_params_artifact, read_back, self._discard_weights
            )
            status, reason = end_status(status, reason, problems)
            tags = [RunTag(k, v) for k, v in end_tags(status, reason, summary).items()]
            try:
                for i in range(0, max(len(tags), 1), MLFLOW_TAGS):  # the held points go with the first tags
                    self.client.log_batch(self.run_id, metrics=held if i == 0 else [], tags=tags[i : i + MLFLOW_TAGS])
            except Exception as exc:
                if status == "FINISHED":  # no status tag: not everything is stored
                    status, reason = "FAILED", f"storage: status tag: {describe(exc)}"
                    if params is not None:
                        discarded(self._discard_weights)
            self._terminate(status, reason)

    def abort(self, status: str, reason: str) -> None:
        """End a run that cannot go on (interrupted, its start failed) as KILLED or FAILED; never raises."""
        from mlflow.entities import RunTag

        if self.run_id is None or self.status is not None:
            return
        try:
            self.client.log_batch(
                self.run_id, tags=[RunTag("optlab.status", status), RunTag("optlab.failure_reason", reason[:5000])]
            )
        except Exception:
            pass
        try:
            self._terminate(status, reason)
        except StoreError:
            pass

    def _terminate(self, status: str, reason: str | None) -> None:
        try:
            self.client.set_terminated(self.run_id, status)
        except Exception as exc:
            raise StoreError(
                f"run {self.run_id}: could not record its end ({status}): {describe(exc)}; it stays "
                f"RUNNING in the store until the next start in its experiment marks it KILLED"
            ) from exc
        self.status, self.reason = status, reason

    def _missing(self, with_weights: bool) -> list[str]:
        """Read the run back: what a FINISHED run promises and the store does not hold."""
        try:
            run = self.client.get_run(self.run_id)
            missing = []
            if len(run.data.params) < self._n_params:
                missing.append(f"params: {len(run.data.params)} of {self._n_params} stored")
            lost = sorted(self._logged_keys - set(run.data.metrics))
            if lost:
                missing.append(f"metrics: {', '.join(lost[:5])}{' ...' if len(lost) > 5 else ''} not stored")
            if with_weights:
                stored = {a.path: a.file_size for a in self.client.list_artifacts(self.run_id)}
                if not stored.get(WEIGHTS):
                    missing.append(f"weights: {WEIGHTS} not stored")
            return missing
        except Exception as exc:
            return [f"read-back: {describe(exc)}"]

    def _discard_weights(self) -> None:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = self._artifacts or get_artifact_repository(self.client.get_run(self.run_id).info.artifact_uri)
        repository.delete_artifacts(WEIGHTS)

    def _log_files(self, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / Path(name).name
                path.write_bytes(data)
                folder = str(Path(name).parent)
                self._log_artifact(str(path), None if folder == "." else folder)

    def _log_artifact(self, path: str, folder: str | None = None) -> None:
        if self._artifacts is not None:
            self._artifacts.log_artifact(path, folder)
        else:
            self.client.log_artifact(self.run_id, path, folder)

    def _log_params_artifact(self, params) -> None:
        with timed("artifacts"), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / WEIGHTS
            save_weights(params, path)
            self._log_artifact(str(path))


def close_abandoned_runs(client, experiment_id: str) -> int:
    """Mark KILLED the single runs of this experiment left RUNNING by a process of this host that is
    gone (SIGKILL, power loss, a store that failed at the end). A sweep's runs are left to the sweep,
    which reconciles them under its lease. Returns how many were closed."""
    from mlflow.entities import RunTag

    closed = 0
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        if not abandoned(run.data.tags):
            continue
        try:
            # its process may have ended it between the search and the liveness check: read it again
            if client.get_run(run.info.run_id).info.status != "RUNNING":
                continue
            client.log_batch(
                run.info.run_id,
                tags=[
                    RunTag("optlab.status", "KILLED"),
                    RunTag("optlab.failure_reason", abandoned_reason(run.data.tags)),
                ],
            )
            client.set_terminated(run.info.run_id, "KILLED")
            closed += 1
        except Exception:  # noqa: BLE001 - another process closed it first, or the store is read-only
            pass
    return closed


def load_params(run_id: str, tracking_uri: str | None = None) -> torch.Tensor:
    """The final flat parameter vector of a run, read with safetensors (no pickle)."""
    import mlflow
    from safetensors.torch import load_file

    make_client(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="params.safetensors", dst_path=tmp)
        return load_file(path)["params"]


def load_config(run_id: str, tracking_uri: str | None = None):
    import mlflow

    from optlab.config import RunConfig

    make_client(tracking_uri)
    return RunConfig.from_dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json"))
