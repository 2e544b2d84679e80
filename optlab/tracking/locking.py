"""An exclusive lock on a file, held by this process until the block ends or the process dies.

The kernel releases an `flock` when its holder exits for any reason (SIGKILL included), so a
crash can never leave it held.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock (store creation falls back to retries)
    fcntl = None  # type: ignore[assignment]  # the optional-import idiom: callers check for None


@contextmanager
def file_lock(path: Path):
    """Hold an exclusive lock on `path` (created when missing) for the duration of the block."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
