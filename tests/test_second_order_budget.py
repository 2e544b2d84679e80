"""Second-order steps do a variable amount of work (CG iterations, line-search trials, Hessian products):
each stops within the run's budget instead of finishing a step past it, and a budget smaller than one
step is refused before the run."""

import pytest

from optlab.config import RunConfig
from optlab.engine import loop as loop_module
from optlab.engine import prepare, run
from optlab.errors import ConfigError
from optlab.problem.problem import Problem


@pytest.mark.parametrize(
    "strategy, extra, epochs",
    [
        ("newton_cg", {}, 3.0),  # full batch: one step (gradient + CG + line search) fits, a second does not
        ("newton_cg", {"batch_size": 256}, 2.0),
        ("newton_cg", {"options": {"cg_tol": 1e-12}}, 40.0),  # every step runs CG to its iteration cap
        ("lbfgs", {}, 2.0),
        ("kfac", {}, 2.0),
        ("newton", {"hidden": (4,)}, 400.0),  # one step is 312 epochs (a Hessian-vector product per weight)
    ],
)
def test_a_second_order_run_ends_within_its_epoch_budget(strategy, extra, epochs):
    prep = prepare(RunConfig(strategy=strategy, dataset="digits", epochs=epochs, **extra))
    result = run(prep)
    assert result.status == "FINISHED" and result.steps >= 1
    used = result.counters["samples_seen"] / prep.problem.n_train
    assert used <= epochs, f"{strategy} used {used:.2f} epochs of a {epochs} epoch budget"
    assert result.final["epoch"] <= epochs


def test_an_epoch_budget_below_one_newton_cg_step_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"epoch budget 2 is less than one step of 'newton_cg' on digits"):
        prepare(RunConfig(strategy="newton_cg", dataset="digits", epochs=2))


def test_a_seconds_budget_cuts_a_newton_cg_step_short(monkeypatch):
    """A clock that advances one second per curvature product: with 3.5 s, CG stops after its fourth
    product instead of running its 20 iterations, and no second step starts."""
    clock = [0.0]
    count_curvature = Problem.count_curvature

    def slow_product(self, batch, products=1):
        clock[0] += products
        return count_curvature(self, batch, products)

    monkeypatch.setattr(Problem, "count_curvature", slow_product)
    monkeypatch.setattr(loop_module.time, "perf_counter", lambda: clock[0])
    config = RunConfig(strategy="newton_cg", dataset="digits", seconds=3.5, options={"cg_tol": 1e-12})
    result = run(config)
    assert result.status == "FINISHED" and result.steps == 1
    assert result.counters["curvature_products"] == 4
