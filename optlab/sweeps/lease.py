"""The sweep lock: one process at a time runs a given sweep (by name) against a given store.

The lock is a lease kept in the store itself, so it works the same for a SQLite file, PostgreSQL
and a tracking server shared by several machines. MLflow gives one atomic operation that any store
enforces: an experiment name is unique. Holding the lease is owning the experiment named
`optlab.lease:<sweep name>`; its tags say who holds it (`host:pid`) and when it last said it was
alive (a heartbeat every OPTLAB_LEASE_HEARTBEAT seconds, default 10).

A lease is stale, and taken over, when its owner is a dead process on this host or its heartbeat
is older than OPTLAB_LEASE_TTL seconds (default 60; owners on other hosts, clocks assumed within
a few seconds). Taking over renames the stale lease away (by id) and creates a new one; two
processes taking over at once cannot both win, since only one can create the name. Releasing
renames the lease away and deletes it, so a crash (SIGKILL, power loss) frees it at the next start.

The heartbeat also watches the store: when it cannot write for two heartbeats in a row, or finds
that its lease was taken over, the holder is told (`on_lost`) and `check()` raises, so a sweep whose
store or server disappeared stops instead of hanging.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid

from optlab.errors import ConfigError, StoreError, SweepBusy
from optlab.tracking.failures import describe
from optlab.tracking.owners import owner_alive, owner_id

PREFIX = "optlab.lease:"
OWNER_TAG, HEARTBEAT_TAG = "optlab.lease.owner", "optlab.lease.heartbeat"
HEARTBEAT_ENV, TTL_ENV = "OPTLAB_LEASE_HEARTBEAT", "OPTLAB_LEASE_TTL"
DEFAULT_HEARTBEAT, DEFAULT_TTL = 10.0, 60.0
MAX_NAME = 250  # MLflow's experiment names are at most 256 characters in SQL stores


def seconds_setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0.05 <= value <= 86400:
        raise ConfigError(f"{name} must be between 0.05 and 86400 seconds, got {raw!r}")
    return value


def lease_name(sweep: str) -> str:
    name = PREFIX + sweep
    if len(name) <= MAX_NAME:
        return name
    return PREFIX + sweep[: MAX_NAME - len(PREFIX) - 18] + "~" + hashlib.sha256(sweep.encode()).hexdigest()[:16]


class Lease:
    """`with Lease(client, sweep):` holds the sweep's lock for the block (see the module docstring)."""

    def __init__(self, client, sweep: str, wait: float = 0.0, on_lost=None):
        self.client, self.sweep, self.wait = client, sweep, wait
        self.name = lease_name(sweep)
        self.owner = owner_id()
        self.heartbeat = seconds_setting(HEARTBEAT_ENV, DEFAULT_HEARTBEAT)
        self.ttl = max(seconds_setting(TTL_ENV, DEFAULT_TTL), 3 * self.heartbeat)
        self.on_lost = on_lost
        self.lease_id: str | None = None
        self.lost: str | None = None  # why the lease or the store was lost, once it was
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- acquiring ------------------------------------------------------------------------
    def __enter__(self) -> Lease:
        self.acquire()
        self._thread = threading.Thread(target=self._beat, name="optlab-lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            if self._create():
                return
            found = self.client.get_experiment_by_name(self.name)
            if found is None:
                continue  # released in between: try again
            holder = found.tags.get(OWNER_TAG, "unknown")
            age = self._age(found)
            if found.lifecycle_stage != "active" or self._stale(holder, age):
                self._bury(found.experiment_id)
                continue
            if time.monotonic() >= deadline:
                waited = f" after waiting {self.wait:g} s" if self.wait else ""
                raise SweepBusy(
                    f"sweep {self.sweep!r} is already running against this store (held by {holder}, "
                    f"alive {age:.0f} s ago){waited}; wait for it to end, or pass --wait SECONDS"
                )
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def _create(self) -> bool:
        from mlflow.exceptions import MlflowException

        now = str(time.time())
        try:
            self.lease_id = self.client.create_experiment(
                self.name,
                tags={
                    OWNER_TAG: self.owner,
                    HEARTBEAT_TAG: now,
                    "optlab.lease.sweep": self.sweep,
                    "mlflow.note.content": f"lock of sweep {self.sweep!r} held by {self.owner}",
                },
            )
            return True
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS" or "already exists" in str(exc):
                return False
            raise StoreError(
                f"cannot take the lock of sweep {self.sweep!r}: {describe(exc, self.client.tracking_uri)}"
            ) from exc

    def _age(self, experiment) -> float:
        try:
            stamp = float(experiment.tags.get(HEARTBEAT_TAG, ""))
        except ValueError:
            stamp = (experiment.last_update_time or experiment.creation_time or 0) / 1000
        return max(0.0, time.time() - stamp)

    def _stale(self, holder: str, age: float) -> bool:
        if holder == owner_id():
            return False  # this very process holds it (owner_alive answers for other processes only)
        host, _, pid = holder.rpartition(":")
        if host == owner_id().rpartition(":")[0] and pid.isdigit() and not owner_alive(holder):
            return True  # its owner died on this host
        return age > self.ttl

    def _bury(self, experiment_id: str) -> None:
        """Rename a lease away (by id, so a newer lease of the same name is never touched) and delete it."""
        try:
            experiment = self.client.get_experiment(experiment_id)
            if experiment.lifecycle_stage != "active":
                self.client.restore_experiment(experiment_id)
            if experiment.name.startswith(PREFIX):
                self.client.rename_experiment(
                    experiment_id, f"{self.name[: MAX_NAME - 30]}:released:{uuid.uuid4().hex[:12]}"
                )
            self.client.delete_experiment(experiment_id)
        except Exception:  # noqa: BLE001 - another process buried it first
            pass

    # ---- holding --------------------------------------------------------------------------
    def _beat(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self.heartbeat):
            try:
                experiment = self.client.get_experiment(self.lease_id)
                if (
                    experiment.name != self.name
                    or experiment.lifecycle_stage != "active"
                    or experiment.tags.get(OWNER_TAG) != self.owner
                ):
                    self._lose(f"lost the lock of sweep {self.sweep!r}: another process took it over")
                    return
                self.client.set_experiment_tag(self.lease_id, HEARTBEAT_TAG, str(time.time()))
                last_ok = time.monotonic()
            except Exception as exc:  # noqa: BLE001 - a store that cannot be written for long is lost
                if time.monotonic() - last_ok >= 2 * self.heartbeat:
                    self._lose(f"lost the tracking store: {describe(exc, self.client.tracking_uri)}")
                    return

    def _lose(self, reason: str) -> None:
        self.lost = reason
        if self.on_lost is not None:
            self.on_lost(reason)

    def check(self) -> None:
        """Raise StoreError once the lease or the store is lost."""
        if self.lost:
            raise StoreError(self.lost)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self.lease_id is not None and not self.lost:
            self._bury(self.lease_id)
        self.lease_id = None
