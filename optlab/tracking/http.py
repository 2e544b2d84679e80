"""Bounded retries and timeouts for calls to a tracking server.

MLflow's own defaults (7 retries with exponential backoff, 120 s per request) make a stopped or
unreachable server look like a hang of several minutes. optlab sets MLflow's settings from its own,
unless the MLflow variables are set explicitly:

    OPTLAB_TRACKING_RETRIES   retries after the first attempt (default 2)
    OPTLAB_TRACKING_TIMEOUT   seconds per request (default 10)

With the defaults a refused connection fails after about 2 s (waits of 0 and 2 s between the three
tries) and a server that accepts but never answers after about (2 + 1) x 10 + 2 = 32 s.
"""

from __future__ import annotations

import os

from optlab.errors import ConfigError

RETRIES_ENV, TIMEOUT_ENV = "OPTLAB_TRACKING_RETRIES", "OPTLAB_TRACKING_TIMEOUT"
DEFAULT_RETRIES, DEFAULT_TIMEOUT = 2, 10
BACKOFF_FACTOR = 1  # MLflow takes an integer: waits 0, 2, 4, ... s between tries


def setting(name: str, default: int, lowest: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lowest <= value <= 1000:
        raise ConfigError(f"{name} must be an integer in [{lowest}, 1000], got {value}")
    return value


def configure() -> tuple[int, int]:
    """Set MLflow's HTTP retry and timeout variables (inherited by worker processes);
    returns the (retries, timeout) in force."""
    retries = setting(RETRIES_ENV, DEFAULT_RETRIES, 0)
    timeout = setting(TIMEOUT_ENV, DEFAULT_TIMEOUT, 1)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", str(BACKOFF_FACTOR))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # no "View run at" line per run
    return int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]), int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"])
