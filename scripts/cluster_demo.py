"""`make cluster-demo`: the cluster recipe, run on this machine's loopback interface.

Brings up exactly what the cluster tests bring up (scripts/localcluster.py): PostgreSQL, an MLflow
server on it with proxied artifacts, and a Ray cluster of a head and a worker node as separate
processes; prints every command it ran (the same commands, with real host names, make a cluster of
separate machines), runs a sweep on the cluster with `optlab sweep --backend ray --address ...`,
prints the MLflow UI address and keeps everything up until Ctrl-C, then stops it all.

    python scripts/cluster_demo.py [--sweep experiments/smoke.toml] [--workers 2] [--no-wait]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from localcluster import LocalCluster, tool  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def sweep_command(cluster: LocalCluster, sweep: str, workers: int, extra: list[str] = ()) -> list[str]:
    return [
        tool("optlab"),
        "sweep",
        sweep,
        "--backend",
        "ray",
        "--address",
        cluster.ray_address,
        "--workers",
        str(workers),
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default=str(REPO / "experiments" / "smoke.toml"), help="experiment file to run")
    parser.add_argument("--workers", type=int, default=2, help="points in flight (default 2: one per node)")
    parser.add_argument("--ray-workers", type=int, default=1, help="Ray worker nodes besides the head (default 1)")
    parser.add_argument(
        "--dir", help="keep logs, artifacts and the sweep's working directory here (default: a new temp dir)"
    )
    parser.add_argument("--state-file", help="write the cluster's addresses here as JSON once it is up")
    parser.add_argument("--no-wait", action="store_true", help="tear down right after the sweep")
    args = parser.parse_args(argv)
    # Ctrl-C raises KeyboardInterrupt (even when started with SIGINT ignored, as a background job of a
    # script is); SIGTERM and a closed terminal take the same way out
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(130))
    cluster = LocalCluster(root=Path(args.dir) if args.dir else None, ray_workers=args.ray_workers)
    started = time.monotonic()
    try:
        cluster.start(progress=lambda line: print(f"[{time.monotonic() - started:5.1f}s] {line}", flush=True))
        print("\nThe cluster was started with these commands (one per machine on a real cluster):")
        for line in cluster.recipe():
            print(f"  $ {line}")
        env = cluster.env()
        command = sweep_command(cluster, args.sweep, args.workers)
        print(f"\nwith RAY_AUTH_TOKEN={cluster.ray_env['RAY_AUTH_TOKEN']} (made up for this cluster), the sweep:")
        print(f"  $ export RAY_AUTH_MODE=token RAY_AUTH_TOKEN MLFLOW_TRACKING_URI={cluster.tracking_uri}")
        print(f"  $ {' '.join(command)}\n", flush=True)
        if args.state_file:
            Path(args.state_file).write_text(
                json.dumps(
                    {
                        "ray_address": cluster.ray_address,
                        "tracking_uri": cluster.tracking_uri,
                        "postgres_uri": cluster.postgres.uri,
                        "root": str(cluster.root),
                        "ray_env": cluster.ray_env,
                        "nodes": cluster.node_ids(),
                        "pid": os.getpid(),
                    },
                    indent=2,
                )
            )
        work = cluster.root / "sweep"
        work.mkdir(exist_ok=True)
        code = subprocess.run(command, env=env, cwd=work).returncode
        print(f"\nsweep exited with {code}")
        print(
            f"MLflow UI: {cluster.tracking_uri}   (runs in PostgreSQL {cluster.postgres.uri}, "
            f"artifacts in {cluster.server.artifacts}, logs in {cluster.logs})"
        )
        if not args.no_wait:
            print("Ctrl-C stops the cluster.", flush=True)
            while True:
                time.sleep(3600)
        return code
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping the Ray nodes, the MLflow server and PostgreSQL ...", flush=True)
        cluster.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
