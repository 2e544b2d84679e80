"""`optlab ui`: MLflow's UI over the project's store, opening on the runs (model training); prints the
link of each of optlab's saved views (per experiment: its reported runs, then per workload its runs
grouped by strategy and its configurations)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("ui", help="open MLflow's UI over the store (runs view, one link per experiment)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlruns)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    return p


def optlab_experiments(client) -> list:
    """Experiments holding optlab runs (a shared store may hold others: those are left alone)."""
    found = []
    for experiment in client.search_experiments():
        if client.search_runs([experiment.experiment_id], "tags.`optlab.config_hash` != ''", max_results=1):
            found.append(experiment)
    return found


def server_command(uri: str, host: str, port: int, workers: int) -> list[str]:
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    sys.stdout.flush()
    return [
        *command,
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--app-name",
        "optlab",
    ]


def main(args) -> int:
    from optlab.errors import ConfigError
    from optlab.tracking.saved_views import save_views
    from optlab.tracking.store import client, tracking_uri
    from optlab.tracking.ui import DEFAULT_VIEW_ID, describe_experiment, view_url
    from optlab.tracking.ui_server import server_env
    from optlab.tracking.uri import mask_credentials

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    uri = args.tracking_uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"the store {uri!r} is an MLflow server already: open it in a browser (start that "
            f"server with `--app-name optlab` so its UI opens on runs)"
        )
    store = client(uri)
    base = f"http://{args.host}:{args.port}"
    experiments = optlab_experiments(store)
    views = {}
    for experiment in experiments:  # stores written before these views existed get them here
        describe_experiment(store, experiment.experiment_id)
        views[experiment.experiment_id] = save_views(store, experiment.experiment_id)
    print(f"MLflow UI on {base} (store {mask_credentials(uri)}); Ctrl-C stops it.", flush=True)
    for experiment in experiments:
        print(f"  {experiment.name}", flush=True)
        saved = views[experiment.experiment_id]
        width = max((len(name) for name in saved.values()), default=0)
        for view_id in sorted(saved, key=lambda v: (v != DEFAULT_VIEW_ID, v)):
            print(f"    {saved[view_id]:<{width}}  {view_url(base, experiment.experiment_id, view_id)}", flush=True)
    if not experiments:
        print("  no optlab runs yet: `make demo` or `make sweep` records some", flush=True)
    command = server_command(uri, args.host, args.port, args.workers)
    # become the server (no wrapper process left to outlive it or to miss a signal)
    os.execve(command[0], command, server_env({**os.environ, "MLFLOW_TRACKING_URI": uri}))
