"""A throw-away cluster on this machine's loopback interface: PostgreSQL, an MLflow tracking server on
it with proxied artifacts (optlab's server app: `mlflow server --app-name optlab`), and a Ray cluster
whose nodes are separate `ray start` processes.

The cluster tests (tests/cluster/) and `make cluster-demo` (scripts/cluster_demo.py) both build their
cluster with `LocalCluster`, so the recipe a user reads is the one the tests run. Nothing here
imports optlab: every service is started with the same command a user types on a real machine, and
`LocalCluster.recipe()` prints those commands.

Rules this file keeps:
- every socket binds 127.0.0.1; ports come from fixed ranges (PostgreSQL 55400-55449, MLflow
  5400-5449, Ray head 6400-6449, Ray's internal ports 20000-20999) and are checked free first;
- every process is started in its own session (process group) and stopped by that group's id,
  never by name: other Ray clusters or PostgreSQL servers on the machine are left alone;
- PostgreSQL's `initdb` / `pg_ctl` refuse to run as root, so as root they run as the `postgres`
  user (the Debian package creates it) on a data directory owned by it;
- Ray nodes and the driver authenticate with one shared token (RAY_AUTH_MODE=token and the same
  RAY_AUTH_TOKEN for every `ray start` and for the driver, `LocalCluster.env()`): left to itself,
  Ray 2.60's `ray start` makes up a token per node and a second node is refused (InvalidAuthToken).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
POSTGRES_PORTS = range(55400, 55450)
MLFLOW_PORTS = range(5400, 5450)
RAY_HEAD_PORTS = range(6400, 6450)
RAY_INTERNAL_PORTS = range(20000, 21000)
GRACE = 5.0  # seconds between SIGTERM and SIGKILL: Ray nodes ignore SIGTERM, mlflow's workers linger
WORKER_PORTS_PER_NODE = 16  # Ray worker processes each take one port of this node's range
SECRET_ENV = ("RAY_AUTH_TOKEN",)  # shown as $NAME in printed commands
# MLflow 3.17's server otherwise starts seven job-queue processes (huey) for its GenAI jobs, which nothing
# here uses and which burn ~13 CPU-seconds in the ~10 s after the server is healthy, on the cores the
# cluster's nodes train on; a value the user exported is kept
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def ray_env(token: str) -> dict[str, str]:
    """The environment of every Ray node and driver of one cluster."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}


class ClusterError(RuntimeError):
    """A service did not come up; the message names it and ends with its log."""


# ---- ports ----------------------------------------------------------------------------------
_claimed: set[int] = set()


def port_free(port: int) -> bool:
    """True when a server could bind the port now (connections of a stopped server lingering in
    TIME_WAIT do not count: servers bind with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_port(candidates: range) -> int:
    """A free loopback port from `candidates`, not handed out before by this process; the start is
    random so two harnesses started at once rarely race for the same port."""
    ports = list(candidates)
    start = random.randrange(len(ports))
    for port in ports[start:] + ports[:start]:
        if port not in _claimed and port_free(port):
            _claimed.add(port)
            return port
    raise ClusterError(f"no free loopback port in {candidates.start}-{candidates.stop - 1}")


def free_block(candidates: range, size: int) -> range:
    """`size` consecutive free ports (Ray's --min-worker-port .. --max-worker-port)."""
    starts = list(range(candidates.start, candidates.stop - size + 1, size))
    random.shuffle(starts)
    for start in starts:
        block = range(start, start + size)
        if not _claimed.intersection(block) and all(port_free(p) for p in block):
            _claimed.update(block)
            return block
    raise ClusterError(f"no {size} free consecutive loopback ports in {candidates.start}-{candidates.stop - 1}")


def wait_for(check, timeout: float, what: str, process: Service | None = None, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.exited():
            raise ClusterError(f"{what}: the process exited with code {process.proc.returncode}\n{process.log_tail()}")
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        time.sleep(interval)
    raise ClusterError(f"{what}: not ready after {timeout:.0f} s" + (f"\n{process.log_tail()}" if process else ""))


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((LOOPBACK, port)) == 0


# ---- processes ------------------------------------------------------------------------------
@dataclass
class Service:
    """One long-running command in its own process group, its output in a log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> Service:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)  # the group id is the leader's pid (start_new_session)

    def stop(self, grace: float = GRACE) -> None:
        """SIGTERM to the whole group, SIGKILL to whatever is left after `grace` seconds."""
        stop_all([self], grace)

    def kill(self) -> None:
        """SIGKILL to the whole group at once: the crash of a machine, as its peers see it."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_alive(self.proc.pid):
            time.sleep(0.1)
        self.proc = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return f"(no log at {self.log})"
        return f"--- last lines of {self.log}:\n" + "\n".join(text[-lines:])

    def command(self) -> str:
        env = " ".join(f"{k}=${k}" if k in SECRET_ENV else f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        return (env + " " if env else "") + " ".join(shlex.quote(a) for a in self.argv)


def stop_all(services: list[Service], grace: float = GRACE) -> None:
    """Stop several services at once: SIGTERM to every group, then SIGKILL to what is left after
    `grace` seconds."""
    running = [s for s in services if s.proc is not None]
    for service in running:
        service.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(s.proc.pid) for s in running):
        for service in running:
            service.proc.poll()
        time.sleep(0.2)
    for service in running:
        service.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.proc.wait(timeout=5)
        service.proc = None


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies of our own children excepted)."""
    for entry in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(entry).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def tool(name: str) -> str:
    """An executable next to this Python (the project's venv), else on PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise ClusterError(f"{name} not found next to {sys.executable} or on PATH")
    return found


# ---- PostgreSQL -----------------------------------------------------------------------------
def postgres_bindir() -> Path:
    """The newest Debian-packaged PostgreSQL server's binaries (initdb, pg_ctl)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ClusterError("PostgreSQL server binaries not found (initdb): apt-get install postgresql")


class Postgres:
    """A throw-away PostgreSQL cluster: `initdb` in a temp dir, `pg_ctl start` on a loopback port with
    the socket in that dir, a database `mlflow` owned by role `mlflow` (trust auth, loopback only)."""

    user = "mlflow"
    database = "mlflow"

    def __init__(self, port: int | None = None, log_dir: Path | None = None):
        self.bindir = postgres_bindir()
        self.port = port or free_port(POSTGRES_PORTS)
        self.root = Path(tempfile.mkdtemp(prefix="optlab-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"  # written by the server user; copied to log_dir on stop
        self.log_dir = log_dir
        self.commands: list[str] = []
        self.started = False

    @property
    def uri(self) -> str:
        # SQLAlchemy 2.1 maps postgresql:// to psycopg 3 (pip install 'psycopg[binary]')
        return f"postgresql://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    def _as_server_user(self, command: str) -> subprocess.CompletedProcess:
        self.commands.append(command)
        if os.geteuid() == 0:  # initdb and pg_ctl refuse root
            argv = ["su", "postgres", "-s", "/bin/bash", "-c", command]
        else:
            argv = ["/bin/bash", "-c", command]
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise ClusterError(f"PostgreSQL: `{command}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            try:
                shutil.chown(self.root, "postgres", "postgres")
            except LookupError:
                raise ClusterError(
                    "initdb refuses root and there is no `postgres` user to run it as "
                    "(Debian's postgresql package creates one)"
                ) from None
        q = shlex.quote
        self._as_server_user(
            f"{q(str(self.bindir / 'initdb'))} -D {q(str(self.data))} -A trust -U {self.user} "
            f"-E UTF8 --no-instructions >/dev/null"
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses={LOOPBACK}"
        self._as_server_user(
            f"{q(str(self.bindir / 'pg_ctl'))} -D {q(str(self.data))} -l {q(str(self.log))} "
            f"-o {q(options)} -w -t 60 start >/dev/null"
        )
        self.started = True
        createdb = self.bindir / "createdb"
        self.commands.append(f"{createdb} -h {LOOPBACK} -p {self.port} -U {self.user} {self.database}")
        done = subprocess.run(
            [str(createdb), "-h", LOOPBACK, "-p", str(self.port), "-U", self.user, self.database],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise ClusterError(f"PostgreSQL: createdb failed: {done.stderr.strip()}")
        return self

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def stop(self) -> None:
        if self.started:
            pid = self.postmaster_pid()
            with contextlib.suppress(ClusterError):
                self._as_server_user(
                    f"{shlex.quote(str(self.bindir / 'pg_ctl'))} -D {shlex.quote(str(self.data))} "
                    f"-m fast -w -t 30 stop >/dev/null"
                )
            if pid and Path(f"/proc/{pid}").exists():  # pg_ctl failed: stop our postmaster by its pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.started = False
        if self.log_dir is not None and self.log.exists():
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log, self.log_dir / "postgres.log")
        shutil.rmtree(self.root, ignore_errors=True)

    def connect(self):
        """A psycopg connection to the mlflow database (for checks that read stored rows)."""
        import psycopg

        return psycopg.connect(host=LOOPBACK, port=self.port, user=self.user, dbname=self.database, autocommit=True)


# ---- MLflow tracking server -----------------------------------------------------------------
class MlflowServer:
    """`mlflow server` on the PostgreSQL store with proxied artifacts (`--serve-artifacts
    --artifacts-destination DIR`): clients upload and download artifacts through the server, so
    workers need no shared filesystem. It runs optlab's server app (`--app-name optlab`, which needs
    optlab installed next to MLflow): MLflow's server plus the bulk route for metric points that a
    sweep's workers use instead of `runs/log-batch`; `app_name=None` runs plain `mlflow server`."""

    def __init__(
        self,
        backend_store_uri: str,
        artifacts: Path,
        log_dir: Path,
        port: int | None = None,
        workers: int = 2,
        app_name: str | None = "optlab",
    ):
        self.port = port or free_port(MLFLOW_PORTS)
        self.artifacts = artifacts
        argv = [
            tool("mlflow"),
            "server",
            "--backend-store-uri",
            backend_store_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts),
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            *(["--app-name", app_name] if app_name else []),
        ]
        env = {k: v for k, v in SERVER_ENV.items() if k not in os.environ}
        self.service = Service("mlflow", argv, log_dir / "mlflow-server.log", env)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
            return response.status == 200

    def start(self, timeout: float = 180) -> MlflowServer:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        if not port_free(self.port):
            wait_for(lambda: port_free(self.port), 30, f"MLflow server port {self.port} to be released")
        self.service.start()
        # the first start creates MLflow's schema in PostgreSQL (alembic migrations): tens of seconds
        wait_for(self.healthy, timeout, f"MLflow server on {self.url}", self.service, interval=0.5)
        return self

    def stop(self) -> None:
        self.service.stop()


# ---- Ray ------------------------------------------------------------------------------------
class RayNode:
    """One Ray node: `ray start --block` in its own process group, every port explicit and on
    loopback, no dashboard, one CPU by default. `kill()` takes the node down at once (raylet, agents
    and its worker processes)."""

    def __init__(
        self,
        name: str,
        log_dir: Path,
        env: dict[str, str],
        head_address: str | None = None,
        num_cpus: int = 1,
        port: int | None = None,
    ):
        self.name = name
        self.head = head_address is None
        self.port = (port or free_port(RAY_HEAD_PORTS)) if self.head else None
        self.node_manager_port = free_port(RAY_INTERNAL_PORTS)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="optlab-ray-"))  # short: Ray puts unix sockets here
        workers = free_block(RAY_INTERNAL_PORTS, WORKER_PORTS_PER_NODE)
        argv = [
            tool("ray"),
            "start",
            "--block",
            "--node-ip-address",
            LOOPBACK,
            "--num-cpus",
            str(num_cpus),
            "--object-store-memory",
            str(100 * 1024 * 1024),
            "--disable-usage-stats",
            "--temp-dir",
            str(self.temp_dir),
            "--node-manager-port",
            str(self.node_manager_port),
            "--object-manager-port",
            str(free_port(RAY_INTERNAL_PORTS)),
            "--min-worker-port",
            str(workers.start),
            "--max-worker-port",
            str(workers.stop - 1),
            "--dashboard-agent-listen-port",
            str(free_port(RAY_INTERNAL_PORTS)),
            "--dashboard-agent-grpc-port",
            str(free_port(RAY_INTERNAL_PORTS)),
            "--runtime-env-agent-port",
            str(free_port(RAY_INTERNAL_PORTS)),
            "--metrics-export-port",
            str(free_port(RAY_INTERNAL_PORTS)),
        ]
        if self.head:
            argv[2:2] = [
                "--head",
                "--port",
                str(self.port),
                "--include-dashboard",
                "false",
                "--ray-client-server-port",
                str(free_port(RAY_INTERNAL_PORTS)),
            ]
        else:
            argv[2:2] = ["--address", head_address]
        self.service = Service(f"ray-{name}", argv, log_dir / f"ray-{name}.log", env=dict(env))

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 120) -> RayNode:
        self.service.start()
        wait_for(lambda: listening(self.node_manager_port), timeout, f"Ray node {self.name}", self.service)
        return self

    def alive(self) -> bool:
        return self.service.proc is not None and not self.service.exited()

    def kill(self) -> None:
        self.service.kill()

    def stop(self) -> None:
        self.service.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


NODE_IDS_SCRIPT = """
import json, sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False, configure_logging=False)
# a SIGKILLed node stays "Alive" on the head until its health checks fail: wait for the ports asked for,
# never for a count of nodes
want, deadline = set(json.loads(sys.argv[2])), time.time() + float(sys.argv[3])
while True:
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if want <= {str(n["NodeManagerPort"]) for n in nodes} or time.time() > deadline:
        break
    time.sleep(0.5)
print("NODES " + json.dumps({str(n["NodeManagerPort"]): n["NodeID"] for n in nodes}))
"""


# ---- the whole cluster ----------------------------------------------------------------------
class LocalCluster:
    """PostgreSQL + MLflow server + a Ray head and `workers` Ray worker nodes, on loopback.

    Use as a context manager, or call start() / stop() (stop() is safe after a partial start)."""

    def __init__(self, root: Path | None = None, ray_workers: int = 1, cpus_per_node: int = 1, server_workers: int = 2):
        self.owns_root = root is None  # a temp dir of ours is removed by stop()
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="optlab-cluster-"))
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ray_workers = ray_workers
        self.cpus_per_node = cpus_per_node
        self.server_workers = server_workers
        self.ray_env = ray_env(secrets.token_hex(32))
        self.postgres: Postgres | None = None
        self.server: MlflowServer | None = None
        self.head: RayNode | None = None
        self.workers: list[RayNode] = []

    # -- lifecycle
    def start(self, progress=print) -> LocalCluster:
        try:
            progress("starting PostgreSQL ...")
            self.postgres = Postgres(log_dir=self.logs)
            self.postgres.start()
            progress(f"  {self.postgres.uri}")
            progress("starting the MLflow server (creates its schema on first start) ...")
            self.server = MlflowServer(
                self.postgres.uri, self.root / "artifacts", self.logs, workers=self.server_workers
            )
            self.server.start()
            progress(f"  {self.server.url}")
            progress("starting the Ray head node ...")
            self.head = RayNode("head", self.logs, self.ray_env, num_cpus=self.cpus_per_node)
            self.head.start()
            for i in range(self.ray_workers):
                progress(f"starting Ray worker node {i + 1} ...")
                self.add_worker()
            self.node_ids(wait_for_all=True)
            progress(f"  Ray cluster at {self.ray_address}: {1 + len(self.workers)} nodes")
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self) -> RayNode:
        node = RayNode(
            f"worker{len(self.workers) + 1}",
            self.logs,
            self.ray_env,
            head_address=self.head.address,
            num_cpus=self.cpus_per_node,
        )
        self.workers.append(node)
        return node.start()

    def restart_worker(self, node: RayNode) -> RayNode:
        """A fresh node in place of a killed or stopped one (new ports, new node id)."""
        node.stop()
        self.workers.remove(node)
        new = self.add_worker()
        self.node_ids(wait_for_all=True)
        return new

    def replace_dead_workers(self, progress=print) -> None:
        """A fresh node for each dead worker; if one does not register with the head in time (seen on a
        loaded machine), every Ray node is restarted instead, so the cluster is never left half."""
        try:
            for node in list(self.workers):
                if not node.alive():
                    self.restart_worker(node)
        except ClusterError as error:
            progress(f"Ray worker did not rejoin; restarting every Ray node: {str(error).splitlines()[0]}")
            self.restart_ray()

    def restart_ray(self) -> None:
        """Every Ray node stopped and started afresh (new head port): for a node that will not rejoin."""
        stop_all([n.service for n in [*self.workers, self.head] if n is not None])
        for node in [*self.workers, self.head]:
            if node is not None:
                node.stop()
        count, self.workers = len(self.workers), []
        self.head = RayNode("head", self.logs, self.ray_env, num_cpus=self.cpus_per_node).start()
        for _ in range(count):
            self.add_worker()
        self.node_ids(wait_for_all=True)

    def stop(self) -> None:
        nodes = [n for n in [*self.workers, self.head] if n is not None]
        stop_all([n.service for n in nodes] + ([self.server.service] if self.server else []))
        for node in nodes:
            node.stop()  # its temp dir
        self.workers, self.head = [], None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what clients need
    @property
    def ray_address(self) -> str:
        return self.head.address

    @property
    def tracking_uri(self) -> str:
        return self.server.url

    def env(self, tracking_uri: str | None = None) -> dict[str, str]:
        """The environment of a driver (`optlab sweep --backend ray --address ...`) on this cluster."""
        return {**os.environ, **self.ray_env, "MLFLOW_TRACKING_URI": tracking_uri or self.tracking_uri}

    def node_ids(self, wait_for_all: bool = False, timeout: float = 60) -> dict[str, str]:
        """Ray node id of each alive node, by node name ('head', 'worker1', ...)."""
        import json

        nodes = {n.name: n for n in [self.head, *self.workers]}
        want = [str(n.node_manager_port) for n in (nodes.values() if wait_for_all else [self.head])]
        done = subprocess.run(
            [sys.executable, "-c", NODE_IDS_SCRIPT, self.ray_address, json.dumps(want), str(timeout)],
            capture_output=True,
            text=True,
            env={**os.environ, **self.ray_env},
            timeout=timeout + 60,
        )
        if done.returncode != 0:
            raise ClusterError(f"could not list the Ray nodes: {done.stderr.strip()[-2000:]}")
        lines = [line for line in done.stdout.splitlines() if line.startswith("NODES ")]
        if not lines:
            raise ClusterError(f"could not list the Ray nodes: {(done.stdout + done.stderr).strip()[-2000:]}")
        by_port = json.loads(lines[-1].removeprefix("NODES "))
        found = {
            name: by_port[str(n.node_manager_port)] for name, n in nodes.items() if str(n.node_manager_port) in by_port
        }
        if wait_for_all and len(found) < len(nodes):
            missing = sorted(set(nodes) - set(found))
            raise ClusterError(
                f"Ray nodes {missing} did not join the cluster at {self.ray_address}\n"
                + "\n".join(nodes[m].service.log_tail() for m in missing)
            )
        return found

    def recipe(self) -> list[str]:
        """The commands this cluster was started with, in order (what a user runs on real machines)."""
        lines = list(self.postgres.commands) if self.postgres else []
        if self.server:
            lines.append(self.server.service.command())
        lines += [n.service.command() for n in [self.head, *self.workers] if n is not None]
        return lines
