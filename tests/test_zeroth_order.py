"""Gradient-free strategies: ng:NAME, spsa and fd (small problems: digits with tiny nets, 2-D functions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optlab.engine import prepare, run
from optlab.errors import ConfigError, InfeasibleError
from optlab.strategies.zeroth_order.nevergrad_adapter import CURATED, metamodel_broken

ROOT = Path(__file__).resolve().parents[1]
TINY = {"dataset": "digits", "hidden": [4], "seed": 0}  # d = 310
TINY64 = {**TINY, "dtype": "float64"}


class CapturingRecorder:
    """What the engine hands to the tracking layer, without a store."""

    run_id = None

    def __init__(self):
        self.points = []

    def start(self, *args, **kwargs):
        pass

    def log(self, step, values):
        self.points.append((step, dict(values)))

    def log_series(self, steps, columns):
        for i, step in enumerate(steps):
            self.points.append((step, {key: values[i] for key, values in columns.items()}))

    def finish(self, *args, **kwargs):
        pass

    def logged(self, key):
        return [values[key] for _, values in self.points if key in values]


def strategy_for(config: dict):
    """A strategy instance at the problem's initial weights, as the engine builds it."""
    prep = prepare(config)
    problem = prep.problem
    return prep.strategy_cls(problem, problem.init_params(prep.config.seed), prep.config, prep.plan), problem


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # PSO samples far points: nevergrad clips their huge losses
@pytest.mark.parametrize("name", sorted(CURATED))
def test_each_curated_nevergrad_optimizer_lowers_the_loss(name):
    # 2-D: population methods need a few generations (TBPSA's population is 4d), which a net cannot give cheaply
    result = run({"strategy": f"ng:{name}", "dataset": "rosenbrock", "evaluations": 300, "options": {"sigma": 0.3}})
    assert result.status == "FINISHED"
    first, last = result.history[0]["train_loss"], result.history[-1]["train_loss"]
    assert last < 0.5 * first, f"{name}: {first:.4f} -> {last:.4f}"


def test_one_plus_one_lowers_the_loss_of_a_network():
    result = run({**TINY, "strategy": "ng:OnePlusOne", "evaluations": 300, "options": {"sigma": 0.1}})
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] - 0.05


@pytest.mark.parametrize("workers", [1, 3])
def test_logged_evaluation_counts_equal_the_budget(workers):
    recorder = CapturingRecorder()
    result = run(
        {**TINY, "strategy": "ng:OnePlusOne", "evaluations": 100, "options": {"num_workers": workers}},
        recorder=recorder,
    )
    assert result.counters["function_evals"] == 100
    assert recorder.logged("evaluations")[-1] == 100
    assert recorder.logged("samples_seen")[-1] == 100 * 1257  # full training set per evaluation
    assert result.steps == -(-100 // workers)


def test_candidates_asked_together_share_one_batched_forward_pass():
    strategy, problem = strategy_for(
        {**TINY, "strategy": "ng:TwoPointsDE", "evaluations": 40, "options": {"num_workers": 4}}
    )
    calls = []
    original = problem.losses
    problem.losses = lambda ws, batch=None: calls.append(ws.shape[0]) or original(ws, batch)
    for _ in range(10):
        strategy.step()
    assert calls == [4] * 10
    assert problem.counters.function_evals == 40


def test_batch_objective_is_noisy_and_draws_a_fresh_batch_per_round():
    strategy, problem = strategy_for(
        {
            **TINY,
            "strategy": "ng:OnePlusOne",
            "evaluations": 20,
            "batch_size": 50,
            "options": {"objective": "batch", "num_workers": 2},
        }
    )
    assert strategy.optimizer.parametrization.function.deterministic is False
    seen = []
    original = problem.losses
    problem.losses = lambda ws, batch=None: seen.append(batch.y.clone()) or original(ws, batch)
    for _ in range(3):
        strategy.step()
    assert problem.counters.samples_seen == 3 * 2 * 50
    assert not torch.equal(seen[0], seen[1])


def test_full_objective_refuses_a_batch_size():
    with pytest.raises(ConfigError, match="objective=batch"):
        prepare({**TINY, "strategy": "ng:OnePlusOne", "batch_size": 32, "evaluations": 10})


def test_recommendation_starts_at_the_initial_weights():
    strategy, problem = strategy_for({**TINY, "strategy": "ng:DiagonalCMA", "evaluations": 10})
    assert torch.allclose(strategy.params(), problem.init_params(0), atol=1e-6)


def test_full_covariance_cma_at_the_reference_size_is_refused_before_any_run():
    with pytest.raises(InfeasibleError) as info:
        prepare({"strategy": "ng:CMA", "dataset": "mnist5k", "evaluations": 3000})
    message = str(info.value)
    assert "13,002" in message and "ng:DiagonalCMA" in message
    assert isinstance(info.value, ConfigError)  # sweeps and the CLI refuse it as bad input


def test_cma_nested_in_a_chain_is_refused_too():
    with pytest.raises(InfeasibleError, match="through CMA"):
        prepare({**TINY, "hidden": [64], "strategy": "ng:ChainCMAPowell", "evaluations": 100})


@pytest.mark.skipif(not metamodel_broken(), reason="MetaModel works with this numpy/nevergrad")
def test_metamodel_that_would_break_under_numpy_is_refused_but_large_d_ngopt_runs():
    with pytest.raises(ConfigError, match="MetaModel.*numpy"):
        prepare({"strategy": "ng:NGOpt", "dataset": "rosenbrock", "evaluations": 100})
    # at d = 310 the surrogate needs ~48,000 evaluations, never reached within this budget
    assert run({**TINY, "strategy": "ng:NGOpt", "evaluations": 30}).status == "FINISHED"


def test_unknown_nevergrad_name_suggests_close_ones():
    with pytest.raises(ConfigError, match="did you mean ng:OnePlusOne"):
        prepare({**TINY, "strategy": "ng:OnePluOne", "evaluations": 10})


def test_scipy_based_optimizer_stopped_early_does_not_hang_the_interpreter():
    code = (
        "from optlab.engine import run; "
        "r = run({'strategy': 'ng:Powell', 'dataset': 'rosenbrock', 'evaluations': 15}); "
        "print(r.status, r.counters['function_evals'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["FINISHED", "15"]


# ---- spsa ----------------------------------------------------------------------------------------
def test_spsa_estimate_correlates_with_the_true_gradient():
    strategy, problem = strategy_for({**TINY64, "strategy": "spsa", "options": {"q": 200, "eps": 1e-4}})
    batch = problem.batch()
    _, true_grad = problem.loss_and_grad(strategy.params(), batch)
    w_before = strategy.params().clone()
    loss, estimate = strategy.estimate_gradient(batch)
    cosine = torch.nn.functional.cosine_similarity(estimate, true_grad, dim=0)
    assert cosine > 0.3  # ~ sqrt(q / (q + d)) = 0.63 expected for q=200, d=310
    assert torch.allclose(strategy.params(), w_before, atol=1e-12)  # perturbations undone in place
    assert problem.counters.function_evals == 1 + 2 * 200


def test_spsa_single_directions_are_positively_correlated_on_average():
    strategy, problem = strategy_for({**TINY64, "strategy": "spsa", "options": {"q": 1, "eps": 1e-4}})
    batch = problem.batch()
    _, true_grad = problem.loss_and_grad(strategy.params(), batch)
    cosines = [
        torch.nn.functional.cosine_similarity(strategy.estimate_gradient(batch)[1], true_grad, dim=0)
        for _ in range(100)
    ]
    assert torch.stack(cosines).mean() > 0.02  # E ~ 0.045 at d=310; a random sign would average 0


def test_spsa_regenerates_directions_from_their_seeds():
    strategy, _ = strategy_for({**TINY, "strategy": "spsa", "options": {"distribution": "rademacher"}})
    z = strategy.direction(1234)
    assert torch.equal(z, strategy.direction(1234))
    assert set(z.unique().tolist()) == {-1.0, 1.0}


def test_spsa_lowers_the_loss_within_its_evaluation_budget():
    result = run({"strategy": "spsa", "dataset": "ravine", "lr": 0.01, "evaluations": 401, "options": {"q": 2}})
    assert result.counters["function_evals"] == 400  # whole steps only: 100 steps of 4 evaluations
    assert result.history[-1]["train_loss"] < 0.2 * result.history[0]["train_loss"]


# ---- fd ------------------------------------------------------------------------------------------
def test_fd_matches_the_analytic_gradient_on_a_tiny_net():
    strategy, problem = strategy_for({**TINY64, "hidden": [3], "strategy": "fd", "options": {"h": 1e-5}})
    batch = problem.batch()
    loss, estimate = strategy.estimate_gradient(batch)
    d = problem.n_params
    assert problem.counters.function_evals == 2 * d
    true_loss, true_grad = problem.loss_and_grad(strategy.params(), batch)
    assert torch.allclose(estimate, true_grad, rtol=1e-5, atol=1e-8)
    assert loss == pytest.approx(float(true_loss), rel=1e-6)


def test_fd_descends_and_never_exceeds_its_budget():
    result = run({"strategy": "fd", "dataset": "rosenbrock", "lr": 1e-3, "evaluations": 403})
    assert result.counters["function_evals"] == 400  # 100 gradients of 2d = 4 evaluations
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fd_above_its_size_limit_is_refused_with_a_pointer_to_spsa():
    with pytest.raises(ConfigError, match="use spsa") as info:
        prepare({**TINY, "hidden": [64], "strategy": "fd"})  # d = 4,810
    assert isinstance(info.value, InfeasibleError)
    assert "9,620" in str(info.value)


# ---- the experiment file -------------------------------------------------------------------------
def test_zeroth_order_experiment_points_are_valid_and_feasible():
    from optlab.sweeps import load

    spec = load(ROOT / "experiments" / "zeroth_order.toml")  # validates and plans every point
    assert spec.name == "zeroth_order" and len(spec.workloads) == 1
    strategies = {p.config.strategy for p in spec.points}
    assert {"ng:OnePlusOne", "ng:DiagonalCMA", "ng:PSO", "ng:TwoPointsDE", "spsa", "sgd", "adam"} == strategies
    assert {p.config.evaluations for p in spec.points} == {3000}  # one budget: one workload
    assert all(p.config.budget for p in spec.points)


def test_strategies_command_lists_the_curated_optimizers_and_the_open_registry(capsys):
    from optlab.cli import main

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in [*CURATED, "spsa", "fd"]:
        assert name in out
    assert "any name in Nevergrad's registry works" in out


def test_parallel_asks_on_a_sequential_optimizer_are_refused():
    with pytest.raises(ConfigError, match="num_workers 4"):
        prepare({"strategy": "ng:Powell", "dataset": "rosenbrock", "evaluations": 20, "options": {"num_workers": 4}})


def test_nevergrad_on_a_dataset_needs_an_explicit_budget():
    with pytest.raises(ConfigError, match="--evaluations"):
        prepare({**TINY, "strategy": "ng:OnePlusOne"})
