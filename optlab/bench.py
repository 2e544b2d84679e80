"""`make bench` / `optlab bench`: optlab's speed against a textbook PyTorch loop, side by side in one process.

Five ratios, each measured on this machine in this run (see the README for a recorded table):
  (a) one run, samples/s: optlab vs TensorDataset + DataLoader + nn.Sequential + torch.optim, batch 32;
  (b) 64 runs (8 seeds x 8 learning rates): optlab batched vs 64 sequential textbook runs;
  (c) tracking overhead: the same tracked run with per-step metrics recorded vs not recorded;
  (d) full-batch GD: achieved FLOP/s vs a matrix multiply of the same FLOP count;
  (e) 32 gradient-free candidates: one batched evaluation vs one at a time;
  (g) the diagnostics tiers: the same run with `--diagnostics cheap` and `full` vs without (overhead ratios).
Timings are wall-clock medians of `repeats` measurements; `--quick` uses tiny sizes so CI can run it.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch

from optlab.config import RunConfig

GOALS = {"a": 1.5, "b": 10.0, "c": 0.10, "d": 0.30, "e": 5.0}


@dataclass
class Sizes:
    dataset: str
    steps: int            # (a), (c): steps of one run
    many_steps: int       # (b): steps of each of the 64 runs
    seeds: int
    lrs: int
    gd_steps: int         # (d)
    candidates: int       # (e)
    repeats: int


FULL = Sizes("mnist5k", steps=1500, many_steps=250, seeds=8, lrs=8, gd_steps=60, candidates=32, repeats=3)
QUICK = Sizes("digits", steps=40, many_steps=10, seeds=2, lrs=2, gd_steps=5, candidates=4, repeats=1)


def _median_time(fn, repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _config(sizes: Sizes, device: str, **changes) -> RunConfig:
    base = dict(strategy="minibatch", lr=0.5, batch_size=32, dataset=sizes.dataset, steps=sizes.steps,
                eval_every=sizes.steps, device=device)
    return RunConfig.from_dict({**base, **changes})


def textbook_run(data, sizes_in: tuple[int, ...], steps: int, lr: float, seed: int, batch_size: int = 32) -> float:
    """The baseline: the loop from the PyTorch tutorials, same net, cost and batch size, evaluated on the
    train and test sets before and after training as an optlab run is. Returns the last batch loss."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes_in[:-1], sizes_in[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes_in) - 2:
            layers.append(nn.Sigmoid())
    x, y = data.x_train, data.y_train
    model = nn.Sequential(*layers).to(x.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    loss_fn = nn.CrossEntropyLoss()
    done, loss = 0, None

    @torch.no_grad()
    def evaluate():
        metrics = []
        for xs, ys in ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)):
            logits = model(xs)
            metrics.append((float(loss_fn(logits, ys)), float((logits.argmax(1) == ys).float().mean())))
        return metrics

    evaluate()
    while done < steps:
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            done += 1
            if done >= steps:
                break
    evaluate()
    return float(loss.detach())


def bench_one_run(sizes: Sizes, device: str) -> dict:
    from optlab.engine import run, run_many
    from optlab.problem import build_problem

    config = _config(sizes, device)
    problem = build_problem(config)
    ds, net = problem.dataset, problem.network
    optlab_time = _median_time(lambda: run_many([config]), sizes.repeats)
    single_time = _median_time(lambda: run(config), sizes.repeats)
    textbook_time = _median_time(lambda: textbook_run(ds, net.sizes, sizes.steps, 0.5, 0),
                                 sizes.repeats)
    samples = sizes.steps * 32
    return {"optlab": samples / optlab_time, "optlab_single_engine": samples / single_time,
            "textbook": samples / textbook_time, "ratio": textbook_time / optlab_time}


def bench_many_runs(sizes: Sizes, device: str) -> dict:
    from optlab.engine import run_many
    from optlab.problem import build_problem

    lrs = [0.05 * 1.5 ** i for i in range(sizes.lrs)]
    configs = [_config(sizes, device, seed=s, lr=lr, steps=sizes.many_steps, eval_every=sizes.many_steps)
               for s in range(sizes.seeds) for lr in lrs]
    problem = build_problem(configs[0])
    ds, net = problem.dataset, problem.network
    batched_time = _median_time(lambda: run_many(configs), sizes.repeats)

    def textbook_all():
        for c in configs:
            textbook_run(ds, net.sizes, c.steps, c.lr, c.seed)

    textbook_time = _median_time(textbook_all, 1, warmup=False)
    return {"runs": len(configs), "optlab_batched_s": batched_time, "textbook_s": textbook_time,
            "ratio": textbook_time / batched_time}


def bench_tracking(sizes: Sizes, device: str) -> dict:
    """The same run, tracked in a fresh SQLite store, with per-step metrics (log_every=1) and without."""
    from optlab.engine import run_many
    from optlab.tracking import RunRecorder

    old = {k: os.environ.get(k) for k in ("OPTLAB_HOME", "MLFLOW_TRACKING_URI")}
    with tempfile.TemporaryDirectory() as home:
        os.environ["OPTLAB_HOME"] = home
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        try:
            make = lambda c: RunRecorder(experiment="bench")
            run_many([_config(sizes, device, steps=5)], make_recorder=make)   # creates the store once
            with_steps = _config(sizes, device, log_every=1)
            without = _config(sizes, device, log_every=sizes.steps * 10)
            untracked = _median_time(lambda: run_many([with_steps]), sizes.repeats)
            # interleaved, so drift in machine load or disk latency hits both alike
            plain_times, step_times = [], []
            for _ in range(2 * sizes.repeats + 1):
                plain_times.append(_median_time(lambda: run_many([without], make_recorder=make), 1, warmup=False))
                step_times.append(_median_time(lambda: run_many([with_steps], make_recorder=make), 1, warmup=False))
            tracked_plain, tracked_steps = statistics.median(plain_times), statistics.median(step_times)
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return {"untracked_s": untracked, "tracked_no_step_metrics_s": tracked_plain,
            "tracked_step_metrics_s": tracked_steps, "points": sizes.steps * 3,
            "overhead": tracked_steps / tracked_plain - 1, "overhead_vs_untracked": tracked_steps / untracked - 1}


def _network_flops(sizes_in: tuple[int, ...], n: int) -> float:
    """FLOPs of one full-batch gradient: forward, weight gradients, and deltas below the top layer."""
    products = [fan_in * fan_out for fan_in, fan_out in zip(sizes_in[:-1], sizes_in[1:])]
    return 2 * n * (2 * sum(products) + sum(products[1:]))


def bench_full_batch(sizes: Sizes, device: str) -> dict:
    from optlab.engine import run_many
    from optlab.problem import build_problem

    config = _config(sizes, device, strategy="gd", lr=0.5, batch_size=None, steps=sizes.gd_steps,
                     eval_every=sizes.gd_steps)
    problem = build_problem(config)
    n = problem.n_train
    flops = _network_flops(problem.network.sizes, n) * sizes.gd_steps
    results = []
    achieved = flops / _median_time(lambda: results.append(run_many([config])[0]), sizes.repeats)
    # the step time alone (evaluation excluded) as the engine records it
    train_rate = flops / min(r.wall_time for r in results)
    side = round((flops / sizes.gd_steps / 2) ** (1 / 3))
    a = torch.randn(side, side, device=device)
    b = torch.randn(side, side, device=device)
    reps = max(3, sizes.gd_steps)
    mm_time = _median_time(lambda: [torch.mm(a, b) for _ in range(reps)], sizes.repeats) / reps
    mm_rate = 2 * side ** 3 / mm_time
    return {"gflops_run": achieved / 1e9, "gflops_steps": train_rate / 1e9, "gflops_matmul": mm_rate / 1e9,
            "matmul_side": side, "ratio": train_rate / mm_rate}


def bench_population(sizes: Sizes, device: str) -> dict:
    """K candidates' losses: one Problem.losses call vs K Problem.loss calls, on the whole training
    set (compute-bound: batching saves only dispatch) and on a mini-batch of 32 (overhead-bound)."""
    from optlab.problem import build_problem

    problem = build_problem(_config(sizes, device))
    ws = torch.stack([problem.init_params(s) for s in range(sizes.candidates)])
    out = {"candidates": sizes.candidates, "samples": problem.n_train}
    for label, batch in (("full", problem.batch()), ("batch32", problem.batch(torch.arange(32, device=ws.device)))):
        reps = 20 if label == "batch32" else 3
        batched = _median_time(lambda: [problem.losses(ws, batch) for _ in range(reps)], sizes.repeats) / reps

        def one_at_a_time():
            with torch.no_grad():
                for _ in range(reps):
                    for w in ws:
                        problem.loss(w, batch)

        single = _median_time(one_at_a_time, sizes.repeats) / reps
        out[label] = {"batched_s": batched, "one_at_a_time_s": single, "ratio": single / batched}
    return out


def bench_diagnostics(sizes: Sizes, device: str) -> dict:
    """The same untracked run (mini-batch SGD, batch 32, about 50 evaluations) with each diagnostics tier:
    total time, the ratio to the run without diagnostics, and the added cost per evaluation point."""
    from optlab.engine import run_many

    every = max(1, sizes.steps // 50)
    configs = {tier: _config(sizes, device, eval_every=every, diagnostics=tier) for tier in ("off", "cheap", "full")}
    run_many([_config(sizes, device, steps=2, eval_every=1, diagnostics="full")])   # imports scipy, torch.func
    evaluations = sizes.steps // every + (1 if sizes.steps % every == 0 else 2)
    out = {"steps": sizes.steps, "evaluations": evaluations}
    for tier, config in configs.items():
        repeats = 1 if tier == "full" else sizes.repeats
        out[tier] = _median_time(lambda: run_many([config]), repeats, warmup=tier == "off")
    for tier in ("cheap", "full"):
        out[f"{tier}_ratio"] = out[tier] / out["off"]
        out[f"{tier}_ms_per_evaluation"] = 1e3 * (out[tier] - out["off"]) / evaluations
    return out


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}")


def run_bench(quick: bool = False, device: str = "cpu", only: str | None = None) -> dict:
    sizes = QUICK if quick else FULL
    parts = {"a": bench_one_run, "b": bench_many_runs, "c": bench_tracking, "d": bench_full_batch,
             "e": bench_population, "g": bench_diagnostics}
    return {key: fn(sizes, device) for key, fn in parts.items() if only is None or key in only}


def diagnostics_rows(r: dict) -> list[tuple[str, ...]]:
    """(g): one row per diagnostics tier."""
    return [("(g)", f"--diagnostics {tier}, run time s", f"{r[tier]:.2f}", f"{r['off']:.2f} off",
             f"{r[f'{tier}_ratio']:.1f}x", f"none: +{r[f'{tier}_ms_per_evaluation']:.0f} ms/evaluation")
            for tier in ("cheap", "full")]


def table(results: dict, quick: bool, device: str) -> str:
    rows = [("", "measurement", "optlab", "baseline", "ratio", "goal")]
    if "a" in results:
        r = results["a"]
        rows.append(("(a)", "one run, samples/s (B=32)", f"{r['optlab']:,.0f}", f"{r['textbook']:,.0f} textbook",
                     f"{r['ratio']:.2f}x", f">= {GOALS['a']}x"))
    if "b" in results:
        r = results["b"]
        rows.append(("(b)", f"{r['runs']} runs (seeds x lrs), total s", f"{r['optlab_batched_s']:.2f} batched",
                     f"{r['textbook_s']:.2f} textbook", f"{r['ratio']:.1f}x", f">= {GOALS['b']}x"))
    if "c" in results:
        r = results["c"]
        rows.append(("(c)", f"tracking, {r['points']:,} step metrics, s", f"{r['tracked_step_metrics_s']:.2f}",
                     f"{r['tracked_no_step_metrics_s']:.2f} without", f"+{100 * r['overhead']:.1f}%",
                     f"<= {100 * GOALS['c']:.0f}%"))
    if "d" in results:
        r = results["d"]
        rows.append(("(d)", "full-batch GD, GFLOP/s", f"{r['gflops_steps']:.1f}",
                     f"{r['gflops_matmul']:.1f} mm {r['matmul_side']}^3", f"{100 * r['ratio']:.0f}%",
                     f">= {100 * GOALS['d']:.0f}%"))
    if "e" in results:
        r = results["e"]
        for label, what in (("batch32", "a batch of 32"), ("full", f"all {r['samples']} samples")):
            m = r[label]
            rows.append(("(e)", f"{r['candidates']} gradient-free candidates, {what}",
                         f"{m['batched_s'] * 1e3:.2f} ms", f"{m['one_at_a_time_s'] * 1e3:.2f} ms loop",
                         f"{m['ratio']:.1f}x", f">= {GOALS['e']}x"))
    if "g" in results:
        rows.extend(diagnostics_rows(results["g"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"optlab bench{' --quick' if quick else ''} on {device}: {machine()}"]
    for i, row in enumerate(rows):
        lines.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if "a" in results:
        lines.append(f"(a) optlab = engine.run_many (the batched engine, K=1); engine.run alone: "
                     f"{results['a']['optlab_single_engine']:,.0f} samples/s")
    if "g" in results:
        r = results["g"]
        lines.append(f"(g) {r['steps']} steps of minibatch B=32, {r['evaluations']} evaluations; the ratio is the "
                     f"whole run's time over the same run without diagnostics (no goal: the price of looking)")
    if "c" in results:
        lines.append(f"(c) vs untracked: +{100 * results['c']['overhead_vs_untracked']:.1f}% "
                     f"(includes creating the MLflow run, its params and final artifact)")
    return "\n".join(lines)
