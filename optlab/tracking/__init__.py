"""Tracking: every run is an MLflow run in the project's store (SQLite in mlruns/ by default)."""

from optlab.tracking.recorder import NullRecorder, RunRecorder
from optlab.tracking.store import client, ensure_experiment, tracking_uri

__all__ = ["NullRecorder", "RunRecorder", "client", "ensure_experiment", "tracking_uri"]
