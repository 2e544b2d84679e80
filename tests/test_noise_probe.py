"""The gradient-noise-scale probe: measured by the training loop at the run's own current parameters,
at both batch sizes, on a doubling schedule, without touching the run."""

from __future__ import annotations

import pytest
import torch

from optlab.analysis.noise_scale import NoiseSample, measure
from optlab.config import RunConfig
from optlab.engine import run, run_many
from optlab.engine.probes import NoiseScaleProbe

BASE = dict(dataset="digits", hidden=[16], activation="relu", strategy="minibatch", lr=0.1, steps=50, eval_every=5)


def probed(history):
    return {p["step"]: (p["noise_sq_small"], p["noise_sq_big"]) for p in history if "noise_sq_small" in p}


def test_probe_measures_at_the_run_parameters_on_a_doubling_schedule_and_leaves_training_alone():
    config = RunConfig.from_dict({**BASE, "seed": 3, "probe_noise_scale": True})
    result = run(config)
    points = probed(result.history)
    assert sorted(points) == [0, 10, 20, 40]
    # step 0: the initial parameters, measured with the probe's own generator
    from optlab.problem import build_problem

    problem = build_problem(config)
    big = min(NoiseScaleProbe.B_BIG, problem.n_train)
    expected = measure(
        problem,
        problem.init_params(3),
        NoiseScaleProbe.B_SMALL,
        big,
        NoiseScaleProbe.DRAWS,
        torch.Generator().manual_seed(1_000_003 + 3),
    )
    assert points[0] == (expected.sq_small, expected.sq_big)
    g2 = [p["noise_g2"] for p in result.history if "noise_g2" in p]
    assert g2[0] == NoiseSample(NoiseScaleProbe.B_SMALL, big, *points[0]).g2
    # the probe measures, it never changes the run
    plain = run(RunConfig.from_dict({**BASE, "seed": 3}))
    assert torch.equal(plain.params, result.params)


def test_probe_sees_each_stacked_row_as_it_would_alone():
    configs = [
        RunConfig.from_dict({**BASE, "seed": s, "lr": lr, "probe_noise_scale": True}) for s, lr in ((1, 0.1), (2, 0.3))
    ]
    together = run_many(configs, batched=True)
    assert {r.timing for r in together} == {"batched:2"}
    for config, batched in zip(configs, together):
        alone = run(config)
        a, b = probed(alone.history), probed(batched.history)
        assert sorted(a) == sorted(b) == [0, 10, 20, 40]
        for step in a:  # the stacked program's float32 kernels agree with the reference to rounding
            assert b[step] == pytest.approx(a[step], rel=1e-3)
