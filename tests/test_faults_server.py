"""A tracking server that is closed or stops mid-sweep: bounded retries and timeouts, one line, a
sweep that stops instead of hanging, and a rerun after the server is back with no duplicates."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from fault_helpers import assert_one_finished_per_point, env_for, optlab, points_of, runs_of, wait_until

from optlab.sweeps import load
from optlab.tracking.ui_server import server_env

PORTS = range(5300, 5350)  # this project's range for test servers


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 5300-5349")


def test_a_closed_server_port_fails_fast_in_one_line(tmp_path):
    port = free_port()  # nothing listens there
    env = env_for(tmp_path, MLFLOW_TRACKING_URI=f"http://user:secret@127.0.0.1:{port}")
    proc = optlab(["run", "-d", "digits", "--hidden", "4", "--steps", "2", "-q"], env)
    _, err = proc.communicate(timeout=120)  # MLflow's defaults retried for minutes; bounded now
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and err.startswith(
        f"optlab: error: tracking server http://***@127.0.0.1:{port} unreachable: connection refused"
    ), err
    assert "secret" not in err


class Server:
    """`mlflow server` on a SQLite file, started and stopped by the test (its own process group); with
    `app_name`, MLflow's server app of that name (`--app-name`). Its output, the request log included, goes
    to folder/server.log."""

    def __init__(self, folder, port, app_name: str | None = None):
        self.folder, self.port, self.proc, self.app_name = folder, port, None, app_name
        self.uri = f"http://127.0.0.1:{port}"
        self.log = folder / "server.log"

    def requests(self, method: str, path: str) -> list[int]:
        """The status of every `method path` request the server logged so far, in order."""
        line_start = f'"{method} {path} HTTP/1.1" '
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [int(line.split(line_start, 1)[1].split()[0]) for line in lines if line_start in line]

    def start(self):
        mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
        argv = [
            mlflow,
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.folder / 'server.db'}",
            "--artifacts-destination",
            str(self.folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            *(["--app-name", self.app_name] if self.app_name else []),
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=server_env(dict(os.environ))
            )
        wait_until(self.healthy, 180, what=f"mlflow server on port {self.port}")

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"mlflow server exited with {self.proc.returncode}")
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its uvicorn worker, if still there
        except ProcessLookupError:
            pass


@pytest.mark.slow
def running_server(tmp_path_factory, app_name: str | None):
    """A started `mlflow server` (with `--app-name app_name` when given) for a fixture to yield, stopped after."""
    running = Server(tmp_path_factory.mktemp("server"), free_port(), app_name=app_name)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_a_sweep_whose_server_stops_ends_in_one_line_and_a_rerun_completes(tmp_path, monkeypatch):
    server = Server(tmp_path, free_port())
    server.start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        path = tmp_path / "remote.toml"
        path.write_text(
            'name = "remote"\n[base]\ndataset = "digits"\nhidden = [8]\nsteps = 1000000\n'
            "seconds = 3\neval_every = 200\nlog_every = 50\n"
            '[grid]\nstrategy = ["minibatch", "adam"]\nseed = [0, 1]\n'
        )
        points = load(path).points
        env = env_for(tmp_path / "home", MLFLOW_TRACKING_URI=server.uri, OPTLAB_LEASE_HEARTBEAT="3")
        proc = optlab(["sweep", str(path), "-j", "2", "-q"], env)
        try:
            wait_until(
                lambda: [r for r in quiet_points("remote") if r.info.status == "RUNNING"], 180, proc, "a running point"
            )
            server.stop()
            _, err = proc.communicate(timeout=120)  # hangs for many minutes without bounded retries
        finally:
            proc.kill()
        assert proc.returncode == 2, err
        assert "Traceback" not in err and err.count("\n") == 1, err
        assert err.startswith(
            "optlab: error: sweep 'remote' stopped: lost the tracking store: tracking server "
            f"{server.uri} unreachable: connection refused"
        ), err

        server.start()  # the same database: the sweep's runs are there, some left RUNNING
        rerun = optlab(["sweep", str(path), "-j", "2", "-q"], env)
        _, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        assert_one_finished_per_point("remote", points, server.uri)
        statuses = sorted(r.info.status for r in runs_of("remote", server.uri))
        assert "RUNNING" not in statuses
    finally:
        server.stop()


def quiet_points(name):
    try:
        return points_of(name)
    except Exception:
        return []


def test_a_report_from_a_closed_server_is_one_line_without_credentials(tmp_path, capsys):
    from optlab.cli import main

    port = free_port()
    code = main(["report", "--tracking-uri", f"http://user:secret@127.0.0.1:{port}", "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert (
        err.startswith(f"optlab: error: tracking server http://***@127.0.0.1:{port} unreachable")
        and "secret" not in err
    )
    assert not (tmp_path / "out" / "report.html").exists()
