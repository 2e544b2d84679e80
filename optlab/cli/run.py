"""`optlab run`: one tracked run of one strategy."""

from __future__ import annotations

import argparse
import sys


def _hidden(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid hidden sizes: {text!r} (use e.g. 16,16)")
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
    d.add_argument("--hidden", type=_hidden, help="hidden layer sizes, e.g. 16,16 (default) or 512")
    d.add_argument("--activation", help="sigmoid (default) | relu | tanh")
    d.add_argument("--init", help="fan_in_uniform (default) | fan_in_normal | xavier | he | normal | zeros")
    d.add_argument("--cost", help="cross_entropy (default) | mse")
    d.add_argument("--label-noise", type=float, help="probability of replacing a training label at random")
    d.add_argument("--variant", help="none | shuffled_pixels | random_pixels | gaussian")
    d.add_argument("--standardize", action="store_true", default=None, help="standardize inputs")
    d.add_argument("--train-size", type=int, help="use only the first N training samples")
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
    r.add_argument("--probe-noise-scale", action="store_true", default=None,
                   help="during training, log the gradient noise scale's |G|^2 and tr(Sigma), measured at two batch "
                        "sizes at the same parameters (McCandlish et al. 2018)")
    r.add_argument("--experiment", "-e", help="MLflow experiment name (default 'default')")
    r.add_argument("--run-name")
    r.add_argument("--opt", "-o", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="strategy-specific option (repeatable), e.g. -o sigma=0.05")
    r.add_argument("--no-track", action="store_true", help="do not record the run in MLflow")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return p


CONFIG_KEYS = ("strategy", "lr", "momentum", "batch_size", "weight_decay", "schedule", "decay_rate",
               "decay_every", "epochs", "steps", "evaluations", "seconds", "dataset", "hidden", "activation",
               "init", "cost", "label_noise", "variant", "standardize", "train_size", "dtype", "device", "seed",
               "target", "stop_at_target", "eval_every", "log_every", "probe_curvature", "probe_noise_scale",
               "experiment", "run_name")


def config_from_args(args):
    from optlab.config import RunConfig

    values = {k: getattr(args, k) for k in CONFIG_KEYS if getattr(args, k, None) is not None}
    if args.opt:
        values["options"] = dict(args.opt)
    return RunConfig.from_dict(values, source="optlab run")


def main(args) -> int:
    from optlab.engine import prepare, run
    from optlab.tracking import NullRecorder, RunRecorder

    config = config_from_args(args)
    prepared = prepare(config)  # all input errors surface here, before a run is recorded
    recorder = NullRecorder() if args.no_track else RunRecorder()
    result = run(prepared.config, recorder=recorder, progress=not args.quiet, problem=prepared.problem)
    print(summary_line(result))
    if result.status != "FINISHED":
        print(f"optlab: run {result.status}: {result.reason}", file=sys.stderr)
        return 1
    return 0


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
