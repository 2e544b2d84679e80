"""`optlab sweep FILE`: run a declarative experiment file (see experiments/ and optlab/sweeps/spec.py)."""

from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser("sweep", help="run an experiment file's grid of points, resumable and parallel")
    p.add_argument("file", help="TOML experiment file, e.g. experiments/smoke.toml")
    p.add_argument("--workers", "-j", type=int, default=1, help="points run in parallel (default 1)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local process pool (default) or Ray tasks")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--no-batch", action="store_true",
                   help="train points one by one even where the engine could batch compatible ones")
    p.add_argument("--dry-run", action="store_true", help="validate and list the points, run nothing")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def main(args) -> int:
    from optlab.sweeps import load, run_sweep

    spec = load(args.file)  # the whole file is validated before anything is recorded
    if args.dry_run:
        for point in spec.points:
            kind = (f"series {point.series}" if point.series else f"{point.role} [{point.group}]" if point.group
                    else point.role)
            print(f"{point.point_hash}  {kind:<28} {point.axes}")
        tuned = sum(g.tuned for g in spec.groups.values())
        reruns = (f" + {tuned * len(spec.rerun_seeds)} reruns of the {tuned} selected configurations on seeds "
                  f"{', '.join(map(str, spec.rerun_seeds))} (after tuning on seeds "
                  f"{', '.join(map(str, spec.tune_seeds))})" if tuned else "")
        print(f"{spec.name}: {len(spec.points)} points{reruns}; {spec.grid_size} grid points on "
              f"{len(spec.workloads)} workload(s): {', '.join(spec.workloads)}")
        return 0
    report = run_sweep(spec, workers=args.workers, backend=args.backend, address=args.address,
                       batched=not args.no_batch, progress=not args.quiet)
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in report.phase_seconds.items())
    print(f"sweep {report.name}: {report.seconds:.1f}s" + (f" ({phases})" if phases else "")
          + f", parent run {report.parent_run_id}" + (" (resumed)" if report.resumed else "")
          + f"; load average {report.load[0]} at start, {report.load[1]} at end")
    print(report.table)
    for group, message in report.edge_flags:
        print(f"optlab: warning: {group}: selected {message}: the optimum may lie outside the grid",
              file=sys.stderr)
    for label, reason in report.failures:
        print(f"failed: {label}: {reason}", file=sys.stderr)
    # a FAILED point (e.g. a learning rate that diverged) is a recorded outcome, not a broken sweep;
    # a point with no outcome at all is
    return 1 if report.counts["missing"] else 0
