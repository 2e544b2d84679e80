"""One line that says why the tracking store failed: unreachable server, read-only or full disk,
a missing folder. Used by the recorder (the reason of a run that could not be stored), the sweep
executor and the command line; credentials in URIs are masked."""

from __future__ import annotations

import errno
import logging
import os
import re

from optlab.tracking.uri import mask_credentials

_SERVER_CAUSES = (
    ("Connection refused", "connection refused"),
    ("Read timed out", "no answer within the timeout"),
    ("timed out", "timed out"),
    ("Name or service not known", "unknown host"),
    ("nodename nor servname", "unknown host"),
    ("Temporary failure in name resolution", "unknown host"),
    ("No route to host", "no route to host"),
    ("Connection reset", "connection reset"),
    ("Remote end closed connection", "connection closed by the server"),
    ("RemoteDisconnected", "connection closed by the server"),
    ("too many 5", "the server keeps answering with errors"),
    ("ResponseError", "the server keeps answering with errors"),
)
_SQL_CAUSES = (
    ("readonly database", "the store is read-only"),
    ("read-only file system", "the store is on a read-only file system"),
    ("disk is full", "the disk is full"),
    ("database or disk is full", "the disk is full"),
    ("unable to open database file", "cannot open the database file"),
    ("database is locked", "the database stayed locked by another process"),
    ("disk I/O error", "disk I/O error"),
    ("file is not a database", "the file is not an MLflow database"),
)


def quiet_store_logs() -> None:
    """MLflow logs a full traceback for every failed SQL write before raising it; optlab reports each
    failure itself in one line (the run's reason, the command's error), so those logs are muted
    unless OPTLAB_DEBUG is set."""
    if os.environ.get("OPTLAB_DEBUG", "") in ("", "0"):
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


STORAGE_ERRNOS = tuple(
    getattr(errno, name) for name in ("ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT", "EIO") if hasattr(errno, name)
)


def is_storage_failure(exc: BaseException) -> bool:
    """True for a store or server that cannot be read or written (as opposed to a bug or a bad value)."""
    from optlab.errors import StoreError

    if isinstance(exc, StoreError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in STORAGE_ERRNOS
    text = str(exc)
    return "API request to" in text or any(key.lower() in text.lower() for key, _ in _SQL_CAUSES)


def describe(exc: BaseException, uri: str | None = None) -> str:
    """A one-line explanation of a storage failure, naming the store or path."""
    where = f" ({mask_credentials(uri)})" if uri else ""
    if isinstance(exc, OSError):
        return _os_error(exc)
    text = str(exc)
    match = re.search(r"API request to (\S+?)(/api/|/ajax-api/)\S* failed with exception (.*)", text, re.S)
    if match:
        from optlab.tracking import http

        base, detail = match.group(1), match.group(3)
        cause = next((said for key, said in _SERVER_CAUSES if key in detail), _first_line(detail, 160))
        retries = http.setting(http.RETRIES_ENV, http.DEFAULT_RETRIES, 0)
        timeout = http.setting(http.TIMEOUT_ENV, http.DEFAULT_TIMEOUT, 1)
        return (
            f"tracking server {mask_credentials(base)} unreachable: {cause} (after {retries} retries, "
            f"{timeout} s timeout per request; see {http.RETRIES_ENV}, {http.TIMEOUT_ENV})"
        )
    for key, said in _SQL_CAUSES:
        if key.lower() in text.lower():
            return f"cannot write the tracking store{where}: {said}"
    return mask_credentials(f"{type(exc).__name__}: {_first_line(text, 300)}") + where


def _os_error(exc: OSError) -> str:
    name = exc.filename if exc.filename is not None else ""
    if exc.filename2:
        name = f"{name} -> {exc.filename2}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "disk full (No space left on device)"
    return f"{reason}: {name}" if name else reason


def _first_line(text: str, limit: int) -> str:
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."
