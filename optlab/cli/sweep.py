"""`optlab sweep FILE`: run a declarative experiment file (see experiments/ and optlab/sweeps/spec.py)."""

from __future__ import annotations

import sys


def add_parser(sub):
    p = sub.add_parser("sweep", help="run an experiment file's grid of points, resumable and parallel")
    p.add_argument("file", help="TOML experiment file, e.g. experiments/smoke.toml")
    p.add_argument("--workers", "-j", type=int, default=1, help="points run in parallel (default 1)")
    p.add_argument(
        "--backend", choices=("local", "ray"), default="local", help="local process pool (default) or Ray tasks"
    )
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument(
        "--no-batch",
        action="store_true",
        help="train points one by one even where the engine could batch compatible ones",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and list the points, run nothing")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="when the same sweep is already running against this store, wait up to SECONDS for it "
        "to end (default: refuse at once)",
    )
    p.add_argument(
        "--max-points",
        type=int,
        default=None,
        metavar="N",
        help="refuse files that expand to more than N points (default 10000)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


def main(args) -> int:
    from optlab.errors import ConfigError
    from optlab.sweeps import load, run_sweep
    from optlab.sweeps.spec import MAX_POINTS

    if args.max_points is not None and args.max_points < 1:
        raise ConfigError(f"--max-points must be a positive integer, got {args.max_points}")
    if not 0 <= args.wait <= 7 * 86400:
        raise ConfigError(f"--wait must be between 0 and 604800 seconds, got {args.wait!r}")
    # the whole file is validated before anything is recorded
    spec = load(args.file, max_points=args.max_points or MAX_POINTS)
    if args.dry_run:
        for point in spec.points:
            kind = (
                f"series {point.series}"
                if point.series
                else f"{point.role} [{point.group}]"
                if point.group
                else point.role
            )
            print(f"{point.point_hash}  {kind:<28} {point.axes}")
        tuned = sum(g.tuned for g in spec.groups.values())
        reruns = (
            f" + {tuned * len(spec.rerun_seeds)} reruns of the {tuned} selected configurations on seeds "
            f"{', '.join(map(str, spec.rerun_seeds))} (after tuning on seeds "
            f"{', '.join(map(str, spec.tune_seeds))}"
            + (f"; the first {spec.timed_alone} trained alone, the rest batched" if spec.timed_alone else "")
            + ")"
            if tuned
            else ""
        )
        print(
            f"{spec.name}: {len(spec.points)} points{reruns}; {spec.grid_size} grid points on "
            f"{len(spec.workloads)} workload(s): {', '.join(spec.workloads)}"
        )
        return 0
    report = run_sweep(
        spec,
        workers=args.workers,
        backend=args.backend,
        address=args.address,
        batched=not args.no_batch,
        progress=not args.quiet,
        wait=args.wait,
    )
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in report.phase_seconds.items())
    print(
        f"sweep {report.name}: {report.seconds:.1f}s"
        + (f" ({phases})" if phases else "")
        + f", parent run {report.parent_run_id}"
        + (" (resumed)" if report.resumed else "")
        + f"; load average {report.load[0]} at start, {report.load[1]} at end"
    )
    print(report.table)
    if report.efficiency is not None:
        print(f"sweep {report.name}: {report.efficiency.text()}")
    for group, message in report.edge_flags:
        print(f"optlab: warning: {group}: selected {message}: the optimum may lie outside the grid", file=sys.stderr)
    for label, reason in report.failures:
        print(f"failed: {label}: {reason}", file=sys.stderr)
    # a FAILED point (e.g. a learning rate that diverged) is a recorded outcome, not a broken sweep;
    # a point with no outcome (not run, worker died, storage failed, interrupted) is
    if report.incomplete:
        print(
            f"optlab: sweep {report.name}: {len(report.incomplete)} of {report.counts['points']} points have no "
            f"outcome ({summarize_reasons(report.incomplete)}); rerun to run them",
            file=sys.stderr,
        )
        return 1
    return 0


def summarize_reasons(incomplete: list[tuple[str, ...]]) -> str:
    """'2 worker died, 1 storage' from the reasons of points without an outcome."""
    from collections import Counter

    def kind(why: str) -> str:
        if "worker" in why and ("died" in why or "interrupted" in why):
            return "worker died"
        if "storage" in why:
            return "storage failed"
        if why.startswith("KILLED") or "interrupted" in why:
            return "interrupted"
        if why == "not run":
            return "not run"
        return "failed"

    return ", ".join(f"{n} {k}" for k, n in Counter(kind(why) for _, why in incomplete).most_common())
