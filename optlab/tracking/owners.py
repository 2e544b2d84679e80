"""Which process owns a run: `host:pid`, and whether that process is still alive (on this host)."""

from __future__ import annotations

import os
import socket

OWNER_TAG = "optlab.owner"  # the process that started the run (a sweep's parent process, or `optlab run`)
WORKER_TAG = "optlab.worker"  # the process training it (a sweep's worker; the owner itself otherwise)


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """True when `owner` names a live process on this host other than this one."""
    if not owner or owner == owner_id():
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host: we cannot tell; one sweep process per sweep is the contract
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited process not yet reaped by its parent (a zombie) writes nothing more
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
