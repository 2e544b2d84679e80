"""`make thread-check`: do the verdicts survive a change of the BLAS / intra-op thread count?

Reads the reported reruns of one experiment from the store (default: convergence, after `make sweep`),
retrains every one of them from its recorded configuration with torch using 1 and then 2 intra-op threads
(`torch.set_num_threads`, which is what OMP_NUM_THREADS sets at start; a sweep's workers use 1), computes
the verdicts of each retraining exactly as the report does (optlab.reports.verdict_tables: final test
accuracy, time to the validation target), and counts how many comparisons end in the same verdict. The
result goes between the thread-check markers of docs/sweeps/statistics.md (or --docs FILE), with the
machine and date. Nothing is recorded in the store.

    python scripts/thread_check.py [--experiment convergence] [--seeds N] [--threads 1,2] [--docs FILE]

`--seeds N` keeps the first N rerun seeds of each configuration (a reduced check); numbers differing in the
last bits change a run's path a little, so rankings within a tier may differ — verdicts should not.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "thread-check"  # the block of the --docs page this script writes (optlab.markdown_block)


def reported_runs(store, experiment: str, seeds: int | None):
    from optlab.reports import workloads

    runs, _ = workloads.gather(store, (experiment,))
    if runs is None:
        raise SystemExit(
            f"thread-check: experiment {experiment!r} has no reported runs in {store.uri}; run its "
            f"sweep first (SWEEP=experiments/{experiment}.toml make sweep)"
        )
    runs = runs[runs["status"].isin(["FINISHED", "FAILED"])]
    if seeds is not None:
        kept = sorted({int(s) for s in runs["seed"].dropna()})[:seeds]
        runs = runs[runs["seed"].isin(kept)]
    return runs.reset_index(drop=True)


def retrain(runs, configs, threads: int):
    """The runs' final values and hits when trained with `threads` intra-op threads (frames shaped like the
    report's: final_* columns for accuracy verdicts, hit_/stop_ columns for time to target)."""
    import numpy as np
    import torch

    from optlab.engine import run_many

    torch.set_num_threads(threads)
    results = run_many(configs, batched=True)
    frame = runs.copy()
    for key in ("test_accuracy", "val_accuracy"):
        frame[f"final_{key}"] = [r.final.get(key, np.nan) if r.status == "FINISHED" else np.nan for r in results]
    frame["status"] = [r.status for r in results]
    frame["failed"] = [r.status == "FAILED" for r in results]
    hits, stops = [], []
    for run, result in zip(frame.itertuples(), results):
        history = [h for h in result.history if "val_accuracy" in h]
        reached = [h for h in history if np.isfinite(run.target) and h["val_accuracy"] >= run.target]
        hits.append(reached[0].get("gradient_equivalents", np.nan) if reached else np.nan)
        stops.append(history[-1].get("gradient_equivalents", np.nan) if history else np.nan)
    frame["hit_gradient_equivalents"], frame["stop_gradient_equivalents"] = hits, stops
    return frame


def verdicts_of(frame):
    """(workload, metric, a, b) -> verdict, and workload/metric -> the best on validation."""
    from optlab.reports import verdict_tables, workloads

    out, best = {}, {}
    for workload in workloads.ordered(frame):
        mine = frame[frame["workload"] == workload]
        results = [verdict_tables.time_verdicts(mine)]
        if "runs stop at the target" not in workloads.describe(mine):
            results.append(verdict_tables.accuracy_verdicts(mine))
        for result in [r for r in results if r is not None]:
            best[(workload, result.metric.name)] = result.best
            for row in result.rows.itertuples():
                out[(workload, result.metric.name, row.a, row.b)] = row.verdict
    return out, best


def summary(
    experiment: str,
    n_runs: int,
    threads: list[int],
    verdicts: dict,
    bests: dict,
    seconds: float,
    seeds: int | None,
    load: str = "load average unknown",
) -> str:
    from optlab.tracking import provenance

    first, second = threads
    a, b = verdicts[first], verdicts[second]
    keys = sorted(set(a) | set(b))
    same = [k for k in keys if a.get(k) == b.get(k)]
    bkeys = sorted(set(bests[first]) | set(bests[second]))
    best_same = sum(bests[first].get(k) == bests[second].get(k) for k in bkeys)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    scope = f"the first {seeds} rerun seeds of each configuration" if seeds else "every rerun seed"
    lines = [
        f"Generated {now} by `make thread-check` on {provenance.machine()}: the {n_runs} reported reruns of "
        f"`{experiment}` ({scope}) retrained with {first} and with {second} intra-op thread(s) "
        f"({seconds:.0f} s; {load} at the start).",
        "",
        f"**{len(same)} of {len(keys)} verdicts agree**; the best on validation is the same in {best_same} of "
        f"{len(bkeys)} workload/metric pairs.",
    ]
    differ = [k for k in keys if a.get(k) != b.get(k)]
    if differ:
        lines += [
            "",
            "| workload | metric | strategy | vs | " + f"{first} thread(s) | {second} thread(s) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {w} | {m} | {x} | {y} | {a.get(k, '-')} | {b.get(k, '-')} |" for k in differ for (w, m, x, y) in [k]
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="convergence")
    parser.add_argument("--tracking-uri", help="the store holding the experiment (default: the project's)")
    parser.add_argument("--seeds", type=int, help="only the first N rerun seeds of each configuration")
    parser.add_argument("--threads", default="1,2", help="the two thread counts compared (default 1,2)")
    parser.add_argument(
        "--docs",
        default=str(ROOT / "docs" / "sweeps" / "statistics.md"),
        help="the page whose thread-check block is replaced ('-': print only)",
    )
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    if len(threads) != 2 or min(threads) < 1:
        parser.error(f"--threads must be two positive counts such as 1,2, got {args.threads!r}")
    if args.seeds is not None and args.seeds < 2:
        parser.error(f"--seeds must be at least 2 (a paired test needs two seeds), got {args.seeds}")

    from optlab.bench import load as machine_load
    from optlab.errors import ConfigError
    from optlab.markdown_block import write_block
    from optlab.reports.load import Store
    from optlab.tracking.recorder import load_config

    store = Store(args.tracking_uri, progress=False)
    runs = reported_runs(store, args.experiment, args.seeds)
    configs = [load_config(run_id, store.uri) for run_id in runs["run_id"]]
    started, load_at_start = time.perf_counter(), machine_load()
    verdicts, bests = {}, {}
    for n in threads:
        print(f"thread-check: retraining {len(configs)} runs with {n} thread(s) ...", file=sys.stderr, flush=True)
        verdicts[n], bests[n] = verdicts_of(retrain(runs, configs, n))
    seconds = time.perf_counter() - started
    text = summary(args.experiment, len(runs), threads, verdicts, bests, seconds, args.seeds, load_at_start)
    print(text, end="")
    if args.docs != "-":
        try:
            print(f"thread-check: {write_block(args.docs, BLOCK, text, 'make thread-check')}", file=sys.stderr)
        except ConfigError as exc:
            print(f"thread-check: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
