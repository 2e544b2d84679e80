"""One loopback cluster (PostgreSQL, MLflow server, two Ray nodes) for the whole cluster session,
made whole again around every test: a fault test may leave a node or the server down."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import cluster_checks  # noqa: E402
from localcluster import LocalCluster  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """Started once, stopped at the end of the session whatever happens (every process by its group)."""
    local = LocalCluster(root=tmp_path_factory.mktemp("cluster"), ray_workers=1)
    local.start(progress=lambda line: None)
    try:
        yield local
    finally:
        local.stop()


def heal(local: LocalCluster) -> None:
    if local.server.service.proc is None or local.server.service.exited():
        local.server.stop()
        local.server.start()
    local.replace_dead_workers()


@pytest.fixture
def live_cluster(cluster):
    heal(cluster)
    yield cluster
    heal(cluster)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """The test sweep run in this process on a local SQLite store: FINISHED run by point hash."""
    home = tmp_path_factory.mktemp("reference")
    return cluster_checks.reference_sweep(cluster_checks.write_spec(home, "reference"), home)
