"""`optlab bench [--quick]`: the speed ratios (a)-(e) of optlab vs a textbook PyTorch loop, as a table."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("bench", help="measure optlab's speed against a textbook PyTorch loop (ratios a-e)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds): checks the benchmark still runs")
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's; 1 is steadier on a busy machine)")
    p.add_argument("--only", help="a subset of the measurements, e.g. 'ab'")
    return p


def main(args) -> int:
    import torch

    from optlab.bench import run_bench, table
    from optlab.errors import ConfigError

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {args.device!r} requested but CUDA is not available")
    if args.only and set(args.only) - set("abcde"):
        raise ConfigError(f"--only takes letters from 'abcde', got {args.only!r}")
    if args.threads is not None:
        if not 1 <= args.threads <= 4096:
            raise ConfigError(f"--threads must be an integer in [1, 4096], got {args.threads}")
        torch.set_num_threads(args.threads)
    results = run_bench(quick=args.quick, device=args.device, only=args.only)
    print(table(results, args.quick, args.device))
    return 0
