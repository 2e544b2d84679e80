"""`make sweep-efficiency-docs`: the default suite's efficiency, per sweep, as its last runs recorded it.

Every sweep keeps on its parent run (tags `optlab.summary.*`) its wall time, workers, the training time its
runs recorded, where the rest of the worker slots' time went, peak memory, the machine and its load average
at start and end. This reads the latest FINISHED parent run of each sweep of the default suite in the store
and writes one row per sweep: nothing in the table is typed.

    python scripts/suite_efficiency.py [--sweeps convergence,batch_size,...] [--markdown docs/results/speed.md]

--markdown writes the table between the file's `<!-- suite-efficiency:begin -->` and
`<!-- suite-efficiency:end -->` markers.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

BLOCK = "suite-efficiency"
SUITE = ("convergence", "batch_size", "memorization", "second_order", "zeroth_order")  # `make sweep`, in order
PREFIX = "optlab.summary."


def latest_parents(client, sweeps: tuple[str, ...]) -> dict[str, object]:
    """Sweep name -> its latest FINISHED parent run (in the experiment of the same name)."""
    found = {}
    for sweep in sweeps:
        experiment = client.get_experiment_by_name(sweep)
        if experiment is None:
            continue
        runs = client.search_runs(
            [experiment.experiment_id],
            f"tags.`optlab.role` = 'parent' and tags.`optlab.sweep` = '{sweep}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs and f"{PREFIX}efficiency" in runs[0].data.tags:
            found[sweep] = runs[0]
    return found


def row(sweep: str, run) -> dict:
    from optlab.sweeps.efficiency import EVALUATION, NO_TIMER, slot_key

    no_timer = [slot_key(part) for part in NO_TIMER]
    not_bookkeeping = (slot_key(EVALUATION), *no_timer)  # the runs' measurements, and time in no timer
    tags = {k[len(PREFIX) :]: v for k, v in run.data.tags.items() if k.startswith(PREFIX)}
    capacity = float(tags["capacity_seconds"])
    parts = {k[len("slot_seconds.") :]: float(v) / capacity for k, v in tags.items() if k.startswith("slot_seconds.")}
    bookkeeping = sorted(((k, v) for k, v in parts.items() if k not in not_bookkeeping), key=lambda kv: -kv[1])
    return {
        "sweep": sweep,
        "date": datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": int(tags["points"]),  # every run the sweep file asks for, tuning trials and reruns
        "seconds": float(tags["seconds"]),
        "workers": int(tags["workers"]),
        "efficiency": float(tags["efficiency"]),
        "with_evaluation": float(tags["efficiency_with_evaluation"]),
        "evaluation": parts.get(slot_key(EVALUATION), 0.0),
        "idle": sum(parts.get(k, 0.0) for k in no_timer),
        "largest": bookkeeping[:3],
        "memory": (tags.get("peak_rss_mb.sweep", "-"), tags.get("peak_rss_mb.worker", "-")),
        "machine": tags.get("machine", "?"),
        "load": (tags.get("load_start", "?"), tags.get("load_end", "?")),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| sweep | runs | wall s | efficiency | with evaluations | evaluation | largest bookkeeping parts | "
        "idle or untimed | peak MB (sweep / worker) | started | load start -> end |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        largest = ", ".join(f"{k.replace('_', ' ')} {100 * v:.1f} %" for k, v in r["largest"])
        lines.append(
            f"| {r['sweep']} | {r['runs']:,} | {r['seconds']:.1f} | {100 * r['efficiency']:.0f} % | "
            f"{100 * r['with_evaluation']:.0f} % | {100 * r['evaluation']:.1f} % | {largest} | "
            f"{100 * r['idle']:.1f} % | {r['memory'][0]} / {r['memory'][1]} | {r['date']} | "
            f"{r['load'][0]} -> {r['load'][1]} |"
        )
    total = sum(r["seconds"] for r in rows)
    machines = "; ".join(sorted({r["machine"] for r in rows}))
    workers = ", ".join(sorted({str(r["workers"]) for r in rows}))
    lines += [
        "",
        f"{len(rows)} sweep{'s' if len(rows) != 1 else ''}, {total:.0f} s in all, {workers} workers, on {machines}. "
        "Efficiency: the training time the runs recorded over wall time x workers; with evaluations: plus the "
        "runs' evaluation points and end-of-run probes (measurement, untimed in a run's wall time); the other "
        "parts are shares of the worker slots' time.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", default=",".join(SUITE), help="comma-separated sweep names, in table order")
    parser.add_argument("--markdown", type=Path, metavar="PAGE", help="write the table between PAGE's markers")
    args = parser.parse_args(argv)
    from optlab.markdown_block import write_block
    from optlab.tracking.store import client

    sweeps = tuple(s.strip() for s in args.sweeps.split(",") if s.strip())
    parents = latest_parents(client(), sweeps)
    missing = [s for s in sweeps if s not in parents]
    if missing:
        print(f"suite_efficiency: no finished run of sweep(s) {', '.join(missing)} in the store", file=sys.stderr)
        return 1
    text = table([row(s, parents[s]) for s in sweeps])
    print(text)
    if args.markdown:
        write_block(args.markdown, BLOCK, text, "make sweep-efficiency-docs")
        print(f"wrote the table into {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
