"""`optlab bench`: optlab's speed against the textbook PyTorch loop, as a table (see optlab/bench.py)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("bench", help="measure optlab's speed against a textbook PyTorch loop, as users run it")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds): checks the benchmark still runs")
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda")
    p.add_argument("--threads", type=int, help="torch intra-op threads of the in-process rows (default: torch's)")
    p.add_argument(
        "--only",
        help="a subset of the measurements, letters of 'apbcdesgw' (g: the diagnostics tiers, "
        "w: a sweep's efficiency), e.g. 'ab'",
    )
    p.add_argument("--save", type=Path, metavar="DIR", help="keep this run's results and table in DIR")
    p.add_argument(
        "--into",
        type=Path,
        metavar="PAGE",
        help="do not measure: put the last three tables saved in --results into PAGE between its bench "
        "markers (docs/results/speed.md)",
    )
    p.add_argument(
        "--sweep-block",
        type=Path,
        metavar="MARKDOWN",
        help="do not measure: put row (w) of the last three tables saved in --results into MARKDOWN "
        "between its <!-- sweep-efficiency:begin --> and <!-- sweep-efficiency:end --> markers",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/results"),
        metavar="DIR",
        help="where --into reads saved tables (default benchmarks/results)",
    )
    return p


def main(args) -> int:
    from optlab.bench import BENCH_BLOCK, PARTS, SWEEP_BLOCK, run_bench, save, saved_tables, sweep_block, table
    from optlab.errors import ConfigError
    from optlab.markdown_block import write_block

    if args.sweep_block is not None:
        try:
            write_block(args.sweep_block, SWEEP_BLOCK, sweep_block(args.results), "make bench-docs")
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        print(f"{args.sweep_block}: {SWEEP_BLOCK} block rewritten from the last saved tables in {args.results}")
        return 0

    if args.into is not None:
        try:
            write_block(args.into, BENCH_BLOCK, saved_tables(args.results), "make bench-tables")
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        print(f"{args.into}: bench section rewritten from the last saved tables in {args.results}")
        return 0
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {args.device!r} requested but CUDA is not available")
    if args.only and set(args.only) - set(PARTS):
        raise ConfigError(f"--only takes letters from {PARTS!r}, got {args.only!r}")
    if args.threads is not None:
        from optlab.config import check_threads

        torch.set_num_threads(check_threads(args.threads))
    results = run_bench(quick=args.quick, device=args.device, only=args.only)
    text = table(results)
    print(text)
    if args.save is not None:
        print(f"saved {save(results, text, args.save)}")
    return 0
