"""The loopback cluster's commands (scripts/localcluster.py): what a user would type on real machines."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from localcluster import MlflowServer  # noqa: E402

JOBS = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def test_the_cluster_server_starts_without_mlflow_job_execution_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv(JOBS, raising=False)
    server = MlflowServer("postgresql://mlflow@127.0.0.1:1/mlflow", tmp_path / "artifacts", tmp_path, port=5449)
    assert server.service.env == {JOBS: "false"}
    assert server.service.command().startswith(f"{JOBS}=false ")  # the printed recipe carries it


def test_a_job_execution_setting_the_user_exported_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv(JOBS, "true")
    server = MlflowServer("postgresql://mlflow@127.0.0.1:1/mlflow", tmp_path / "artifacts", tmp_path, port=5449)
    assert JOBS not in server.service.env  # the server inherits the user's own value
    assert not server.service.command().startswith(JOBS)
