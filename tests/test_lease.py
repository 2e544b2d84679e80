"""The sweep lease kept in the store: one holder at a time, freed by a crash, taken over when stale,
and a holder that learns when its store stops answering."""

import subprocess
import time

import pytest

from optlab.errors import StoreError, SweepBusy
from optlab.sweeps.lease import HEARTBEAT_TAG, OWNER_TAG, Lease, lease_name
from optlab.tracking.owners import owner_id


@pytest.fixture(scope="module")
def mlflow_client(tmp_path_factory):
    """One store for the module (creating one costs seconds); each test uses its own sweep names."""
    from optlab.tracking.store import client

    return client(f"sqlite:///{tmp_path_factory.mktemp('leases') / 'mlflow.db'}")


def test_one_holder_at_a_time_and_release_frees_it(mlflow_client):
    with Lease(mlflow_client, "it's ünï"):
        held = mlflow_client.get_experiment_by_name(lease_name("it's ünï"))
        assert held.tags[OWNER_TAG] == owner_id()
        other = Lease(mlflow_client, "it's ünï")
        with pytest.raises(SweepBusy, match=r"sweep \"it's ünï\" is already running against this store \(held by "):
            other.acquire()
    assert mlflow_client.get_experiment_by_name(lease_name("it's ünï")) is None  # released
    with Lease(mlflow_client, "it's ünï"):  # and free again
        pass


def test_a_lease_whose_owner_died_is_taken_over(mlflow_client):
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = owner_id().rpartition(":")[0]
    mlflow_client.create_experiment(
        lease_name("crashed"), tags={OWNER_TAG: f"{host}:{dead.pid}", HEARTBEAT_TAG: str(time.time())}
    )
    with Lease(mlflow_client, "crashed") as lease:
        assert mlflow_client.get_experiment(lease.lease_id).tags[OWNER_TAG] == owner_id()


def test_a_lease_with_an_old_heartbeat_on_another_host_is_taken_over(mlflow_client, monkeypatch):
    monkeypatch.setenv("OPTLAB_LEASE_TTL", "60")
    mlflow_client.create_experiment(
        lease_name("remote"), tags={OWNER_TAG: "other-host:123", HEARTBEAT_TAG: str(time.time() - 3600)}
    )
    with Lease(mlflow_client, "remote") as lease:
        assert mlflow_client.get_experiment(lease.lease_id).tags[OWNER_TAG] == owner_id()
    mlflow_client.create_experiment(
        lease_name("remote"), tags={OWNER_TAG: "other-host:123", HEARTBEAT_TAG: str(time.time())}
    )
    with pytest.raises(SweepBusy, match="held by other-host:123"):
        Lease(mlflow_client, "remote").acquire()


class FailingTags:
    """The client of a store that stops accepting writes after the lease is taken."""

    def __init__(self, real):
        self.real, self.broken = real, False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def set_experiment_tag(self, *args):
        if self.broken:
            raise OSError(28, "No space left on device", "/store/mlflow.db")
        return self.real.set_experiment_tag(*args)


def test_a_holder_learns_that_its_store_stopped_answering(mlflow_client, monkeypatch):
    monkeypatch.setenv("OPTLAB_LEASE_HEARTBEAT", "0.1")
    told = []
    failing = FailingTags(mlflow_client)
    with Lease(failing, "lost", on_lost=told.append) as lease:
        lease.check()
        failing.broken = True
        deadline = time.monotonic() + 10
        while not told and time.monotonic() < deadline:
            time.sleep(0.05)
        assert told == ["lost the tracking store: disk full (No space left on device): /store/mlflow.db"]
        with pytest.raises(StoreError, match="lost the tracking store"):
            lease.check()
