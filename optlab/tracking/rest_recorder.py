"""A sweep point's recorder on a tracking server that sends MLflow's REST calls itself (rest_api.py), so a
sweep's worker on a server never imports MLflow (about 1.5 s of CPU per worker process).

The calls are those RunRecorder makes on a server, one for one and with the same bodies: `runs/create`
with the run's tags, one `log-batch` per 100 params, the config file and the run's source files (PUT to
the server's artifact proxy), one `log-batch` per 1,000 metric points (the last one also carrying the end
tags), the weights file, and `runs/update` with the end status. One difference: where the server runs
optlab's app (`mlflow server --app-name optlab`), the metric points go to its bulk route instead
(tracking/points_route.py: up to 10,000 points a request, inserted in one bulk statement, the rows
log-batch writes), the run's creation with its params in one request to its start route
(tracking/start_route.py), and the end tags and the status in one request to its end route
(tracking/end_route.py: one transaction); a server without those routes answers 404 to the first request
of a process, which then uses `runs/create`, `log-batch` and `runs/update` for the rest of its runs on that
server.
The promises are RunRecorder's: FINISHED
only when every call was acknowledged (the server answers once its transaction is committed or its file
written), else FAILED with the reason; a run whose end cannot be recorded raises StoreError and stays
RUNNING until the sweep closes it.

`RestRunRecorder.open` returns None (and MLflow's client records the run) for anything but a sweep's point
in an experiment whose artifacts the server itself serves (`mlflow-artifacts:`), when the server needs
more than its URI (rest_api.usable), or with `OPTLAB_STORE_WRITER=mlflow`.
tests/test_rest_recorder.py checks that a run recorded here holds the rows and files MLflow's client
stores for the same run, on a real `mlflow server`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from optlab.errors import StoreError
from optlab.tracking import points_route, start_route
from optlab.tracking.accounting import timed
from optlab.tracking.end_route import PATH as END_ROUTE
from optlab.tracking.failures import describe
from optlab.tracking.point_buffer import MLFLOW_METRICS, MLFLOW_PARAMS, MLFLOW_TAGS, BufferedRecorder, held_back
from optlab.tracking.rest_api import OPTIONAL_RETRIES, RestApi, RestError, Unreachable, number, usable
from optlab.tracking.run_facts import (
    CONFIG,
    WEIGHTS,
    discarded,
    end_status,
    end_tags,
    run_files,
    run_params,
    run_tags,
    save_weights,
    storage_problems,
)
from optlab.tracking.sqlite_recorder import WRITER_ENV

_servers: dict[str, RestApi] = {}  # one kept-alive connection per server and process
_locations: dict[tuple[str, str], str] = {}  # (server, experiment id) -> its artifact location


def _entries(items: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


class RestRunRecorder(BufferedRecorder):
    """The recorder protocol (start, log, log_series, flush, finish, abort, run_id, status, reason) over HTTP."""

    def __init__(self, api: RestApi, experiment_id: str, parent_run_id: str):
        super().__init__()
        self.api, self.experiment_id, self.parent_run_id = api, experiment_id, parent_run_id
        self.run_id: str | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self._artifacts = ""  # the run's folder on the server's artifact proxy

    @classmethod
    def open(cls, uri: str, experiment_id: str | None, parent_run_id: str | None) -> RestRunRecorder | None:
        """A recorder for a point of the sweep run `parent_run_id`, or None when MLflow's client must record."""
        if os.environ.get(WRITER_ENV) == "mlflow" or experiment_id is None or parent_run_id is None:
            return None
        if not usable(uri):
            return None
        with timed("run creation"):
            api = _servers.get(uri) or _servers.setdefault(uri, RestApi(uri))
            location = _locations.get((uri, experiment_id))
            if location is None:
                try:
                    found = api.get("experiments/get", {"experiment_id": experiment_id})
                    location = str(found["experiment"]["artifact_location"])
                except Exception:  # noqa: BLE001 - MLflow's client then tries, and reports what is wrong
                    return None
                _locations[(uri, experiment_id)] = location
        if api.artifact_path(location) is None:
            return None  # artifacts elsewhere (a bucket, a shared folder): MLflow's repositories write them
        return cls(api, experiment_id, parent_run_id)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, config, problem, plan, extra_tags: dict | None = None) -> RestRunRecorder:
        with timed("run creation"):
            return self._start(config, problem, plan, extra_tags)

    def _start(self, config, problem, plan, extra_tags: dict | None) -> RestRunRecorder:
        tags = run_tags(config, problem, self.parent_run_id, extra_tags)
        create = {
            "experiment_id": str(self.experiment_id),
            "user_id": tags.get("mlflow.user", "unknown"),  # what MlflowClient.create_run sends
            "start_time": int(time.time() * 1000),
            "tags": _entries(tags),
            "run_name": config.run_name or config.label(),
        }
        params = _entries(run_params(config, problem, plan))
        answer = self._start_through_route(create, params)
        if answer is None:
            answer = self.api.post("runs/create", create)
        else:
            params = []  # stored with the run
        info = answer["run"]["info"]
        self.run_id = info["run_id"]
        folder = self.api.artifact_path(info["artifact_uri"])
        try:
            if folder is None:
                raise StoreError(f"the server put the run's artifacts at {info['artifact_uri']}, not on its proxy")
            self._artifacts = folder
            for i in range(0, len(params), MLFLOW_PARAMS):
                self.api.post("runs/log-batch", {"run_id": self.run_id, "params": params[i : i + MLFLOW_PARAMS]})
            with timed("artifacts"):
                # what MlflowClient.log_dict writes, byte for byte
                config_file = json.dumps(config.to_dict(), indent=2, default=str).encode()
                for name, data in {CONFIG: config_file, **run_files(config, problem)}.items():
                    self.api.put_file(self._artifacts, name, data)
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"storage: {describe(exc)}"
            self.abort("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED", reason)
            if isinstance(exc, Exception):
                raise StoreError(f"run {self.run_id}: could not record its params: {describe(exc)}") from exc
            raise
        return self

    def _start_through_route(self, create: dict, params: list[dict]) -> dict | None:
        """The run created with its params in one request to the server's start route (runs/create's answer);
        None (nothing stored) when the server does not offer it or refuses or fails it: MLflow's calls then
        start the run, or fail in their words."""
        if len(params) > start_route.MOST_PARAMS:
            return None
        try:
            return self.api.answer_if_offered(start_route.PATH, {**create, "params": params}, OPTIONAL_RETRIES)
        except (RestError, Unreachable):
            return None

    def _flush(self, keep: int = 0) -> list[dict]:
        """Send the buffered points; `keep` > 0 holds back the last points that fit in one call beside up to
        `keep` tags and returns them for that call."""
        if self.run_id is None:
            raise RuntimeError("RestRunRecorder: start() the run before logging to it")
        keys, values, stamps, steps = self._points.take()
        sent = points_route.send(self.api, self.run_id, keys, values, stamps, steps)
        metrics = [
            {"key": k, "value": number(v), "timestamp": t, "step": s}
            for k, v, t, s in zip(keys[sent:], values[sent:], stamps[sent:], steps[sent:])
        ]
        metrics, held = held_back(metrics, keep)
        for i in range(0, len(metrics), MLFLOW_METRICS):
            self.api.post("runs/log-batch", {"run_id": self.run_id, "metrics": metrics[i : i + MLFLOW_METRICS]})
        return held

    def finish(self, status: str, reason: str | None, summary: dict, params) -> None:
        """Store what is left and end the run. FINISHED only when every call was acknowledged; a storage
        failure ends it FAILED with the reason. Raises StoreError only when the end itself cannot be
        recorded (the run then stays RUNNING until the sweep marks it KILLED)."""
        with timed("run end"):
            held: list[dict] = []  # the last metric points, sent with the end tags in one call
            most_tags = min(len(end_tags("FAILED", "reason", summary)), MLFLOW_TAGS)  # with or without a reason

            def flush() -> None:
                if self._points:
                    with timed("metric writes"):
                        held.extend(self._flush(keep=most_tags))

            # every call was acknowledged once stored: nothing to read back
            problems = storage_problems(status, params, flush, self._save_weights, lambda _: [], self._discard_weights)
            status, reason = end_status(status, reason, problems)
            tags = _entries(end_tags(status, reason, summary))
            if not held and self._end_through_route(tags, status):
                self.status, self.reason = status, reason
                return
            try:
                for i in range(0, max(len(tags), 1), MLFLOW_TAGS):  # the held points go with the first tags
                    self.api.post(
                        "runs/log-batch",
                        {"run_id": self.run_id, "metrics": held if i == 0 else [], "tags": tags[i : i + MLFLOW_TAGS]},
                    )
            except Exception as exc:
                if status == "FINISHED":  # no status tag: not everything is stored
                    status, reason = "FAILED", f"storage: status tag: {describe(exc)}"
                    if params is not None:
                        discarded(self._discard_weights)
            self._terminate(status, reason)

    def _end_through_route(self, tags: list[dict], status: str) -> bool:
        """End tags and status in one request to the server's end route; False (nothing stored) when the server
        does not offer it or refuses or fails it: MLflow's two calls then store it, or fail in their words."""
        body = {"run_id": self.run_id, "tags": tags, "status": status, "end_time": int(time.time() * 1000)}
        try:
            return self.api.post_if_offered(END_ROUTE, body)
        except (RestError, Unreachable):
            return False

    def abort(self, status: str, reason: str) -> None:
        """End a run that cannot go on (interrupted, its start failed) as KILLED or FAILED; never raises."""
        if self.run_id is None or self.status is not None:
            return
        try:
            self.api.post(
                "runs/log-batch",
                {
                    "run_id": self.run_id,
                    "tags": _entries({"optlab.status": status, "optlab.failure_reason": reason[:5000]}),
                },
            )
        except Exception:
            pass
        try:
            self._terminate(status, reason)
        except StoreError:
            pass

    def _terminate(self, status: str, reason: str | None) -> None:
        try:
            self.api.post(
                "runs/update",
                {"run_id": self.run_id, "run_uuid": self.run_id, "status": status, "end_time": int(time.time() * 1000)},
            )
        except Exception as exc:
            raise StoreError(
                f"run {self.run_id}: could not record its end ({status}): {describe(exc)}; it stays "
                f"RUNNING in the store until the next start in its experiment marks it KILLED"
            ) from exc
        self.status, self.reason = status, reason

    # ---- artifacts ------------------------------------------------------------------------
    def _save_weights(self, params) -> None:
        with timed("artifacts"), tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / WEIGHTS
            save_weights(params, path)
            self.api.put_file(self._artifacts, WEIGHTS, path.read_bytes())

    def _discard_weights(self) -> None:
        self.api.delete_file(self._artifacts, WEIGHTS)
