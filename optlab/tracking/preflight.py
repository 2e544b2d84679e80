"""Checks made before a run exists, so a store that cannot hold a whole run refuses in one line
instead of leaving a half-written run behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from optlab.errors import StoreError
from optlab.tracking.failures import describe


def local_folder(location: str | None) -> Path | None:
    """The folder of a local artifact location (`file:` URI or plain path); None for remote ones."""
    if not location:
        return None
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" or (len(parts.scheme) == 1 and location[1:3] in (":\\", ":/")):  # a path
        return Path(location)
    return None


def check_artifacts_writable(mlflow_client, experiment_id: str) -> None:
    """Write and remove a probe file where the experiment's runs keep their artifacts (local stores only)."""
    check_folder_writable(local_folder(mlflow_client.get_experiment(experiment_id).artifact_location))


def check_folder_writable(folder: Path | None) -> None:
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".optlab-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StoreError(f"cannot write run artifacts: {describe(exc)}") from None
