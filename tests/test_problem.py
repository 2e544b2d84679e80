import torch

from optlab.config import RunConfig
from optlab.problem import NetworkProblem, NetworkSpec, build_problem, load_dataset
from optlab.problem.test_functions import TestFunctionProblem


def test_reference_network_has_13002_parameters():
    problem = build_problem(RunConfig())
    assert problem.n_params == 13_002
    assert problem.init_params(0).shape == (13_002,)
    assert NetworkSpec(784, (16, 16), 10).n_params == 784 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10


def test_gradient_matches_central_finite_differences_in_float64():
    data = load_dataset("digits", train_size=40)
    for cost in ("mse", "cross_entropy"):
        problem = NetworkProblem(data, NetworkSpec(64, (5, 4), 10, "tanh"), cost, dtype=torch.float64)
        w = problem.init_params(3)
        _, grad = problem.loss_and_grad(w)
        eps = 1e-6
        numeric = torch.empty_like(w)
        for i in range(w.numel()):
            step = torch.zeros_like(w)
            step[i] = eps
            numeric[i] = (
                problem.objective(w + step, problem.batch()) - problem.objective(w - step, problem.batch())
            ) / (2 * eps)
        assert torch.allclose(grad, numeric, rtol=1e-6, atol=1e-8), cost


def test_counters_track_evaluations_gradients_and_samples():
    problem = build_problem(RunConfig(dataset="digits"))
    w = problem.init_params(0)
    batch = problem.batch(torch.arange(10))
    problem.loss(w, batch)
    problem.loss_and_grad(w, batch)
    problem.losses(torch.stack([w, w, w]), batch)
    c = problem.counters
    assert (c.function_evals, c.gradient_evals, c.samples_seen) == (5, 1, 50)
    # a gradient costs 1 unit per sample, a forward pass 1/3: (10 + 40/3) / n_train
    assert abs(c.gradient_equivalents(problem.n_train) - (10 + 40 / 3) / problem.n_train) < 1e-12


def test_batched_losses_equal_one_at_a_time():
    problem = build_problem(RunConfig(dataset="digits", dtype="float64"))
    ws = torch.stack([problem.init_params(s) for s in range(4)])
    together = problem.losses(ws)
    alone = torch.stack([problem.objective(w, problem.batch()) for w in ws])
    assert torch.allclose(together, alone, rtol=1e-12)


def test_mse_is_sum_of_squared_differences_to_one_hot():
    problem = build_problem(RunConfig(dataset="digits", cost="mse", dtype="float64"))
    w = problem.init_params(0)
    x, y = problem.dataset.x_train[:7], problem.dataset.y_train[:7]
    out = torch.sigmoid(problem.network.forward(w, x))
    expected = ((out - torch.nn.functional.one_hot(y, 10)) ** 2).sum(dim=1).mean()
    assert torch.allclose(problem.objective(w, problem.batch(torch.arange(7))), expected)


def test_init_schemes_scale_with_fan_in_and_zero_init_is_symmetric():
    spec = NetworkSpec(784, (16, 16), 10, init="fan_in_normal")
    first_weight = spec.unflatten(spec.init_params(0))[0][0]
    assert abs(first_weight.std().item() - 784**-0.5) < 0.003
    zeros = NetworkSpec(init="zeros").init_params(0)
    assert torch.count_nonzero(zeros) == 0


def test_2d_test_functions_share_the_problem_interface():
    for name, minimum in (("ravine", (0.0, 0.0)), ("rosenbrock", (1.0, 1.0))):
        problem = TestFunctionProblem(name)
        assert problem.n_params == 2
        assert problem.objective(torch.tensor(minimum, dtype=torch.float64)) == 0
        value, grad = problem.loss_and_grad(problem.init_params(0))
        assert value > 0 and grad.shape == (2,)
    rosen = TestFunctionProblem("rosenbrock")
    _, grad = rosen.loss_and_grad(torch.tensor([-1.2, 1.0], dtype=torch.float64))
    # analytic gradient of Rosenbrock at (-1.2, 1)
    assert torch.allclose(grad, torch.tensor([-215.6, -88.0], dtype=torch.float64))
