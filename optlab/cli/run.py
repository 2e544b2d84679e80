"""`optlab run`: one tracked run of one strategy.

Start-up is part of the job: before anything heavy is imported the tracking store is started in a
helper process (tracking/background.py: MLflow's import and the store overlap loading torch, the data
and training) and, unless --quiet, a status line is shown at once; the progress bar follows when
training starts. Small steps train on one intra-op thread (engine.runner.intra_op_threads).
"""

from __future__ import annotations

import argparse
import gc
import sys


def _hidden(text: str) -> list[int]:
    if text.strip().lower() == "none":
        return []  # no hidden layer: softmax (or linear least-squares) regression
    try:
        sizes = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid hidden sizes: {text!r} (use e.g. 16,16)")
    if not sizes:
        raise argparse.ArgumentTypeError(f"invalid hidden sizes: {text!r} is empty (use e.g. 16,16, or none for "
                                         f"no hidden layer)")
    return sizes


def _option(text: str):
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid option {text!r} (use KEY=VALUE)")
    import json
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def add_parser(sub):
    p = sub.add_parser("run", help="train one strategy on one problem and record the run in MLflow")
    p.add_argument("--strategy", "-s", default="adam", help="strategy name (see `optlab strategies`)")
    p.add_argument("--lr", type=float, help="learning rate (default: the strategy's)")
    p.add_argument("--momentum", type=float, help="momentum / Adam's beta1 (default: the strategy's)")
    p.add_argument("--batch-size", "-b", type=int, help="mini-batch size (default: the strategy's)")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--schedule", help="constant | step | exponential | cosine")
    p.add_argument("--decay-rate", type=float, help="factor for step/exponential schedules")
    p.add_argument("--decay-every", type=float, help="epochs between step-schedule decays")
    g = p.add_argument_group("budget (the first used up stops the run; default 10 epochs)")
    g.add_argument("--epochs", type=float)
    g.add_argument("--steps", type=int)
    g.add_argument("--evaluations", type=int, help="function evaluations")
    g.add_argument("--seconds", type=float, help="wall-clock training seconds")
    d = p.add_argument_group("problem")
    d.add_argument("--dataset", "-d", help="mnist5k (default) | digits | mnist | ravine | rosenbrock | golf")
    d.add_argument("--hidden", type=_hidden, help="hidden layer sizes, e.g. 16,16 (default) or 512; none: no hidden layer")
    d.add_argument("--activation", help="sigmoid (default) | relu | tanh")
    d.add_argument("--init", help="fan_in_uniform (default) | fan_in_normal | xavier | he | normal | zeros")
    d.add_argument("--cost", help="cross_entropy (default) | mse")
    d.add_argument("--label-noise", type=float, help="probability of replacing a training label at random")
    d.add_argument("--variant", help="none | shuffled_pixels | random_pixels | gaussian")
    d.add_argument("--standardize", action="store_true", default=None, help="standardize inputs")
    d.add_argument("--train-size", type=int, help="use only the first N training samples")
    d.add_argument("--order", help="shuffled (default) | sorted_by_class: the order mini-batches visit the data")
    d.add_argument("--workload", "-w", help="your own workload: path/to/file.py:NAME (or package.module:NAME), "
                   "NAME() returning an optlab.Workload (model, data, loss) in place of --dataset/--hidden/--cost")
    d.add_argument("--dtype", help="float32 (default) | float64")
    d.add_argument("--device", help="cpu (default) | cuda")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int)
    r.add_argument("--target", type=float, help="validation accuracy whose time and steps to reach are recorded")
    r.add_argument("--stop-at-target", action="store_true", default=None)
    r.add_argument("--eval-every", type=int, help="steps between evaluations (default: ~50 per run)")
    r.add_argument("--log-every", type=int, help="steps between per-step metric points (default 1)")
    r.add_argument("--probe-curvature", action="store_true", default=None,
                   help="at the end, log the Hessian's top eigenvalue and trace (sharpness)")
    r.add_argument("--diagnostics", help="off (default) | cheap | full: in-training diagnostics logged at every "
                   "evaluation (gradient noise scale, GSNR, update ratios, ...; full adds sharpness, Hessian trace "
                   "and step quality alpha)")
    r.add_argument("--diagnostics-samples", type=int,
                   help="training samples for per-sample gradients (a fixed random subset; default 512)")
    r.add_argument("--probe-noise-scale", action="store_true", default=None,
                   help="during training, log the gradient noise scale's |G|^2 and tr(Sigma), measured at two batch "
                        "sizes at the same parameters (McCandlish et al. 2018)")
    r.add_argument("--experiment", "-e", help="MLflow experiment name (default 'default')")
    r.add_argument("--run-name")
    r.add_argument("--opt", "-o", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="strategy-specific option (repeatable), e.g. -o sigma=0.05")
    r.add_argument("--no-track", action="store_true", help="do not record the run in MLflow")
    r.add_argument("--threads", type=int, help="torch intra-op threads (default: 1 for small steps, where a "
                                                "second thread costs more than it gives; else torch's default)")
    r.add_argument("--quiet", "-q", action="store_true", help="no status line, no progress bar")
    return p


CONFIG_KEYS = ("strategy", "lr", "momentum", "batch_size", "weight_decay", "schedule", "decay_rate",
               "decay_every", "epochs", "steps", "evaluations", "seconds", "dataset", "hidden", "activation",
               "init", "cost", "label_noise", "variant", "standardize", "train_size", "order", "workload", "dtype", "device",
               "seed", "target", "stop_at_target", "eval_every", "log_every", "probe_curvature", "probe_noise_scale",
               "diagnostics", "diagnostics_samples", "experiment", "run_name")


def config_from_args(args):
    from optlab.config import RunConfig

    values = {k: getattr(args, k) for k in CONFIG_KEYS if getattr(args, k, None) is not None}
    if "workload" in values:   # one meaning in every process: a file path relative to the working directory
        from optlab.problem.workload_ref import absolute
        values["workload"] = absolute(values["workload"])
    if args.opt:
        values["options"] = dict(args.opt)
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
    from optlab.errors import ConfigError

    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    # before anything heavy: validating the config already imports torch (device, dataset names)
    status.show(f"{args.strategy} on {args.workload or args.dataset or 'mnist5k'}: loading torch and the data"
                + ("" if args.no_track else ", starting the tracking store"))
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
    if args.no_track:
        recorder = NullRecorder()
    else:
        recorder = store.recorder() if store is not None else RunRecorder()
    status.clear()
    # the objects made so far (torch's modules, the data) live as long as the process: a full garbage
    # collection walking them all would stall one training step for ~0.1 s
    gc.freeze()
    try:
        result = run(prepared.config, recorder=recorder, progress=not args.quiet, problem=prepared.problem)
    except BaseException as exc:  # whatever stops the run, it must not stay RUNNING in the store
        if isinstance(exc, KeyboardInterrupt):
            recorder.abort("KILLED", "interrupted")
        else:
            recorder.abort("FAILED", f"error: {type(exc).__name__}: {exc}")
        raise
    if getattr(recorder, "status", None) not in (None, result.status):  # the store could not hold it all
        result.status, result.reason = recorder.status, recorder.reason
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
    parts.append(f"{result.steps} steps, {final.get('epoch', 0):.2f} epochs, {result.counters.get('function_evals', 0)} evals")
    parts.append(f"{result.wall_time:.2f}s training")
    if result.curvature:
        parts.append(f"top Hessian eigenvalue {result.curvature['hessian_top_eigenvalue']:.4g}, "
                     f"trace {result.curvature['hessian_trace']:.4g}")
    if c.target is not None:
        parts.append(f"target {c.target:g} " + (f"reached at step {result.steps_to_target} ({result.time_to_target:.2f}s)"
                                                 if result.steps_to_target is not None else "not reached"))
    if result.run_id:
        parts.append(f"run {result.run_id}")
    return " | ".join(parts)
