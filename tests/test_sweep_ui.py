"""End to end: the MLflow UI server over a sweep's store shows the parent and its children (REST API)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sweep_helpers import write_spec

from optlab.sweeps import load, run_sweep


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_ui_server_lists_the_sweep_parent_and_children(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = load(
        write_spec(
            tmp_path,
            """
        [grid]
        strategy = ["minibatch"]
        [tune]
        lr = [0.1, 0.5]
        objective = "val_loss"
        [rerun]
        seeds = [1]
    """,
            name="ui",
            steps=10,
        )
    )
    report = run_sweep(spec, progress=False)

    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    port = free_port()
    store = f"sqlite:///{tmp_path / 'home' / 'mlruns' / 'mlflow.db'}"
    server = subprocess.Popen(
        [
            *command,
            "server",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                experiment = call(port, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=ui")["experiment"]
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"mlflow server did not come up: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.3)
        runs = call(
            port, "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 100}
        )["runs"]
        tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs}
        parent = [rid for rid, t in tags.items() if t.get("optlab.role") == "parent"]
        kids = [rid for rid, t in tags.items() if t.get("mlflow.parentRunId") == report.parent_run_id]
        assert parent == [report.parent_run_id]
        assert len(kids) == 3 and all(tags[k]["optlab.sweep"] == "ui" for k in kids)
        assert sorted((tags[k]["optlab.role"], tags[k]["optlab.selected"]) for k in kids) == [
            ("rerun", "true"),
            ("tuning", "false"),
            ("tuning", "true"),
        ]
        metrics = {r["info"]["run_id"]: {m["key"] for m in r["data"].get("metrics", [])} for r in runs}
        assert all({"train_loss", "test_accuracy"} <= metrics[k] for k in kids)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
