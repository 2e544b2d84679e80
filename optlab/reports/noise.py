"""Gradient-noise-scale measurements for the report, at the *same* parameters for both batch sizes.

Two sources: the runs' own `noise_g2` / `noise_trace` metrics, logged during training by the loop's
noise-scale probe (optlab.engine.probes.NoiseScaleProbe: several points of training per run), and a
measurement made here at two points every stored run keeps: its initial parameters (rebuilt from its
seed) and its final parameters (the params.safetensors artifact; for a run that stopped at its target,
the parameters that reached it). Both are optlab.analysis.noise_scale.measure with the probe's
settings: mean |g_B|^2 over DRAWS mini-batches at B_SMALL and at B_BIG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from optlab.engine.probes import NoiseScaleProbe

if TYPE_CHECKING:
    from optlab.problem import Problem

B_SMALL, B_BIG, DRAWS = NoiseScaleProbe.B_SMALL, NoiseScaleProbe.B_BIG, NoiseScaleProbe.DRAWS


def from_probe(store, runs: pd.DataFrame) -> pd.DataFrame:
    """Measurements logged by the probe: run_id, seed, batch_size, step, epoch, g2, trace (empty if none)."""
    rows = []
    for run in runs.itertuples():
        g2, trace = store.metric(run.run_id, "noise_g2"), store.metric(run.run_id, "noise_trace")
        if g2.empty or trace.empty:
            continue
        epoch = store.metric(run.run_id, "epoch").drop_duplicates("step", keep="last").set_index("step")["value"]
        both = g2.merge(trace, on="step", suffixes=("_g2", "_trace"))
        for point in both.itertuples():
            rows.append(
                {
                    "run_id": run.run_id,
                    "seed": run.seed,
                    "batch_size": run.batch_size,
                    "step": point.step,
                    "epoch": epoch.get(point.step, np.nan),
                    "g2": point.value_g2,
                    "trace": point.value_trace,
                }
            )
    return pd.DataFrame(rows, columns=["run_id", "seed", "batch_size", "step", "epoch", "g2", "trace"])


def at_init_and_end(store, runs: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """Measure at each run's initial and final parameters (point = 'init' | 'end')."""
    import torch

    from optlab.analysis.noise_scale import measure
    from optlab.problem import build_problem
    from optlab.tracking.recorder import load_config, load_params

    problems: dict[tuple, Problem] = {}
    rows = []
    for run in runs[runs["status"] == "FINISHED"].itertuples():
        try:
            config = load_config(run.run_id, store.uri)
            final = load_params(run.run_id, store.uri)
        except Exception:  # a run without artifacts cannot be measured: it is left out, not guessed
            continue
        key = config.problem_key()
        if key not in problems:
            problems[key] = build_problem(config)
        problem = problems[key]
        big = min(B_BIG, problem.n_train)
        generator = torch.Generator().manual_seed(int(run.seed))
        for point, params in (("init", problem.init_params(int(run.seed))), ("end", final.to(problem.dtype))):
            sample = measure(problem, params, B_SMALL, big, DRAWS, generator)
            rows.append(
                {
                    "run_id": run.run_id,
                    "seed": run.seed,
                    "batch_size": run.batch_size,
                    "point": point,
                    "epoch": 0.0 if point == "init" else getattr(run, "final_epoch", np.nan),
                    "g2": sample.g2,
                    "trace": sample.trace,
                    "b_small": B_SMALL,
                    "b_big": big,
                }
            )
    return pd.DataFrame(
        rows, columns=["run_id", "seed", "batch_size", "point", "epoch", "g2", "trace", "b_small", "b_big"]
    )
