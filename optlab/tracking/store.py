"""Where runs are recorded: MLFLOW_TRACKING_URI when set, else SQLite inside ./mlruns.

The URI is always set explicitly: with an old file store lying in ./mlruns, MLflow would silently
pick it and then fail. The default path is made absolute so the store does not move with the
working directory of a worker process.
"""

from __future__ import annotations

import os
from pathlib import Path

TRACKING_HOME_ENV = "OPTLAB_HOME"  # folder holding mlruns/ (default: the working directory)


def home() -> Path:
    return Path(os.environ.get(TRACKING_HOME_ENV, ".")).resolve() / "mlruns"


def default_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def uses_default_store(uri: str | None = None) -> bool:
    return (uri or tracking_uri()) == default_uri()


def client(uri: str | None = None):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    if uses_default_store(uri):
        home().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)


def ensure_experiment(mlflow_client, name: str, description: str | None = None) -> str:
    """The experiment's id, creating it (with artifacts under mlruns/artifacts for the default store),
    marked for the UI's model-training pages and described (tracking/ui.py)."""
    from optlab.tracking.ui import describe_experiment

    experiment_id = _ensure_exists(mlflow_client, name)
    describe_experiment(mlflow_client, experiment_id, description)
    return experiment_id


def _ensure_exists(mlflow_client, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = None
    if uses_default_store(mlflow_client.tracking_uri):
        location = (home() / "artifacts").as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another process
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def display_uri(uri: str) -> str:
    """The URI with any password replaced by *** (for messages and reports)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
