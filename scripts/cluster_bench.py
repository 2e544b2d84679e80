"""`make cluster-bench`: sweep throughput on the two-node loopback Ray cluster against `--workers 2`
on this machine alone, and the time spent in tracking calls over HTTP.

One sweep file (2 strategies x 2 learning rates x SEEDS seeds on sklearn digits) is run, each time
under a fresh experiment name so nothing is skipped, as:

  local-sqlite   optlab sweep --workers 2                 (the default store: SQLite in mlruns/)
  local-server   optlab sweep --workers 2                 MLFLOW_TRACKING_URI=http://<mlflow server>
  ray-server     optlab sweep --backend ray --address ... MLFLOW_TRACKING_URI=http://<mlflow server>
  ray-postgres   optlab sweep --backend ray --address ... MLFLOW_TRACKING_URI=postgresql://...

and reports points per minute (the sweep's own clock, from its last line), the metric points the
sweep's runs stored (read back from the store: every configuration stores the same), and, for the HTTP rows,
every request the sweep and its workers made (scripts/http_trace times them): calls, seconds, and
their share of the workers' capacity (2 worker slots x the sweep's wall time). The cluster is the
one `make cluster-demo` and the cluster tests start (scripts/localcluster.py), its MLflow server running
optlab's app, whose bulk route takes the workers' metric points. On 2 shared cores
the two "nodes" share the same two cores as the server and the database: the loopback cluster shows
the overhead of the distributed path, not a speed-up.

    python scripts/cluster_bench.py [--seeds 6[,24]] [--repeat 1] [--log-every 1,10] [--configs a,b]
                                    [--into docs/results/speed.md]

--log-every N[,M...] records the per-step series every N steps (the sweep's `log_every`) in every
configuration alike, each value in turn (default 1 and 10: every step, and the resolution of the default
suite's sweeps); the stored-points column says what each leaves.

With --into the table, the machine and its load replace the page's text between the
`cluster-bench:begin` and `cluster-bench:end` markers (so the numbers there are never typed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from localcluster import LocalCluster, tool  # noqa: E402

from optlab.errors import ConfigError  # noqa: E402
from optlab.markdown_block import has_block, markers, write_block  # noqa: E402

SPEC = """
name = "{name}"
[base]
dataset = "digits"
hidden = [16]
activation = "relu"
epochs = 20
eval_every = 20
log_every = {log_every}
[grid]
strategy = ["minibatch", "adam"]
lr = [0.003, 0.03]
seed = {seeds}
"""
SLOTS = 2  # --workers 2 locally; two one-CPU nodes on the cluster
CONFIGS = ("local-sqlite", "local-server", "ray-server", "ray-postgres")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_config(config: str, cluster: LocalCluster, work: Path, seeds: int, attempt: int, log_every: int = 1) -> dict:
    name = f"bench_{config.replace('-', '_')}_{attempt}_{int(time.time())}"
    spec = work / f"{name}.toml"
    spec.write_text(SPEC.format(name=name, seeds=list(range(seeds)), log_every=log_every))
    trace = work / f"trace-{name}"
    trace.mkdir()
    uri = {
        "local-sqlite": None,
        "local-server": cluster.tracking_uri,
        "ray-server": cluster.tracking_uri,
        "ray-postgres": cluster.postgres.uri,
    }[config]
    env = {
        **cluster.env(uri),
        "OPTLAB_HOME": str(work / "home"),
        "OPTLAB_HTTP_TRACE": str(trace),
        "PYTHONPATH": os.pathsep.join([str(HERE / "http_trace"), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    if uri is None:
        env.pop("MLFLOW_TRACKING_URI")  # the default store: SQLite under OPTLAB_HOME/mlruns
    argv = [tool("optlab"), "sweep", str(spec), "--workers", str(SLOTS), "-q"]
    if config.startswith("ray"):
        argv += ["--backend", "ray", "--address", cluster.ray_address]
    before = load()
    wall = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - wall
    if proc.returncode != 0:
        raise SystemExit(f"{config}: optlab sweep failed ({proc.returncode}):\n{stdout[-2000:]}{stderr[-2000:]}")
    seconds = float(re.search(r"^sweep \S+: ([\d.]+)s", stdout, re.M).group(1))
    points = int(re.search(r"^total\s+(\d+)", stdout, re.M).group(1))
    calls = read_trace(trace, proc.pid, cluster.tracking_uri.split("://", 1)[1])
    return {
        "config": config,
        "points": points,
        "stored": stored_points(cluster, work, name, uri is None),
        "seconds": seconds,
        "wall": wall,
        "load": f"{before} -> {load()}",
        **calls,
    }


def read_trace(trace: Path, driver_pid: int, server: str) -> dict:
    """Requests to the tracking server (host:port `server`) by process: the sweep's own and its workers'."""
    per_pid: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for path in trace.glob("*.tsv"):
        for line in path.read_text().splitlines():
            started, seconds, method, host, url, _status = line.split("\t")
            if host == server:
                per_pid[int(path.stem)].append((float(started), float(seconds), f"{method} {url}"))
    if not per_pid:
        return {"http_calls": 0, "http_seconds": 0.0, "driver_seconds": 0.0, "by_endpoint": {}}
    driver = driver_pid
    workers = [c for pid, calls in per_pid.items() if pid != driver for c in calls]
    return {
        "http_calls": len(workers),
        "http_seconds": sum(c[1] for c in workers),
        "driver_seconds": sum(c[1] for c in per_pid[driver]),
        "driver_calls": len(per_pid[driver]),
        "by_endpoint": by_endpoint(workers),
        "driver_by_endpoint": by_endpoint(per_pid[driver]),
    }


def by_endpoint(calls: list[tuple[float, float, str]]) -> dict[str, tuple[int, float]]:
    """Calls and seconds per endpoint, run ids replaced by <run>."""
    seconds: dict[str, list[float]] = defaultdict(list)
    for _, took, endpoint in calls:
        seconds[re.sub(r"/[0-9a-f]{32}(/|$)", r"/<run>\1", endpoint)].append(took)
    return {k: (len(v), sum(v)) for k, v in seconds.items()}


BLOCK = "cluster-bench"  # the block of docs/results/speed.md this script writes (optlab.markdown_block)


STORED_POINTS = (
    "SELECT count(*) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
    "JOIN experiments e ON e.experiment_id = r.experiment_id "
    "JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'optlab.point_hash' "
    "WHERE e.name = {mark} AND r.status = 'FINISHED'"
)


def stored_points(cluster: LocalCluster, work: Path, name: str, local: bool) -> int:
    """Metric points (rows of MLflow's metrics table) of the sweep's FINISHED point runs, read from the
    database itself: the local SQLite store, or the PostgreSQL behind the server."""
    if local:
        with sqlite3.connect(work / "home" / "mlruns" / "mlflow.db") as db:
            return db.execute(STORED_POINTS.format(mark="?"), (name,)).fetchone()[0]
    with cluster.postgres.connect() as db:
        return db.execute(STORED_POINTS.format(mark="%s"), (name,)).fetchone()[0]


def counts(text: str) -> list[int]:
    """Positive integers separated by commas ("1,10"), or [] when the text is anything else."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        return []
    return values if values and min(values) >= 1 else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds",
        default="6",
        metavar="N[,M...]",
        help="seeds per configuration, each value in turn (points = 4 x seeds; default 6)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="measure every configuration this many times")
    parser.add_argument(
        "--log-every",
        default="1,10",
        metavar="N[,M...]",
        help="record the per-step series every N steps, each value in turn (default 1,10)",
    )
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated configurations to measure, in this order (default {','.join(CONFIGS)})",
    )
    parser.add_argument(
        "--into",
        type=Path,
        metavar="PAGE",
        help="write the table between PAGE's cluster-bench markers (docs/results/speed.md)",
    )
    args = parser.parse_args(argv)
    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or not configs:
        parser.error(f"--configs: unknown configuration {unknown[0] if unknown else '(none)'!r}; choose from {CONFIGS}")
    log_everys, sizes = counts(args.log_every), counts(args.seeds)
    if not log_everys:
        parser.error(f"--log-every must be positive integers separated by commas, got {args.log_every!r}")
    if not sizes:
        parser.error(f"--seeds must be positive integers separated by commas, got {args.seeds!r}")
    if args.into:  # refused before the cluster starts, not after the measurements
        try:
            if not has_block(args.into, BLOCK):
                begin, end = markers(BLOCK, "make cluster-bench")
                parser.error(f"{args.into} has no {BLOCK} block: put the lines {begin} and {end} where it goes")
        except ConfigError as exc:
            parser.error(str(exc))
    work = Path(tempfile.mkdtemp(prefix="optlab-cluster-bench-"))
    load_before = load()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"machine: {os.cpu_count()} cores, load {load_before} (1/5/15 min) before starting the cluster", flush=True)
    with LocalCluster(ray_workers=1) as cluster:
        print(
            f"cluster up: MLflow {cluster.tracking_uri} on {cluster.postgres.uri}, Ray {cluster.ray_address} "
            f"(2 nodes x 1 CPU)",
            flush=True,
        )
        # one untimed sweep first: Ray workers import torch once per node, the server warms up
        run_config("ray-server", cluster, work, 1, 0)
        rows = []
        for attempt in range(1, args.repeat + 1):
            for seeds, log_every, config in ((k, n, c) for k in sizes for n in log_everys for c in configs):
                row = {**run_config(config, cluster, work, seeds, attempt, log_every), "log_every": log_every}
                rows.append(row)
                print(
                    f"  {config:<13} log_every {log_every}: {row['points']} points "
                    f"({row['stored']} metric points stored) "
                    f"in {row['seconds']:6.1f} s "
                    f"({60 * row['points'] / row['seconds']:6.1f} points/min; load {row['load']})",
                    flush=True,
                )
    table = [
        f"| configuration | log_every | points | metric points stored | sweep s | points/min | vs {configs[0]} | "
        "HTTP calls (workers) | HTTP s (workers) | share of 2 worker slots | load before -> after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, row in enumerate(rows):
        reference = rows[(i // len(configs)) * len(configs)]  # the same attempt, size and log_every
        rate = 60 * row["points"] / row["seconds"]
        ratio = reference["seconds"] / row["seconds"]
        share = row["http_seconds"] / (SLOTS * row["seconds"]) if row["http_calls"] else None
        table.append(
            f"| {row['config']} | {row['log_every']} | {row['points']} | {row['stored']} | "
            f"{row['seconds']:.1f} | {rate:.1f} | "
            f"{ratio:.2f}x | "
            f"{row['http_calls'] or '-'} | {row['http_seconds']:.1f} | "
            f"{f'{100 * share:.1f} %' if share is not None else '-'} | {row['load']} |"
        )
    print()
    print("\n".join(table))
    print()
    for row in rows:
        if row["by_endpoint"]:
            top = sorted(row["by_endpoint"].items(), key=lambda kv: -kv[1][1])[:6]
            print(
                f"{row['config']}: worker HTTP time by endpoint: "
                + "; ".join(f"{k} {n} calls {s:.2f} s" for k, (n, s) in top)
                + f" | sweep process: {row.get('driver_calls', 0)} calls {row['driver_seconds']:.2f} s: "
                + "; ".join(
                    f"{k} {n} calls {s:.2f} s"
                    for k, (n, s) in sorted(row.get("driver_by_endpoint", {}).items(), key=lambda kv: -kv[1][1])[:6]
                )
            )
    load_after = load()
    print(f"\nload after: {load_after}")
    shutil.rmtree(work, ignore_errors=True)
    if args.into:
        machine = (
            f"Measured by `make cluster-bench` on {started} ({args.seeds.replace(',', ' and ')} seeds, log_every "
            f"{' and '.join(map(str, log_everys))}): "
            f"{os.cpu_count()} cores, load average "
            f"{load_before} before and {load_after} after (1/5/15 min); the loopback cluster's nodes, server "
            "and database share those cores, and wall-time rates move with the load."
        )
        write_block(args.into, BLOCK, "\n".join(table) + "\n\n" + machine, "make cluster-bench")
        print(f"wrote the table into {args.into}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
