"""Run one strategy on one problem.

Flow: validate the config -> build the problem -> plan the run (batch size, steps per epoch,
planned steps; infeasible settings refused here) -> start the tracked run -> loop: step, buffer
per-step metrics, evaluate every k steps, check the budget, the target and divergence ->
finish the tracked run with its status, summary and final parameters.

Nothing is recorded before planning succeeds, so a bad value never leaves a run behind.
`wall_time` counts training only: evaluation and logging are excluded, as in AlgoPerf.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field

import torch

from optlab.config import RunConfig
from optlab.problem import Counters, Problem, build_problem
from optlab.strategies import Plan, Strategy, resolve

EVAL_POINTS = 50  # evaluations per run when eval_every is not given


@dataclass
class RunResult:
    config: RunConfig
    status: str                      # FINISHED | FAILED | KILLED
    reason: str | None
    steps: int
    wall_time: float
    final: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)   # one dict per evaluation
    steps_to_target: int | None = None
    time_to_target: float | None = None
    run_id: str | None = None
    params: torch.Tensor | None = None
    counters: dict[str, int] = field(default_factory=dict)
    curvature: dict[str, float] = field(default_factory=dict)  # the end-of-run probe, when requested


@dataclass
class Prepared:
    config: RunConfig          # resolved: the strategy's defaults filled in
    strategy_cls: type
    problem: Problem
    plan: Plan


def prepare(config: RunConfig | dict, problem: Problem | None = None) -> Prepared:
    """Everything that can fail on bad input, before any run exists."""
    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    else:
        config.validate()
    strategy_cls = resolve(config.strategy)
    problem = problem if problem is not None else build_problem(config)
    plan = strategy_cls.plan(config, problem)
    return Prepared(strategy_cls.resolve_config(config, plan, problem), strategy_cls, problem, plan)


def eval_interval(config: RunConfig, plan: Plan) -> int:
    if config.eval_every is not None:
        return config.eval_every
    if plan.max_steps is not None:
        return max(1, plan.max_steps // EVAL_POINTS)
    return max(1, round(plan.steps_per_epoch / 4))


def _budget_used(config: RunConfig, problem: Problem, steps: int, wall: float, plan: Plan) -> bool:
    budget = config.budget
    counters = problem.counters
    return ((plan.max_steps is not None and steps >= plan.max_steps)
            or ("epochs" in budget and counters.samples_seen >= budget["epochs"] * problem.n_train
                and problem.has_accuracy)
            or ("evaluations" in budget and counters.function_evals >= budget["evaluations"])
            or ("seconds" in budget and wall >= budget["seconds"]))


def run(config: RunConfig | dict, recorder=None, progress: bool = False, problem: Problem | None = None,
        extra_tags: dict | None = None) -> RunResult:
    """Train, evaluate and record one run. Bad input raises before anything is recorded;
    a divergence or an error inside the run is returned as a FAILED result (and recorded so)."""
    from optlab.tracking import NullRecorder

    prep = prepare(config, problem)
    config, problem, plan = prep.config, prep.problem, prep.plan
    problem.counters = Counters()
    torch.manual_seed(config.seed)
    strategy: Strategy = prep.strategy_cls(problem, problem.init_params(config.seed), config, plan)
    recorder = recorder if recorder is not None else NullRecorder()
    recorder.start(config, problem, plan, extra_tags={"optlab.family": prep.strategy_cls.family, **(extra_tags or {})})

    every = eval_interval(config, plan)
    bar = _progress_bar(config, plan) if progress else None
    result = RunResult(config, "RUNNING", None, 0, 0.0, {}, run_id=recorder.run_id)
    steps, wall = 0, 0.0

    def evaluate() -> dict[str, float]:
        point = {**problem.evaluate(strategy.params()),
                 **work_metrics(problem.counters, problem.n_train, wall,
                                epoch=None if problem.has_accuracy else steps)}
        recorder.log(steps, point)
        result.history.append({"step": steps, **point})
        if bar is not None:
            bar.set_postfix_str(_postfix(point), refresh=False)
        return point

    try:
        point = evaluate()
        while not _budget_used(config, problem, steps, wall, plan):
            started = time.perf_counter()
            observed = strategy.step()
            wall += time.perf_counter() - started
            steps += 1
            if steps % config.log_every == 0:
                recorder.log(steps, {**observed, "lr": observed.get("lr", strategy.lr)})
            loss = observed.get("batch_loss")
            if loss is not None and not math.isfinite(loss):
                raise Diverged(f"diverged: batch loss became {loss} at step {steps}")
            if bar is not None:
                bar.update(1)
            if steps % every == 0:
                point = evaluate()
                _check_finite(point, steps)
                if _reached(config, point) and result.steps_to_target is None:
                    result.steps_to_target, result.time_to_target = steps, wall
                    recorder.log(steps, {"steps_to_target": steps, "time_to_target": wall})
                    if config.stop_at_target:
                        break
        if result.history[-1]["step"] != steps:
            point = evaluate()
            _check_finite(point, steps)
            if _reached(config, point) and result.steps_to_target is None:
                result.steps_to_target, result.time_to_target = steps, wall
                recorder.log(steps, {"steps_to_target": steps, "time_to_target": wall})
        result.status = "FINISHED"
    except Diverged as exc:
        result.status, result.reason = "FAILED", str(exc)
    except KeyboardInterrupt:
        result.status, result.reason = "KILLED", "interrupted"
    except Exception as exc:  # a broken run is recorded and reported, never silently lost
        result.status = "FAILED"
        result.reason = f"error: {type(exc).__name__}: {exc}"
        result.traceback = traceback.format_exc()
    finally:
        if bar is not None:
            bar.close()
    result.steps, result.wall_time = steps, wall
    result.final = result.history[-1] if result.history else {}
    result.params = strategy.params().detach().clone()
    result.counters = problem.counters.as_dict()
    if config.probe_curvature and result.status == "FINISHED":
        try:
            result.curvature = _probe_curvature(problem, result.params, recorder, steps)
        except Exception as exc:  # the requested measurement is missing: say so, keep the run
            result.status, result.reason = "FAILED", f"curvature probe: {type(exc).__name__}: {exc}"
    summary = {**run_summary(result), **{k: round(v, 6) for k, v in result.curvature.items()}}
    recorder.finish(result.status, result.reason, summary,
                    result.params if result.status != "KILLED" else None)
    if result.status == "KILLED":
        raise KeyboardInterrupt
    return result


class Diverged(Exception):
    pass


def run_many(configs: list[RunConfig], make_recorder=None, progress: bool = False,
             extra_tags: list[dict] | None = None, batched: bool = True) -> list[RunResult]:
    """Run several configs, each its own tracked run. With `batched`, compatible first-order runs
    train together as one stacked program (optlab.engine.batched); the rest run one after another."""
    from optlab.engine.batched import run_many as run_batched

    return run_batched(configs, make_recorder, progress, extra_tags, batched=batched)


def _probe_curvature(problem: Problem, params: torch.Tensor, recorder, steps: int) -> dict[str, float]:
    """Sharpness at the final point on the training set: a measurement (uncounted, like evaluation)."""
    from optlab.strategies.second_order.curvature import probe_curvature

    probe = probe_curvature(problem, params)
    recorder.log(steps, probe)
    return probe


def _check_finite(point: dict[str, float], steps: int) -> None:
    loss = point.get("train_loss")
    if loss is not None and not math.isfinite(loss):
        raise Diverged(f"diverged: train loss became {loss} at step {steps}")


def work_metrics(counters: Counters, n_train: int, wall: float, epoch: float | None = None) -> dict[str, float]:
    """What an evaluation point records about the work done so far (the shared cost axes)."""
    point = {"samples_seen": counters.samples_seen, "evaluations": counters.function_evals,
             "gradient_evaluations": counters.gradient_evals, "wall_time": wall,
             "gradient_equivalents": counters.gradient_equivalents(n_train),
             "epoch": counters.samples_seen / n_train if epoch is None else epoch}
    if counters.curvature_products:
        point["curvature_products"] = counters.curvature_products
    return point


def run_summary(result: RunResult) -> dict:
    """The summary tags of a finished run (its steps and wall_time already set)."""
    return {"steps": result.steps, "wall_time": round(result.wall_time, 4), "steps_to_target": result.steps_to_target,
            "time_to_target": None if result.time_to_target is None else round(result.time_to_target, 4)}


def _reached(config: RunConfig, point: dict[str, float]) -> bool:
    """The target is a validation accuracy: reaching it may stop a run, so it must not read the test set."""
    return config.target is not None and point.get("val_accuracy", -1.0) >= config.target


def _postfix(point: dict[str, float]) -> str:
    text = f"loss {point['train_loss']:.4f}"
    if "val_accuracy" in point:
        text += f" val acc {point['val_accuracy']:.3f}"
    return text


def _progress_bar(config: RunConfig, plan: Plan):
    from tqdm import tqdm

    return tqdm(total=plan.max_steps, desc=config.label(), unit="step", leave=False, dynamic_ncols=True,
                mininterval=0.5)
