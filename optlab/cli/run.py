"""`optlab run`: one tracked run of one strategy.

Start-up is part of the job: before anything heavy is imported the tracking store is started in a
helper process (tracking/background.py: MLflow's import and the store overlap loading torch, the data
and training) and, unless --quiet, a status line is shown at once; the progress bar follows when
training starts. Small steps train on one intra-op thread (engine.runner.intra_op_threads).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports its heavy parts where used
    from optlab.tracking.background import BackgroundRecorder


def _sizes(name: str):
    """The parser of a list-of-integers flag: '16,16' or '16 16'; 'none' is the empty list (for hidden: no
    hidden layer, softmax or linear least-squares regression)."""

    def parse(text: str) -> list[int]:
        if text.strip().lower() == "none":
            return []
        parts = [part.strip() for part in text.split(",")] if "," in text else text.split()
        if text.strip() and "" in parts:
            raise argparse.ArgumentTypeError(f"invalid {name} sizes: {text!r} has an empty size (use e.g. 16,16)")
        try:
            sizes = [int(part) for part in parts]
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name} sizes: {text!r} (use e.g. 16,16)") from None
        if not sizes:
            raise argparse.ArgumentTypeError(
                f"invalid {name} sizes: {text!r} is empty (use e.g. 16,16, or none for an empty list)"
            )
        return sizes

    return parse


def _number(text: str) -> float:
    """A float flag: a value that overflows (1e400) is refused as typed, not as the inf it becomes."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if math.isinf(value) and "inf" not in text.lower():
        raise argparse.ArgumentTypeError(f"{text} is too large (beyond ±{sys.float_info.max:.4g})")
    return value


def _option(text: str):
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid option {text!r} (use KEY=VALUE)")
    import json

    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if isinstance(value, float) and math.isinf(value) and "inf" not in raw.lower():  # 1e400 overflowed
        raise argparse.ArgumentTypeError(
            f"invalid option {text!r}: {raw} is too large (beyond ±{sys.float_info.max:.4g})"
        )
    return key, value


# argument groups of `optlab run --help`: RunConfig's roles (the strategy's flags come first, ungrouped)
GROUPS = {
    "budget": "budget (the first used up stops the run; default 10 epochs)",
    "problem": "problem",
    "target": "run",
    "seed": "run",
    "device": "problem",
    "evaluation": "run",
    "measurement": "run",
    "identity": "run",
}


def add_config_arguments(p) -> dict:
    """One flag per RunConfig field, from its declaration: --name-with-dashes (plus its declared `flags`),
    typed by its annotation, its help from the declaration. Unset flags stay None: the config's default.
    Returns the argument groups by title."""
    import typing

    from optlab.config import RunConfig

    groups = {}
    for name, hint in typing.get_type_hints(RunConfig).items():
        meta = RunConfig.declared(name)
        title = GROUPS.get(meta["role"])
        if title is not None and title not in groups:
            groups[title] = p.add_argument_group(title)
        where = groups[title] if title is not None else p
        flags = [f"--{name.replace('_', '-')}"] if "--opt" not in meta["flags"] else []
        flags += list(meta["flags"])
        kind = _kind(hint)
        extra = {"help": meta["help"] or None, "dest": name}
        if kind is bool:
            where.add_argument(*flags, action="store_true", default=None, **extra)
        elif kind is dict:
            where.add_argument(*flags, type=_option, action="append", default=[], metavar="KEY=VALUE", **extra)
        elif kind is tuple:
            where.add_argument(*flags, type=_sizes(name), **extra)
        else:
            where.add_argument(*flags, type=_number if kind is float else kind, **extra)
    return groups


def _kind(hint):
    import types
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    return typing.get_origin(hint) or hint


def add_parser(sub):
    p = sub.add_parser("run", help="train one strategy on one problem and record the run in MLflow")
    r = add_config_arguments(p)["run"]
    r.add_argument("--no-track", action="store_true", help="do not record the run in MLflow")
    r.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (default: 1 for small steps, where a "
        "second thread costs more than it gives; else torch's default)",
    )
    r.add_argument("--quiet", "-q", action="store_true", help="no status line, no progress bar")
    return p


def config_from_args(args):
    from optlab import references
    from optlab.config import RunConfig

    values = {k: getattr(args, k) for k in RunConfig.field_names() if getattr(args, k, None) not in (None, [])}
    if "options" in values:
        values["options"] = dict(values["options"])
    values["strategy"] = references.absolute(values.get("strategy", "adam"))  # a file: from the working directory
    if "workload" in values:  # one meaning in every process: a file path relative to the working directory
        from optlab.problem.workload_ref import absolute

        values["workload"] = absolute(values["workload"])
    return RunConfig.from_dict(values, source="optlab run")


def main(args) -> int:
    from optlab.tracking.background import BackgroundStore, can_fork

    store = BackgroundStore() if not args.no_track and can_fork() else None
    status = _Status(args)
    try:
        return _run(args, store, status)
    finally:
        status.clear()
        if store is not None:
            store.close()


def _run(args, store, status) -> int:
    from optlab.config import check_threads
    from optlab.errors import ConfigError

    if args.threads is not None:
        check_threads(args.threads)
    repeated = sorted({key for key, _ in args.options if [k for k, _ in args.options].count(key) > 1})
    if repeated:
        raise ConfigError(
            f"option {repeated[0]!r} is given more than once (-o {repeated[0]}=...); give each option once"
        )
    # before anything heavy: validating the config already imports torch (device, dataset names)
    status.show(
        f"{args.strategy} on {args.workload or args.dataset or 'mnist5k'}: loading torch and the data"
        + ("" if args.no_track else ", starting the tracking store")
    )
    config = config_from_args(args)
    if not args.no_track:
        from optlab.tracking.store import check_home, uses_default_store

        if uses_default_store():
            check_home()  # a tracking home blocked by a file: refused now, not after the run has trained
    import torch

    from optlab.engine import prepare, run
    from optlab.engine.runner import intra_op_threads
    from optlab.tracking import NullRecorder, RunRecorder

    prepared = prepare(config)  # all input errors surface here, before a run is recorded
    threads = args.threads or intra_op_threads(prepared)
    if threads:
        torch.set_num_threads(threads)
    recorder: NullRecorder | RunRecorder | BackgroundRecorder  # the last from `store` (a background store)
    if args.no_track:
        recorder = NullRecorder()
    else:
        recorder = store.recorder() if store is not None else RunRecorder()
    status.clear()
    # the objects made so far (torch's modules, the data) live as long as the process: a full garbage
    # collection walking them all would stall one training step for ~0.1 s
    gc.freeze()
    try:
        result = run(prepared, recorder=recorder, progress=not args.quiet)
    except BaseException as exc:  # whatever stops the run, it must not stay RUNNING in the store
        if isinstance(exc, KeyboardInterrupt):
            recorder.abort("KILLED", "interrupted")
        else:
            recorder.abort("FAILED", f"error: {type(exc).__name__}: {exc}")
        raise
    stored = recorder.status
    if stored is not None and stored != result.status:  # the store could not hold it all
        result.status, result.reason = stored, recorder.reason
    from optlab.tracking.run_facts import STORAGE_REASON

    if result.status != "FINISHED" and str(result.reason).startswith(STORAGE_REASON):
        # the store could not hold the run (a full disk, a lost server): a failure the user fixes, so one
        # line and exit 2 like every other one; the run's numbers were not stored, so no summary line
        print(
            f"optlab: error: run {result.status}: {result.reason}"
            + (f" (run {result.run_id})" if result.run_id else ""),
            file=sys.stderr,
        )
        return 2
    print(summary_line(result))
    if result.status != "FINISHED":
        print(f"optlab: run {result.status}: {result.reason}", file=sys.stderr)
        return 1
    return 0


class _Status:
    """One status line on stderr until the progress bar takes over (nothing with --quiet)."""

    def __init__(self, args):
        self.enabled, self.shown = not args.quiet, False

    def show(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"optlab: {text} ...")
            sys.stderr.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K" if sys.stderr.isatty() else "\n")
            sys.stderr.flush()
            self.shown = False


def summary_line(result) -> str:
    final, c = result.final, result.config
    parts = [f"{c.label()}: {result.status}"]
    if "test_accuracy" in final:
        parts.append(f"test acc {final['test_accuracy']:.4f}")
        parts.append(f"val acc {final['val_accuracy']:.4f}")
        parts.append(f"train acc {final['train_accuracy']:.4f}")
    if "train_loss" in final:
        parts.append(f"train loss {final['train_loss']:.4f}")
    parts.append(
        f"{result.steps} steps, {final.get('epoch', 0):.2f} epochs, {result.counters.get('function_evals', 0)} evals"
    )
    parts.append(f"{result.wall_time:.2f}s training")
    if result.curvature:
        parts.append(
            f"top Hessian eigenvalue {result.curvature['hessian_top_eigenvalue']:.4g}, "
            f"trace {result.curvature['hessian_trace']:.4g}"
        )
    if c.target is not None:
        parts.append(
            f"target {c.target:g} "
            + (
                f"reached at step {result.steps_to_target} ({result.time_to_target:.2f}s)"
                if result.steps_to_target is not None
                else "not reached"
            )
        )
    if result.run_id:
        parts.append(f"run {result.run_id}")
    return " | ".join(parts)
