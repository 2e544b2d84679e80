"""Second-order strategies, curvature products and the curvature probe (tiny nets, float64)."""

import math

import pytest
import torch

from optlab.config import RunConfig
from optlab.engine import prepare, run
from optlab.errors import ConfigError
from optlab.problem import build_problem
from optlab.problem.layer_statistics import layer_statistics
from optlab.problem.problem import Problem
from optlab.strategies import registry
from optlab.strategies.second_order.curvature import (
    conjugate_gradient,
    gauss_newton_operator,
    hessian_matrix,
    hessian_operator,
    power_iteration,
    probe_curvature,
)
from optlab.strategies.second_order.kfac import damped_inverses, kronecker_factors

SECOND_ORDER = ["lbfgs", "newton", "newton_cg", "kfac"]


def tiny(hidden=(5,), cost="cross_entropy", train_size=60, **extra):
    config = RunConfig(dataset="digits", hidden=hidden, cost=cost, train_size=train_size, dtype="float64", **extra)
    return build_problem(config)


class Quadratic(Problem):
    """L(w) = w^T A w / 2 with A = Q diag(eigenvalues) Q^T."""

    def __init__(self, eigenvalues, seed=0):
        super().__init__()
        n = len(eigenvalues)
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
        self.matrix = q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
        self.n_params, self.name = n, "quadratic"

    def objective(self, w, batch=None):
        return 0.5 * w @ self.matrix @ w


def test_second_order_strategies_are_registered():
    found = {cls.name: cls.family for cls in registry.available()}
    assert all(found.get(name) == "second-order" for name in SECOND_ORDER)


def test_newton_solves_a_quadratic_in_one_step():
    result = run(RunConfig(strategy="newton", dataset="ravine", steps=1, dtype="float64"))
    assert result.history[0]["train_loss"] > 1.0
    assert result.final["train_loss"] < 1e-20
    assert torch.allclose(result.params, torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert result.counters["curvature_products"] == 2  # the 2 x 2 Hessian costs 2 products


def test_newton_refuses_a_large_problem_and_suggests_newton_cg():
    with pytest.raises(ConfigError, match="newton_cg") as info:
        prepare(RunConfig(strategy="newton", dataset="digits", hidden=(64,)))
    assert "4810" in str(info.value)
    assert prepare(
        RunConfig(strategy="newton", dataset="digits", hidden=(64,), options={"max_params": 5000}, epochs=5000)
    )


def test_hessian_vector_product_matches_finite_differences_of_the_gradient():
    problem = tiny(activation="tanh")
    w = problem.init_params(0)
    batch = problem.batch()
    v = torch.randn(w.numel(), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = 1e-5
    gradient = lambda p: problem.loss_and_grad(p, batch)[1]
    finite = (gradient(w + eps * v) - gradient(w - eps * v)) / (2 * eps)
    exact = hessian_operator(problem, w, batch)(v)
    assert torch.allclose(exact, finite, rtol=1e-6, atol=1e-9)
    assert exact.norm() > 1e-3


def test_hessian_matrix_matches_torch_func_hessian():
    problem = tiny(hidden=(3,), train_size=20)
    w, batch = problem.init_params(0), problem.batch()
    expected = torch.func.hessian(lambda p: problem.objective(p, batch))(w)
    assert torch.allclose(hessian_matrix(problem, w, batch, chunk=50), expected, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("cost", ["cross_entropy", "mse"])
def test_gauss_newton_product_matches_explicit_jt_h_j(cost):
    problem = tiny(hidden=(4,), cost=cost, train_size=12)
    w = problem.init_params(0)
    batch = problem.batch()
    net = problem.network
    if cost == "cross_entropy":
        outputs = lambda p: net.forward(p, batch.x)
        loss = lambda z: torch.nn.functional.cross_entropy(z, batch.y)
    else:
        outputs = lambda p: torch.sigmoid(net.forward(p, batch.x))
        loss = lambda o: ((o - torch.nn.functional.one_hot(batch.y, 10).to(o.dtype)) ** 2).sum(-1).mean()
    z = outputs(w)
    jacobian = torch.autograd.functional.jacobian(outputs, w).reshape(z.numel(), w.numel())
    h_out = torch.autograd.functional.hessian(lambda flat: loss(flat.reshape(z.shape)), z.reshape(-1))
    explicit = jacobian.T @ h_out @ jacobian
    operator = gauss_newton_operator(problem, w, batch)
    vectors = torch.randn(3, w.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for v in vectors:
        assert torch.allclose(operator(v), explicit @ v, rtol=1e-8, atol=1e-12)
    assert torch.linalg.eigvalsh(explicit).min() > -1e-10  # the matching-loss split keeps G PSD


def test_gauss_newton_equals_the_hessian_for_a_linear_model():
    problem = tiny(hidden=())  # softmax regression: outputs linear in w, so H = J^T H_out J
    w = problem.init_params(0)
    batch = problem.batch()
    v = torch.randn(w.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(
        gauss_newton_operator(problem, w, batch)(v), hessian_operator(problem, w, batch)(v), rtol=1e-9, atol=1e-12
    )


def test_power_iteration_finds_the_top_eigenvalue_of_a_quadratic():
    eigenvalues = [0.5, 1.0, 2.0, 3.0, 7.0, 10.0]
    problem = Quadratic(eigenvalues)
    w = torch.ones(6, dtype=torch.float64)
    top, used = power_iteration(hessian_operator(problem, w, None), 6, iters=500, tol=1e-12, dtype=torch.float64)
    assert top == pytest.approx(10.0, rel=1e-6) and used < 500
    probe = probe_curvature(problem, w, samples=400)
    assert probe["hessian_top_eigenvalue"] == pytest.approx(10.0, rel=1e-3)
    assert probe["hessian_trace"] == pytest.approx(sum(eigenvalues), rel=0.1)
    assert problem.counters.curvature_products == 0  # a probe measures, it does no counted work


def test_engine_logs_the_probe_at_the_end_of_a_run():
    # lr 0.01: stable on the ravine (lr x 50 < 2); the default 0.5 diverges there, a factor 24 a step
    result = run(RunConfig(strategy="gd", dataset="ravine", lr=0.01, steps=3, dtype="float64", probe_curvature=True))
    assert result.curvature["hessian_top_eigenvalue"] == pytest.approx(50.0, rel=1e-6)
    assert result.curvature["hessian_trace"] == pytest.approx(51.0)  # exact for a diagonal Hessian
    assert not run(RunConfig(strategy="gd", dataset="ravine", steps=3)).curvature
    base = RunConfig(strategy="gd", dataset="ravine", steps=3)
    assert base.config_hash() == base.with_updates(probe_curvature=True).config_hash()


def test_truncated_cg_solves_a_positive_definite_system():
    problem = Quadratic([1.0, 2.0, 5.0, 9.0])
    b = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    x, phi, products = conjugate_gradient(lambda v: problem.matrix @ v, b, max_iters=10, tol=1e-12)
    assert torch.allclose(problem.matrix @ x, b, atol=1e-9) and products <= 5
    assert phi == pytest.approx(float(-0.5 * b @ x))


def _final_loss(strategy, budget, **extra):
    config = RunConfig(
        strategy=strategy, dataset="digits", train_size=400, hidden=(16,), steps=budget, eval_every=budget, **extra
    )
    result = run(config)
    assert result.status == "FINISHED", result.reason
    return result.final["train_loss"], result.final["gradient_equivalents"]


@pytest.mark.parametrize(
    "strategy, steps, options", [("newton_cg", 12, {"curvature_batch": 100, "cg_iters": 10}), ("lbfgs", 40, {})]
)
def test_second_order_beats_gd_at_equal_gradient_equivalents(strategy, steps, options):
    loss, cost = _final_loss(strategy, steps, options=options)
    gd_steps = math.ceil(cost)  # full-batch gd: one gradient-equivalent per step
    best_gd = min(_final_loss("gd", gd_steps, lr=lr)[0] for lr in (0.5, 2.0, 8.0))
    assert loss < 0.5 * best_gd, (strategy, loss, cost, best_gd)


def test_kfac_factors_match_their_definitions_on_a_tiny_net():
    problem = tiny(hidden=(3,), train_size=7)
    net, w = problem.network, problem.init_params(0)
    batch = problem.batch()
    inputs, deltas, logits = layer_statistics(net, w, batch.x, batch.y, "cross_entropy")
    assert torch.allclose(logits, net.forward(w, batch.x))
    (w1, b1), (w2, b2) = net.unflatten(w)
    ones = torch.ones(7, 1, dtype=torch.float64)
    hidden = torch.sigmoid(batch.x @ w1.T + b1)
    a1, a2 = torch.cat([batch.x, ones], 1), torch.cat([hidden, ones], 1)
    delta2 = torch.softmax(logits, -1) - torch.nn.functional.one_hot(batch.y, 10)  # dCE/dlogits per sample
    factors_a, factors_g = kronecker_factors(inputs, deltas)
    assert torch.allclose(factors_a[0], a1.T @ a1 / 7) and torch.allclose(factors_a[1], a2.T @ a2 / 7)
    assert torch.allclose(factors_g[1], delta2.T @ delta2 / 7)
    # the hidden layer's deltas: sum_i delta_i a_i^T / n must be the gradient of the mean loss
    grad = problem.loss_and_grad(w, batch)[1]
    (g1, gb1), _ = net.unflatten(grad)
    layer_grad = deltas[0].T @ a1 / 7
    assert torch.allclose(layer_grad, torch.cat([g1, gb1.unsqueeze(1)], 1))
    # the damped inverse of A (x) G is the Kronecker product of the factors' damped inverses
    a_inv, g_inv = damped_inverses(factors_a[1], factors_g[1], 0.1)
    pi = math.sqrt((torch.trace(factors_a[1]) / 4) / (torch.trace(factors_g[1]) / 10))
    expected = torch.kron(
        factors_a[1] + math.sqrt(0.1) / pi * torch.eye(4, dtype=torch.float64),
        factors_g[1] + math.sqrt(0.1) * pi * torch.eye(10, dtype=torch.float64),
    )
    assert torch.allclose(torch.kron(a_inv, g_inv), torch.linalg.inv(expected), atol=1e-8)


def test_kfac_and_newton_cg_train_a_small_net():
    for strategy, steps in (("kfac", 60), ("newton_cg", 5)):
        result = run(RunConfig(strategy=strategy, dataset="digits", hidden=(16,), steps=steps, eval_every=steps))
        assert result.status == "FINISHED", result.reason
        assert result.final["train_loss"] < 0.5 * result.history[0]["train_loss"], strategy
        assert result.counters["gradient_evals"] > 0


def test_curvature_and_line_search_work_is_counted():
    prep = prepare(
        RunConfig(
            strategy="newton_cg",
            dataset="digits",
            train_size=200,
            hidden=(8,),
            dtype="float64",
            options={"curvature_batch": 50},
        )
    )
    problem = prep.problem
    strategy = prep.strategy_cls(problem, problem.init_params(0), prep.config, prep.plan)
    observed = [strategy.step() for _ in range(2)]  # the second CG starts warm: one more product
    c = problem.counters
    assert c.gradient_evals == 2 and c.curvature_products == sum(o["cg_products"] for o in observed) >= 2
    assert c.curvature_samples == 50 * c.curvature_products
    line_search_samples = c.samples_seen - c.gradient_samples - c.curvature_samples
    assert line_search_samples == 200 * (c.function_evals - 2) > 0
    expected = (2 * 200 + line_search_samples / 3 + 2 * c.curvature_samples) / 200
    assert c.gradient_equivalents(200) == pytest.approx(expected)


def test_lbfgs_counts_each_distinct_evaluation_once():
    prep = prepare(RunConfig(strategy="lbfgs", dataset="rosenbrock", dtype="float64"))
    problem = prep.problem
    strategy = prep.strategy_cls(problem, problem.init_params(0), prep.config, prep.plan)
    points = []
    original = problem.loss_and_grad
    problem.loss_and_grad = lambda w, batch=None: (points.append(w.clone()), original(w, batch))[1]
    for _ in range(10):
        strategy.step()
    assert problem.counters.function_evals == problem.counters.gradient_evals == len(points) > 10
    assert all(not torch.equal(a, b) for a, b in zip(points, points[1:]))  # the restart evaluation is cached
    assert float(problem.objective(strategy.params())) < 4.0  # from 24.2


@pytest.mark.parametrize(
    "options, message",
    [({"curvature": "fisher"}, "curvature"), ({"cg_iters": 0}, "cg_iters"), ({"cg_decay": 1.0}, "cg_decay")],
)
def test_bad_newton_cg_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        prepare(RunConfig(strategy="newton_cg", dataset="digits", options=options))


def test_schedules_are_refused_where_a_line_search_sets_the_step_and_applied_by_kfac():
    with pytest.raises(ConfigError, match="schedule 'cosine'"):
        prepare(RunConfig(strategy="lbfgs", dataset="digits", schedule="cosine", steps=10))
    prep = prepare(RunConfig(strategy="kfac", dataset="digits", schedule="cosine", steps=20))
    strategy = prep.strategy_cls(prep.problem, prep.problem.init_params(0), prep.config, prep.plan)
    lrs = [strategy.step()["lr"] for _ in range(20)]
    assert lrs[0] == 0.1 and lrs[-1] < 0.01 and strategy.lr < lrs[-1]


def test_network_only_strategies_refuse_test_functions():
    with pytest.raises(ConfigError, match="kfac needs a network"):
        prepare(RunConfig(strategy="kfac", dataset="ravine"))
    with pytest.raises(ConfigError, match="curvature=hessian"):
        prepare(RunConfig(strategy="newton_cg", dataset="ravine", options={"curvature": "gauss_newton"}))
