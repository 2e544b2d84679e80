"""Every diagnostic against ground truth: per-sample gradients by loops, the exact Hessian by
torch.autograd.functional.hessian, alpha on a quadratic in closed form, B_simple and GSNR on a synthetic
problem whose gradient covariance is known. Each check would fail on a factor of B (or n/(n-1)) or a sign."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from optlab.diagnostics.curvature import DENSE_LIMIT, Sharpness, top_eigenvalue
from optlab.diagnostics.gradients import gradient_noise, per_sample_gradients, sample_moments, subset
from optlab.diagnostics.step_quality import alpha_from_fit, fit_quadratic, step_alpha
from optlab.diagnostics.updates import layer_slices, update_metrics
from optlab.problem import NetworkProblem, NetworkSpec
from optlab.problem.data import Dataset
from optlab.problem.problem import Batch, Problem


def tiny_net(n=30, hidden=(7,), activation="tanh", cost="cross_entropy", seed=0) -> NetworkProblem:
    """6 inputs, 3 classes, float64: d = 73 for one hidden layer of 7 (above the dense limit)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    y[:3] = torch.arange(3)
    data = Dataset("tiny", x, y, x[:4], y[:4], x[:4], y[:4], 3, (2, 3))
    return NetworkProblem(data, NetworkSpec(6, hidden, 3, activation), cost, dtype=torch.float64)


def loop_gradients(problem: Problem, w: torch.Tensor) -> torch.Tensor:
    """(n, d) per-sample gradients, one autograd call per sample."""
    rows = []
    for i in range(problem.n_train):
        point = w.detach().clone().requires_grad_(True)
        loss = problem.objective(point, problem.batch(torch.tensor([i])))
        rows.append(torch.autograd.grad(loss, point)[0])
    return torch.stack(rows)


def truth(per_sample: torch.Tensor) -> dict[str, float]:
    """Population statistics over the n per-sample gradients (the training set is the population)."""
    g = per_sample.mean(dim=0)
    variance = ((per_sample - g) ** 2).mean(dim=0)  # 1/n: the population covariance's diagonal
    varying = variance > 1e-30
    return {
        "grad_norm": float(g.norm()),
        "trace_sigma": float(variance.sum()),
        "b_simple": float(variance.sum() / (g @ g)),
        "gsnr": float((g[varying] ** 2 / variance[varying]).mean()),
    }


class GaussianCloud(Problem):
    """L(w) = mean_i 1/2 (w - c_i)^T A (w - c_i): per-sample gradients A (w - c_i), so G = A (w - mu) and
    Sigma = A C A with C the points' population covariance, built here to be exactly `cov`."""

    has_accuracy = True

    def __init__(self, a: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, n: int = 40, seed: int = 0):
        super().__init__()
        d = a.shape[0]
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, d, generator=gen, dtype=torch.float64)
        z = z - z.mean(dim=0)
        whiten = torch.linalg.cholesky(z.T @ z / n)  # z^T z / n = L L^T
        z = z @ torch.linalg.inv(whiten).T  # now exactly z^T z / n = I, mean 0
        self.points = mean + z @ torch.linalg.cholesky(cov).T  # mean exactly mean, covariance exactly cov
        self.labels = torch.zeros(n, dtype=torch.long)
        self.a, self.n_params, self.n_train = a, d, n

    def batch(self, indices=None):
        if indices is None:
            return Batch(self.points, self.labels)
        return Batch(self.points[indices], self.labels[indices])

    def objective(self, w, batch):
        diff = w - batch.x
        return 0.5 * ((diff @ self.a) * diff).sum(dim=-1).mean()


def cloud(d=5, seed=3):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    a = q @ torch.diag(torch.linspace(0.5, 4.0, d, dtype=torch.float64)) @ q.T
    m = torch.randn(d, d, generator=gen, dtype=torch.float64)
    cov = m @ m.T / d + 0.1 * torch.eye(d, dtype=torch.float64)
    mean = torch.randn(d, generator=gen, dtype=torch.float64)
    return GaussianCloud(a, mean, cov), a, mean, cov


# ---- per-sample gradients and the noise statistics -------------------------------------------------


@pytest.mark.parametrize(
    "activation,cost,hidden",
    [("tanh", "cross_entropy", (7,)), ("sigmoid", "mse", (4, 3)), ("relu", "cross_entropy", (5,))],
)
def test_per_sample_gradients_equal_a_loop_of_autograd_calls(activation, cost, hidden):
    problem = tiny_net(activation=activation, cost=cost, hidden=hidden)
    w = problem.init_params(1)
    torch.testing.assert_close(per_sample_gradients(problem, w, problem.batch()), loop_gradients(problem, w))


@pytest.mark.parametrize("kernel,chunk", [("vmap", 7), ("vmap", 256), ("factored", 256), ("auto", 256)])
def test_gradient_noise_on_the_whole_training_set_is_the_population_statistics(kernel, chunk):
    problem = tiny_net()
    w = problem.init_params(2)
    expected = truth(loop_gradients(problem, w))
    measured = gradient_noise(problem, w, chunk=chunk, kernel=kernel)  # chunks of 7 exercise the exact merge
    assert measured.samples == measured.population == problem.n_train
    for key, value in expected.items():
        assert getattr(measured, key) == pytest.approx(value, rel=1e-9), key


def test_b_simple_and_gsnr_match_a_known_gradient_covariance():
    problem, a, mean, cov = cloud()
    w = torch.tensor([0.3, -1.0, 2.0, 0.5, 0.0], dtype=torch.float64)
    g = a @ (w - mean)
    sigma = a @ cov @ a
    measured = gradient_noise(problem, w)
    assert measured.grad_norm == pytest.approx(float(g.norm()), rel=1e-10)
    assert measured.trace_sigma == pytest.approx(float(sigma.trace()), rel=1e-10)
    assert measured.b_simple == pytest.approx(float(sigma.trace() / (g @ g)), rel=1e-10)
    assert measured.gsnr == pytest.approx(float((g**2 / sigma.diagonal()).mean()), rel=1e-10)
    # the defining property: E|g_B|^2 = |G|^2 + tr(Sigma)/B for batches of B drawn with replacement
    per_sample = loop_gradients(problem, w)
    batch = 4
    combos = itertools.product(range(problem.n_train), repeat=2)  # exact expectation for B = 2
    pairs = [float(((per_sample[i] + per_sample[j]) / 2).pow(2).sum()) for i, j in combos]
    assert np.mean(pairs) == pytest.approx(float(g @ g) + measured.trace_sigma / 2, rel=1e-10)
    assert measured.b_simple != pytest.approx(measured.b_simple * batch, rel=0.5)


def test_the_subset_estimate_is_unbiased_over_every_subset():
    problem = tiny_net(n=8)
    w = problem.init_params(0)
    exact = gradient_noise(problem, w)
    estimates = [gradient_noise(problem, w, torch.tensor(chosen)) for chosen in itertools.combinations(range(8), 3)]
    assert len(estimates) == 56 and all(e.samples == 3 and e.population == 8 for e in estimates)
    assert np.mean([e.trace_sigma for e in estimates]) == pytest.approx(exact.trace_sigma, rel=1e-9)
    assert np.mean([e.b_simple for e in estimates]) == pytest.approx(exact.b_simple, rel=1e-9)
    assert {e.grad_norm for e in estimates} == {exact.grad_norm}  # G is always the exact full gradient


def test_the_gsnr_of_a_subset_takes_signal_and_noise_from_the_same_samples():
    problem = tiny_net(n=30)
    w = problem.init_params(4)
    chosen = torch.tensor([1, 4, 5, 9, 13, 20, 22, 27])
    g = loop_gradients(problem, w)[chosen]
    n, m = problem.n_train, len(chosen)
    variance = ((g - g.mean(0)) ** 2).sum(0) * ((n - 1) / n / (m - 1))
    expected = float((g.mean(0) ** 2 / variance).mean())
    measured = gradient_noise(problem, w, chosen)
    assert measured.gsnr == pytest.approx(expected, rel=1e-9)
    assert measured.trace_sigma == pytest.approx(float(variance.sum()), rel=1e-9)


@pytest.mark.parametrize("kernel", ["vmap", "factored"])
def test_a_parameter_whose_gradient_never_varies_is_left_out_of_the_gsnr(kernel):
    problem = tiny_net(activation="relu", hidden=(5,))
    w = problem.init_params(0)
    w[:30] = 0.0  # first-layer weights zero: hidden units are 0, their weights' gradients too
    w[30:35] = -1.0  # negative biases: every ReLU is dead, their gradients are exactly 0
    measured = gradient_noise(problem, w, chunk=4, kernel=kernel)
    assert math.isfinite(measured.gsnr) and measured.gsnr == pytest.approx(
        truth(loop_gradients(problem, w))["gsnr"], rel=1e-9
    )


# vmap in float32 computes identical samples' gradients with different roundings (residues of 1e-18): only
# the factored kernel, which bounds its rounding, gives exactly 0 there
@pytest.mark.parametrize(
    "kernel,dtype", [("vmap", torch.float64), ("factored", torch.float64), ("factored", torch.float32)]
)
def test_samples_that_all_give_the_same_nonzero_gradient_have_variance_exactly_zero(kernel, dtype):
    problem = tiny_net(n=40, activation="sigmoid", cost="mse")
    data = problem.dataset
    x = data.x_train[5:6].repeat(40, 1)  # one sample forty times: every per-sample gradient is the same
    y = data.y_train[5:6].repeat(40)
    problem = NetworkProblem(
        Dataset("same", x, y, x[:4], y[:4], x[:4], y[:4], 3, (2, 3)), problem.network, "mse", dtype
    )
    w = problem.init_params(1)
    count, mean, m2 = sample_moments(problem, w, torch.arange(40), kernel=kernel)
    assert count == 40 and bool((mean != 0).all())
    assert bool((m2 == 0).all())  # not a rounding residue the GSNR would divide by
    measured = gradient_noise(problem, w, kernel=kernel)
    assert measured.trace_sigma == 0 and math.isnan(measured.gsnr)


@pytest.mark.parametrize(
    "activation,cost,hidden",
    [("tanh", "cross_entropy", (7,)), ("sigmoid", "mse", (4, 3)), ("relu", "cross_entropy", (5, 4))],
)
def test_the_factored_kernel_gives_the_per_sample_moments_of_the_reference_kernel(activation, cost, hidden):
    problem = tiny_net(n=60, activation=activation, cost=cost, hidden=hidden, seed=3)
    w = problem.init_params(5)
    chosen = subset(problem.n_train, 25, seed=2)
    reference = sample_moments(problem, w, chosen, chunk=6, kernel="vmap")
    factored = sample_moments(problem, w, chosen, kernel="factored")
    assert factored[0] == reference[0] == 25
    torch.testing.assert_close(factored[1], reference[1], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(factored[2], reference[2], rtol=1e-8, atol=1e-14)
    # and in float32 (the reference net's dtype), against float64 per-sample gradients by loops
    problem32 = NetworkProblem(problem.dataset, problem.network, cost, dtype=torch.float32)
    g = loop_gradients(problem, w)[chosen]
    count, mean, m2 = sample_moments(problem32, w.float(), chosen, kernel="factored")
    torch.testing.assert_close(mean, g.mean(0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(m2, ((g - g.mean(0)) ** 2).sum(0), rtol=1e-3, atol=1e-6)


class PenalizedNet(NetworkProblem):
    """A network whose objective adds a weight penalty: its per-sample gradients are not outer products."""

    def objective(self, w, batch):
        return super().objective(w, batch) + 0.1 * (w * w).sum() * batch.x[:, 0].mean()


def test_auto_uses_the_reference_kernel_for_any_other_objective_and_factored_refuses_it():
    base = tiny_net(n=20)
    problem = PenalizedNet(base.dataset, base.network, "cross_entropy", dtype=torch.float64)
    w = problem.init_params(0)
    expected = truth(loop_gradients(problem, w))
    measured = gradient_noise(problem, w)  # auto
    assert measured.trace_sigma == pytest.approx(expected["trace_sigma"], rel=1e-9)
    with pytest.raises(ValueError, match="factored kernel needs an optlab network problem, not PenalizedNet"):
        sample_moments(problem, w, torch.arange(20), kernel="factored")
    cloud_problem = cloud()[0]
    with pytest.raises(ValueError, match="not GaussianCloud"):
        sample_moments(cloud_problem, torch.zeros(5, dtype=torch.float64), torch.arange(5), kernel="factored")
    with pytest.raises(ValueError, match="unknown per-sample kernel 'fast'"):
        sample_moments(base, w, torch.arange(5), kernel="fast")


def test_subset_draws_distinct_indices_and_all_when_larger():
    chosen = subset(100, 30, seed=4)
    assert len(set(chosen.tolist())) == 30 and chosen.max() < 100
    assert torch.equal(subset(10, 30, seed=4), torch.arange(10))
    assert torch.equal(chosen, subset(100, 30, seed=4)) and not torch.equal(chosen, subset(100, 30, seed=5))


# ---- curvature ---------------------------------------------------------------------------------


def exact_hessian(problem: Problem, w: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.hessian(lambda v: problem.objective(v, problem.batch()), w.detach())


@pytest.mark.parametrize("activation,cost", [("tanh", "cross_entropy"), ("sigmoid", "mse")])
def test_sharpness_and_trace_match_the_exact_hessian(activation, cost):
    problem = tiny_net(activation=activation, cost=cost, hidden=(7,))
    w = problem.init_params(3)
    assert w.numel() > DENSE_LIMIT  # the Lanczos path, not the dense one
    hessian = exact_hessian(problem, w)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    exact = Sharpness(probes=w.numel()).measure(problem, w)  # probes >= d: the trace is exact
    assert exact["sharpness"] == pytest.approx(float(eigenvalues[-1]), rel=1e-6)
    assert exact["hessian_trace"] == pytest.approx(float(hessian.trace()), rel=1e-9)
    # the largest eigenvalue, not the largest in magnitude
    assert abs(float(eigenvalues[0])) != pytest.approx(exact["sharpness"])
    estimate = Sharpness(probes=2000).measure(problem, w)  # Hutchinson: unbiased, close with many probes
    assert estimate["hessian_trace"] == pytest.approx(float(hessian.trace()), rel=0.1)


def test_sharpness_is_the_largest_eigenvalue_when_a_negative_one_is_larger_in_magnitude():
    d = 80
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    values = torch.linspace(-5.0, 2.0, d, dtype=torch.float64)
    matrix = q @ torch.diag(values) @ q.T
    top, vector, used = top_eigenvalue(lambda v: matrix @ v, d, torch.float64, "cpu")
    assert top == pytest.approx(2.0, rel=1e-6) and used > 0
    assert abs(float(vector @ (q[:, -1].numpy()))) == pytest.approx(1.0, rel=1e-3)
    # a warm start from the eigenvector needs few products
    again, _, fewer = top_eigenvalue(lambda v: matrix @ v, d, torch.float64, "cpu", start=vector)
    assert again == pytest.approx(2.0, rel=1e-6) and fewer < used


def test_sharpness_of_a_quadratic_is_its_top_eigenvalue_on_the_dense_path():
    problem, a, _, _ = cloud()
    measured = Sharpness().measure(problem, torch.zeros(5, dtype=torch.float64))
    assert measured["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(a)[-1]), rel=1e-10)
    assert measured["hessian_trace"] == pytest.approx(float(a.trace()), rel=1e-10)


# ---- step quality alpha ------------------------------------------------------------------------


def test_alpha_follows_cockpits_scale_on_a_parabola():
    # q(tau) = (tau - 1)^2 observed at 0 and t: alpha = -1 at the start height, 0 at the minimum, +1 beyond
    def observe(t):
        return fit_quadratic(t, (1.0, (t - 1) ** 2), (-2.0, 2 * (t - 1)), (1e-3, 1e-3), (1e-3, 1e-3))

    assert alpha_from_fit(observe(1.0), 1.0) == pytest.approx(0.0, abs=1e-12)
    assert alpha_from_fit(observe(2.0), 2.0) == pytest.approx(1.0, abs=1e-12)
    assert alpha_from_fit(observe(0.5), 0.5) == pytest.approx(-0.5, abs=1e-12)
    assert alpha_from_fit(observe(3.0), 3.0) == pytest.approx(2.0, abs=1e-12)  # climbed above the start
    concave = fit_quadratic(1.0, (0.0, -1.0), (0.0, -2.0), (1.0, 1.0), (1.0, 1.0))
    assert math.isnan(alpha_from_fit(concave, 1.0))


@pytest.mark.parametrize("eta_times_lambda,expected", [(1.0, 0.0), (2.0, 1.0), (0.5, -0.5), (0.01, -0.99)])
def test_alpha_of_a_gradient_step_along_an_eigenvector_is_eta_lambda_minus_one(eta_times_lambda, expected):
    problem, a, mean, _ = cloud()
    values, vectors = torch.linalg.eigh(a)
    w0 = mean + 0.7 * vectors[:, -1]  # the gradient a (w0 - mean) points along the top eigenvector
    g = a @ (w0 - mean)
    w1 = w0 - (eta_times_lambda / float(values[-1])) * g
    assert step_alpha(problem, w0, w1) == pytest.approx(expected, abs=1e-9)


def test_alpha_of_any_step_on_a_quadratic_is_its_closed_form():
    problem, a, mean, _ = cloud()
    gen = torch.Generator().manual_seed(7)
    for _ in range(5):
        w0 = torch.randn(5, generator=gen, dtype=torch.float64)
        g = a @ (w0 - mean)
        step = -0.3 * g + 0.1 * torch.randn(5, generator=gen, dtype=torch.float64)  # not a pure gradient step
        closed = -float(step @ a @ step) / float(g @ step) - 1
        assert step_alpha(problem, w0, w0 + step) == pytest.approx(closed, rel=1e-9)


def test_alpha_on_a_network_equals_the_weighted_fit_of_exact_observations():
    problem = tiny_net(activation="sigmoid", cost="mse", hidden=(4,))
    w0 = problem.init_params(0)
    loss, g = problem.loss_and_grad(w0)
    w1 = w0 - 3.0 * g
    step = w1 - w0
    t = float(step.norm())
    u = step / t
    fs, dfs, fvar, dfvar = [], [], [], []
    for point in (w0, w1):
        per_sample = loop_gradients(problem, point)
        losses = torch.stack([problem.objective(point, problem.batch(torch.tensor([i]))) for i in range(30)])
        slopes = per_sample @ u
        fs.append(float(losses.mean())), dfs.append(float(slopes.mean()))
        fvar.append(float(losses.var()) / 30), dfvar.append(float(slopes.var()) / 30)
    design = np.array([[1, 0, 0], [1, t, t * t], [0, 1, 0], [0, 1, 2 * t]], dtype=float)
    weights = np.diag(1 / np.array(fvar + dfvar))
    c, b, a2 = np.linalg.solve(design.T @ weights @ design, design.T @ weights @ np.array(fs + dfs))
    expected = 2 * t / (-b / a2) - 1
    assert step_alpha(problem, w0, w1) == pytest.approx(expected, rel=1e-7)


# ---- the last updates --------------------------------------------------------------------------


def test_update_metrics_per_layer_cosine_and_distance():
    problem = tiny_net(hidden=(4, 3))
    layers = layer_slices(problem)
    pairs = problem.network.unflatten(torch.arange(problem.n_params, dtype=torch.float64))
    assert [name for name, _ in layers] == ["layer1", "layer2", "layer3"]
    for (_, part), (weight, bias) in zip(layers, pairs):  # each slice is exactly that layer's weights and bias
        assert torch.equal(
            torch.arange(problem.n_params, dtype=torch.float64)[part], torch.cat([weight.flatten(), bias])
        )
    w0 = problem.init_params(0)
    first, second = (
        torch.randn(problem.n_params, dtype=torch.float64),
        torch.randn(problem.n_params, dtype=torch.float64),
    )
    params = w0 + first + second
    metrics = update_metrics(params, (first, second), w0, layers)
    before = params - second
    for name, part in layers:
        assert metrics[f"update_ratio_{name}"] == pytest.approx(float(second[part].norm() / before[part].norm()))
    assert metrics["update_cosine"] == pytest.approx(float(first @ second / (first.norm() * second.norm())))
    assert update_metrics(params, (first, -first), w0, layers)["update_cosine"] == pytest.approx(-1.0)
    assert metrics["distance_from_init"] == pytest.approx(float((first + second).norm()))
    assert metrics["update_norm"] == pytest.approx(float(second.norm()))
    assert update_metrics(w0, (), w0, layers) == {"distance_from_init": 0.0}  # nothing else before a step
