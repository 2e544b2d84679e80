"""`make bench-store-scale`: a sweep's bookkeeping per run against the size of its store.

For each size N (default 100, 1,000, 10,000) a new SQLite store gets a tuned sweep of N finished trials,
written in bulk (optlab.tracking.bulk_runs, no training); then the sweep's own bookkeeping is timed as a
sweep start and end do it: resume (reconcile), selection (the reruns to run), the end's read of every
run and its summary (selection tags included). Seconds per run should stay flat as N grows (no
quadratic step); peak memory of this process is reported too.

    python scripts/store_scale.py [--sizes 100,1000,10000] [--markdown docs/results/speed.md]

--markdown writes the table between the file's `<!-- store-scale:begin -->` and `<!-- store-scale:end -->`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

BLOCK = "store-scale"
SPEC = """name = "scale"
[base]
dataset = "digits"
hidden = [8]
steps = 20
[grid]
strategy = ["minibatch", "adam"]
[tune]
lr = [0.1, 0.5]
objective = "train_loss"
seeds = {seeds}
[rerun]
seeds = [1000000, 1000001]
"""


def measure(n_runs: int) -> dict:
    from optlab.sweeps import load, resume
    from optlab.sweeps.executor import reported_points, summarize
    from optlab.tracking import accounting
    from optlab.tracking.bulk_runs import RunRows, write_runs
    from optlab.tracking.store import client, ensure_experiment

    with tempfile.TemporaryDirectory() as home:
        os.environ["OPTLAB_HOME"] = home
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        path = Path(home) / "scale.toml"
        path.write_text(SPEC.format(seeds=list(range(max(1, n_runs // 4)))))
        spec = load(path, max_points=10**6)
        mlflow_client = client()
        experiment_id = ensure_experiment(mlflow_client, spec.name)
        started = time.perf_counter()
        rows = [
            RunRows(
                p.config.label(),
                {
                    **p.tags(spec.name),
                    "optlab.status": "FINISHED",
                    "optlab.summary.wall_time": "0.5",
                    resume.OWNER_TAG: "elsewhere:1",
                },
                {"seed": str(p.config.seed), "lr": str(p.config.lr)},
                [("train_loss", 1.0 / (1 + i % 7), 20), ("val_loss", 0.5, 20)],
            )
            for i, p in enumerate(spec.points)
        ]
        write_runs(mlflow_client, experiment_id, rows)
        built = time.perf_counter() - started
        timings = {}
        clock = time.perf_counter()
        state = resume.reconcile(mlflow_client, experiment_id, spec.name)
        timings["resume"] = time.perf_counter() - clock
        clock = time.perf_counter()
        reported_points(spec, mlflow_client, experiment_id)
        timings["selection"] = time.perf_counter() - clock
        clock = time.perf_counter()
        runs = resume.children(mlflow_client, experiment_id, spec.name)
        summarize(mlflow_client, experiment_id, spec, "parent", False, set(state.finished), runs)
        timings["end read + summary"] = time.perf_counter() - clock
        total = sum(timings.values())
        return {
            "runs": len(spec.points),
            "build_s": built,
            **timings,
            "total_s": total,
            "ms_per_run": 1000 * total / len(spec.points),
            "peak_rss_mb": accounting.peak_rss_mb(),
        }


def table(rows: list[dict]) -> str:
    lines = [
        "| runs in the store | resume s | selection s | end read + summary s | total s | ms per run | "
        "written in bulk s | peak memory MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['runs']:,} | {r['resume']:.2f} | {r['selection']:.2f} | {r['end read + summary']:.2f} | "
            f"{r['total_s']:.2f} | {r['ms_per_run']:.2f} | {r['build_s']:.2f} | {r['peak_rss_mb']:.0f} |"
        )
    growth = rows[-1]["ms_per_run"] / rows[0]["ms_per_run"] if len(rows) > 1 else 1.0
    lines += [
        "",
        f"Per-run bookkeeping at {rows[-1]['runs']:,} runs is {growth:.2f}x that at {rows[0]['runs']:,} "
        f"(flat = linear in the store's size). Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"on {os.cpu_count()} cores, load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="store sizes (runs), comma-separated")
    parser.add_argument("--markdown", type=Path, help=f"write the table between the file's {BLOCK} markers")
    args = parser.parse_args(argv)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows.append(measure(size))
        print(
            f"{rows[-1]['runs']:>7} runs: {rows[-1]['total_s']:.2f} s of bookkeeping, "
            f"{rows[-1]['ms_per_run']:.2f} ms per run",
            flush=True,
        )
    text = table(rows)
    print(text)
    if args.markdown:
        from optlab.markdown_block import write_block

        try:
            write_block(args.markdown, BLOCK, text, "make bench-store-scale")
        except ValueError as exc:
            print(f"optlab: {exc}", file=sys.stderr)
            return 2
        print(f"wrote the table into {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
