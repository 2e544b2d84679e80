"""`make sweep-estimate`: how long `make sweep` would take on idle cores, from the sweep files and small
measurements, without running the sweep.

For every sweep file: its points are counted by phase as the executor runs them — tuning trials (or the
points of an untuned sweep) batched, reruns of each tuning group on every rerun seed (the first
`timed_alone` alone, the rest batched) — and grouped into the programs the engine would train together
(sweeps.scheduling.chunk_points, then engine.runner.group_key). Each distinct kind of run (strategy,
problem, batch size, budget) is measured once: its CPU time with one thread at two small fractions of its
budget (extrapolated linearly to the whole budget), and, when the engine can stack it, a stack of K copies
(how much of a run's cost a stack shares). A fixed recording cost per run is measured on tiny runs written
to a scratch store. CPU seconds / workers is the estimate for idle cores: the measurement uses CPU time, so
it holds on a loaded machine too, but the packing of runs onto workers is assumed perfect.

Runs that stop at their target are counted at their whole budget: for those workloads the estimate is an
upper bound (marked "≤").

    python scripts/sweep_estimate.py [FILES ...] [--workers 2] [--fraction 0.03] [--limit 900]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ["convergence", "batch_size", "memorization", "second_order", "zeroth_order"]
STACK = 8  # rows of the measured stack


def scaled(config, fraction: float):
    """The config with its budget cut to `fraction` (at least one step or evaluation)."""
    updates = {}
    for key in ("epochs", "steps", "evaluations"):
        value = getattr(config, key)
        if value:
            updates[key] = max(1, int(math.ceil(value * fraction))) if key != "epochs" else value * fraction
    return config.with_updates(stop_at_target=False, **updates)


def cpu_seconds(configs) -> float:
    from optlab.engine import run_many

    started = time.process_time()
    run_many(configs, batched=True)
    return time.process_time() - started


class Costs:
    """Measured cost of a kind of run, alone and stacked, extrapolated to its whole budget."""

    def __init__(self, fraction: float, progress: bool):
        self.fraction, self.progress = fraction, progress
        self.cache: dict[tuple, dict] = {}

    def kind(self, config) -> tuple:
        c = config
        return (
            c.strategy,
            c.dataset,
            c.hidden,
            c.activation,
            c.cost,
            c.variant,
            c.label_noise,
            c.batch_size,
            c.epochs,
            c.steps,
            c.evaluations,
            c.seconds,
            json_of(c.options),
            c.probe_curvature,
            c.diagnostics,
            c.eval_every,
            c.log_every,
        )

    def of(self, config, stackable: bool) -> tuple[float, float]:
        """(seconds of one run alone, the fraction of a run a stack shares among its rows)."""
        key = self.kind(config)
        if config.seconds:  # a time budget: its cost is the budget
            return float(config.seconds), 0.0
        if key not in self.cache:
            from optlab.errors import ConfigError

            f = self.fraction
            while True:  # a strategy may refuse a budget below one of its steps (newton_cg): measure more
                small, double = scaled(config, f), scaled(config, 2 * f)
                try:
                    one = cpu_seconds([small])
                    two = cpu_seconds([double])
                    break
                except ConfigError:
                    if f >= 0.5:
                        raise
                    f = min(0.5, 2 * f)
            slope = max(two - one, 0.0) / f
            self.cache[key] = {"alone": one + slope * (1 - f), "one": one, "small": small, "shared": None}
            self.report(config, f"{self.cache[key]['alone']:.2f} s alone")
        entry = self.cache[key]
        # the same kind may first be seen alone (timed reruns) and then stacked (the other reruns): the share
        # a stack saves is measured the first time a stack of this kind is asked for
        if stackable and entry["shared"] is None:
            stack = cpu_seconds([entry["small"].with_updates(seed=1000 + i) for i in range(STACK)])
            entry["shared"] = min(max((STACK - stack / max(entry["one"], 1e-9)) / (STACK - 1), 0.0), 0.95)
            self.report(config, f"stack shares {entry['shared']:.0%}")
        return entry["alone"], (entry["shared"] or 0.0) if stackable else 0.0

    def report(self, config, what: str) -> None:
        if self.progress:
            print(
                f"  measured {config.strategy} on {config.dataset} {list(config.hidden)} B={config.batch_size}: {what}",
                file=sys.stderr,
                flush=True,
            )


def json_of(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def programs(points, workers: int, batched: bool):
    """The lists of configs the engine trains as one program, as the executor would send them."""
    from optlab.engine.planning import prepare
    from optlab.engine.runner import group_key
    from optlab.problem import build_problem
    from optlab.sweeps.scheduling import chunk_points

    problems = {}
    out = []
    for chunk in chunk_points(points, workers, batched):
        groups = defaultdict(list)
        for point in chunk:
            c = point.config
            key = (
                c.dataset,
                c.label_noise,
                c.variant,
                c.standardize,
                c.noise_seed,
                c.train_size,
                c.hidden,
                c.activation,
                c.init,
                c.cost,
                c.dtype,
                c.device,
            )
            if key not in problems:
                problems[key] = build_problem(c)
            prep = prepare(c, problems[key])
            gkey = group_key(prep) if batched else None
            groups[gkey if gkey is not None else ("alone", id(point))].append((c, gkey is not None))
        out += list(groups.values())
    return out


def rerun_points(spec):
    """The reported runs a tuned sweep will add: every group's first trial stands for its selection."""
    return spec.reruns({name: next(iter(group.trials)) for name, group in spec.groups.items()})


def estimate(path: Path, workers: int, costs: Costs, overhead: float) -> dict:
    from optlab.sweeps import load

    spec = load(path, check_plans=False)
    first = [p for p in spec.points if p.role != "rerun"]
    reported = [p for p in spec.points if p.role == "rerun"] + (rerun_points(spec) if spec.objective else [])
    phases = {
        "tuning" if spec.objective else "points": (first, True),
        "reruns alone": ([p for p in reported if p.alone], False),
        "reruns batched": ([p for p in reported if not p.alone], True),
    }
    out = {"file": path.name, "runs": 0, "bound": False}
    for phase, (points, batched) in phases.items():
        seconds = 0.0
        for program in programs(points, workers, batched):
            config, stackable = program[0]
            alone, shared = costs.of(config, stackable and len(program) > 1)
            k = len(program)
            seconds += alone * (shared + (1 - shared) * k) + overhead * k
            out["bound"] |= bool(config.stop_at_target)
        out[phase] = seconds / workers
        out["runs"] += len(points)
    out["total"] = sum(out[p] for p in phases)
    return out


def recording_overhead() -> float:
    """CPU seconds one run's recording costs (MLflow run, params, metrics, artifacts), from tiny runs."""
    import os

    from optlab.engine import run_many
    from optlab.tracking import RunRecorder
    from optlab.tracking.store import client, ensure_experiment

    configs = [
        {
            "strategy": "adam",
            "dataset": "digits",
            "hidden": [8],
            "steps": 5,
            "eval_every": 5,
            "seed": s,
            "experiment": "estimate",
        }
        for s in range(4)
    ]
    with tempfile.TemporaryDirectory() as home:
        old = os.environ.get("OPTLAB_HOME")
        os.environ["OPTLAB_HOME"] = home
        try:
            uri = f"sqlite:///{home}/mlflow.db"
            experiment_id = ensure_experiment(client(uri), "estimate")
            run_many(configs[:1], make_recorder=lambda c: RunRecorder(experiment_id=experiment_id, tracking_uri=uri))
            bare = cpu_seconds(configs)
            started = time.process_time()
            run_many(
                configs,
                make_recorder=lambda c: RunRecorder(experiment_id=experiment_id, tracking_uri=uri),
                batched=True,
            )
            recorded = time.process_time() - started
        finally:
            if old is None:
                os.environ.pop("OPTLAB_HOME", None)
            else:
                os.environ["OPTLAB_HOME"] = old
    return max(recorded - bare, 0.0) / len(configs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="sweep files (default: the `make sweep` suite)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.03, help="budget fraction of a measured run")
    parser.add_argument("--limit", type=float, default=900.0, help="seconds the whole suite should stay within")
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 0.25:
        parser.error(f"--fraction must be in (0, 0.25], got {args.fraction}")
    import torch

    torch.set_num_threads(1)  # as a sweep's workers train
    files = [Path(f) for f in args.files] or [ROOT / "experiments" / f"{name}.toml" for name in SUITE]
    overhead = recording_overhead()
    costs = Costs(args.fraction, not args.quiet)
    rows = []
    for path in files:
        if not args.quiet:
            print(f"sweep-estimate: {path.name} ...", file=sys.stderr, flush=True)
        rows.append(estimate(path, args.workers, costs, overhead))
    total = sum(r["total"] for r in rows)
    bound = any(r["bound"] for r in rows)
    le = lambda r: "≤ " if r["bound"] else ""
    print(
        f"Estimated `make sweep` wall time on {args.workers} idle cores (CPU time measured with one thread; "
        f"recording {overhead:.3f} s a run; stop-at-target runs at their whole budget: ≤ marks an upper bound):"
    )
    print("| sweep | runs | tuning/points s | reruns alone s | reruns batched s | total s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        tuning = r.get("tuning", r.get("points", 0.0))
        print(
            f"| {r['file']} | {r['runs']} | {tuning:.0f} | {r['reruns alone']:.0f} | {r['reruns batched']:.0f} | "
            f"{le(r)}{r['total']:.0f} |"
        )
    verdict = "within" if total <= args.limit else "ABOVE"
    print(
        f"\nTotal: {'≤ ' if bound else ''}{total:.0f} s ({total / 60:.1f} min), {verdict} the {args.limit:.0f} s limit."
    )
    return 0 if total <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
