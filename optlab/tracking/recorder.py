"""One tracked run: params and tags up front, metrics buffered and sent with log_batch, artifacts at
the end, and a terminal status (FINISHED, FAILED with its reason, KILLED).

A single `log_metric` call costs ~3 ms on SQLite here, about three training steps of the reference
net, so metric points are appended to in-memory lists (~1 us each) and flushed in chunks of up to
1,000 with one `log_batch` call each.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from optlab.tracking import provenance, ui
from optlab.tracking.fast_metrics import log_columns_fast
from optlab.tracking.store import client as make_client, ensure_experiment

FLUSH_EVERY = 5000  # buffered points before an intermediate flush
MLFLOW_BATCH = 1000  # MLflow's limit of metrics per log_batch call


class NullRecorder:
    """Records nothing: for quick experiments and for measuring tracking overhead."""

    run_id = None

    def start(self, config, problem, plan, extra_tags=None):
        return self

    def log(self, step: int, values: dict[str, float]) -> None:
        pass

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        pass

    def finish(self, status: str, reason: str | None, summary: dict, params: torch.Tensor | None):
        pass


class RunRecorder:
    def __init__(self, experiment: str | None = None, parent_run_id: str | None = None,
                 experiment_id: str | None = None, tracking_uri: str | None = None):
        self.client = make_client(tracking_uri)
        self.experiment_id = experiment_id
        self.experiment_name = experiment
        self.parent_run_id = parent_run_id
        self.run_id = None
        self._keys, self._values, self._steps, self._stamps = [], [], [], []

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self, config, problem, plan, extra_tags: dict | None = None) -> "RunRecorder":
        from mlflow.entities import Param, RunTag

        if self.experiment_id is None:
            self.experiment_id = ensure_experiment(self.client, self.experiment_name or config.experiment)
        tags = {
            "optlab.strategy": config.strategy,
            "optlab.family": extra_tags.pop("optlab.family", "") if extra_tags else "",
            "optlab.dataset": config.dataset,
            "optlab.config_hash": config.config_hash(),
            "mlflow.source.git.commit": provenance.git_commit(),
            "optlab.git_commit": provenance.git_commit(),
            **{f"version.{k}": v for k, v in provenance.versions().items()},
            **ui.run_tags(config.strategy),
        }
        dataset = getattr(problem, "dataset", None)
        if dataset is not None:
            tags["optlab.data_fingerprint"] = dataset.fingerprint()
            tags["optlab.split"] = dataset.split  # train/validation/test
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        tags.update(extra_tags or {})
        run = self.client.create_run(self.experiment_id, run_name=config.run_name or config.label(),
                                     tags={k: str(v) for k, v in tags.items()})
        self.run_id = run.info.run_id
        params = {**flatten_config(config), "n_params": problem.n_params,
                  "resolved_batch_size": plan.batch_size if plan.batch_size is not None else "full",
                  "steps_per_epoch": round(plan.steps_per_epoch, 6), "planned_steps": plan.max_steps}
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])
        self.client.log_dict(self.run_id, config.to_dict(), "config.json")
        return self

    def log(self, step: int, values: dict[str, float]) -> None:
        stamp = int(time.time() * 1000)
        for key, value in values.items():
            if value is None:
                continue
            self._keys.append(key)
            self._values.append(float(value))
            self._steps.append(step)
            self._stamps.append(stamp)
        if len(self._keys) >= FLUSH_EVERY:
            self.flush()

    def log_series(self, steps: list[int], columns: dict[str, list[float]]) -> None:
        """Many steps at once: columns map a metric name to one value per step (batched training)."""
        stamp = int(time.time() * 1000)
        for key, values in columns.items():
            self._keys.extend([key] * len(steps))
            self._values.extend(map(float, values))
            self._steps.extend(steps)
            self._stamps.extend([stamp] * len(steps))
        if len(self._keys) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        from mlflow.entities import Metric

        if not self._keys:
            return
        columns = self._keys, self._values, self._stamps, self._steps
        self._keys, self._values, self._steps, self._stamps = [], [], [], []
        if log_columns_fast(self.client, self.run_id, *columns):
            return
        metrics = [Metric(k, v, t, s) for k, v, t, s in zip(*columns)]
        for i in range(0, len(metrics), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + MLFLOW_BATCH])

    def finish(self, status: str, reason: str | None, summary: dict, params: torch.Tensor | None) -> None:
        from mlflow.entities import RunTag

        try:
            self.flush()
            tags = [RunTag("optlab.status", status)]
            if reason:
                tags.append(RunTag("optlab.failure_reason", reason[:5000]))
            tags += [RunTag(f"optlab.summary.{k}", str(v)) for k, v in summary.items() if v is not None]
            self.client.log_batch(self.run_id, tags=tags)
            if params is not None:
                self._log_params_artifact(params)
        finally:
            self.client.set_terminated(self.run_id, status)

    def _log_params_artifact(self, params: torch.Tensor) -> None:
        from safetensors.torch import save_file

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "params.safetensors"
            save_file({"params": params.detach().cpu().contiguous()}, str(path),
                      metadata={"format": "optlab flat parameter vector", "n_params": str(params.numel())})
            self.client.log_artifact(self.run_id, str(path))


def flatten_config(config) -> dict[str, str]:
    flat = {}
    for key, value in config.to_dict().items():
        if key == "options":
            for opt_key, opt_value in value.items():
                flat[f"option.{opt_key}"] = opt_value
        elif isinstance(value, list):
            flat[key] = ",".join(map(str, value))
        else:
            flat[key] = "" if value is None else value
    return flat


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
