"""Curvature of L(w) as matrix-free products, and probes built on them.

- `hessian_operator`: v -> H v, reverse-over-reverse through one recorded gradient graph;
- `gauss_newton_operator`: v -> J^T H_out J v (Martens 2010; Schraudolph 2002), where J is the Jacobian
  of the network's outputs and H_out the Hessian of the cost with respect to those outputs. The split
  is the "matching" one, so H_out is positive semi-definite and so is the product: softmax
  cross-entropy on the logits; for `mse` the sum of squared differences on the sigmoid outputs;
- `power_iteration` (top eigenvalue) and `hutchinson_trace` (trace, Rademacher probes) on any operator;
- `probe_curvature`: both, on the loss Hessian over the training set: sharpness (Keskar et al. 2017).

Both reuse one autograd graph per (point, batch), as CG calls them many times at one point: on
mnist5k (1,000 samples, 1 thread) torch.func's jvp(grad) took 14.6 ms per product against 3.3 ms.
Operators are uncounted; strategies wrap them with `counted` so every product lands in the
problem's Counters (one product = one `count_curvature` on its batch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from optlab.errors import ConfigError
from optlab.problem.problem import Batch, Problem

Operator = Callable[[torch.Tensor], torch.Tensor]


def hessian_operator(problem: Problem, w: torch.Tensor, batch: Batch | None) -> Operator:
    """v -> H(w) v of the batch loss, exact: the gradient's graph is recorded once, each product
    is one more backward pass through it (reverse-over-reverse, Pearlmutter 1994)."""
    with torch.enable_grad():
        point = w.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(problem.objective(point, batch), point, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            (hv,) = torch.autograd.grad(gradient, point, v.to(w.dtype), retain_graph=True, allow_unused=True)
        return hv.detach() if hv is not None else torch.zeros_like(point)

    return product


def hessian_matrix(problem: Problem, w: torch.Tensor, batch: Batch | None, chunk: int = 128) -> torch.Tensor:
    """The d x d Hessian as d products with the basis vectors, `chunk` of them per batched backward
    pass (memory ~ chunk x batch x width, where torch.func.hessian vmaps over all d at once)."""
    with torch.enable_grad():
        point = w.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(problem.objective(point, batch), point, create_graph=True)
        eye = torch.eye(w.numel(), dtype=w.dtype, device=w.device)
        rows = [
            torch.autograd.grad(gradient, point, eye[i : i + chunk], retain_graph=True, is_grads_batched=True)[0]
            for i in range(0, w.numel(), chunk)
        ]
    h = torch.cat(rows).detach()
    return 0.5 * (h + h.T)


def _output_split(problem: Problem):
    """(outputs(w, x), cost-Hessian-product(outputs, labels, u)) for the matching-loss split."""
    network, cost = getattr(problem, "network", None), getattr(problem, "cost_name", None)
    if network is None:
        raise ConfigError(
            f"the Gauss-Newton product needs a network problem, not {problem.name!r}; use curvature='hessian'"
        )
    if cost == "cross_entropy":

        def outputs(w, x):
            return network.forward(w, x)

        def output_hessian(z, labels, u):
            # Hessian of mean_i CE(z_i) is blockdiag(diag(p_i) - p_i p_i^T) / n
            p = torch.softmax(z, dim=-1)
            return (p * u - p * (p * u).sum(dim=-1, keepdim=True)) / z.shape[0]
    elif cost == "mse":

        def outputs(w, x):
            return torch.sigmoid(network.forward(w, x))

        def output_hessian(z, labels, u):
            # mean_i sum_k (o_ik - t_ik)^2 has Hessian 2 I / n in the outputs o
            return 2.0 * u / z.shape[0]
    else:
        raise ConfigError(f"no Gauss-Newton split for cost {cost!r}")
    return outputs, output_hessian


def gauss_newton_operator(problem: Problem, w: torch.Tensor, batch: Batch) -> Operator:
    """v -> J^T H_out J v at w on `batch`. The outputs' graph is recorded once; J v comes from
    differentiating the vjp u -> J^T u with respect to u (the "double-vjp" R-operator), J^T (H_out J v)
    from one more vjp, so a product costs about two backward passes and no forward pass."""
    outputs, output_hessian = _output_split(problem)
    with torch.enable_grad():
        point = w.detach().requires_grad_(True)
        z = outputs(point, batch.x)
        dummy = torch.zeros_like(z, requires_grad=True)
        (transposed,) = torch.autograd.grad(z, point, dummy, create_graph=True)  # J^T dummy, linear in dummy
    z_value = z.detach()

    def product(v: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            (jv,) = torch.autograd.grad(transposed, dummy, v.to(w.dtype), retain_graph=True)
            (gv,) = torch.autograd.grad(z, point, output_hessian(z_value, batch.y, jv.detach()), retain_graph=True)
        return gv.detach()

    return product


def counted(problem: Problem, batch: Batch | None, operator: Operator) -> Operator:
    """The same operator, each product recorded as one curvature product on `batch`."""

    def product(v: torch.Tensor) -> torch.Tensor:
        problem.count_curvature(batch, 1)
        return operator(v)

    return product


def make_operator(kind: str, problem: Problem, w: torch.Tensor, batch: Batch | None) -> Operator:
    if kind == "hessian":
        return hessian_operator(problem, w, batch)
    if kind == "gauss_newton":
        return gauss_newton_operator(problem, w, batch if batch is not None else problem.data_batch())
    raise ConfigError(f"unknown curvature {kind!r}; choose from gauss_newton, hessian")


def power_iteration(
    operator: Operator, dim: int, iters: int = 50, tol: float = 1e-4, seed: int = 0, dtype=torch.float32, device=None
) -> tuple[float, int]:
    """The eigenvalue of largest magnitude (the Rayleigh quotient at convergence) and the products used."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(dim, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    v = v / v.norm()
    eigenvalue, used = 0.0, 0
    for _ in range(iters):
        hv = operator(v)
        used += 1
        new = float(torch.dot(v, hv))
        norm = hv.norm()
        if not torch.isfinite(norm) or norm == 0:
            return new, used
        v = hv / norm
        if used > 1 and abs(new - eigenvalue) <= tol * max(abs(new), 1e-12):
            return new, used
        eigenvalue = new
    return eigenvalue, used


def hutchinson_trace(
    operator: Operator, dim: int, samples: int = 30, seed: int = 0, dtype=torch.float32, device=None
) -> float:
    """tr(A) ~ mean_k z_k^T A z_k with Rademacher z_k (Hutchinson 1989): unbiased, variance 2 sum_{i!=j} A_ij^2."""
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(samples):
        z = (torch.randint(0, 2, (dim,), generator=gen, dtype=torch.float64) * 2 - 1).to(dtype=dtype, device=device)
        total += float(torch.dot(z, operator(z)))
    return total / samples


def probe_curvature(
    problem: Problem, w: torch.Tensor, batch: Batch | None = None, iters: int = 50, samples: int = 30, seed: int = 0
) -> dict[str, float]:
    """Top Hessian eigenvalue and Hessian trace of the loss at w (whole training set unless `batch`).
    A measurement, like evaluation: not counted as work done by the strategy."""
    batch = batch if batch is not None else problem.batch()
    operator = hessian_operator(problem, w, batch)
    top, used = power_iteration(operator, w.numel(), iters=iters, seed=seed, dtype=w.dtype, device=w.device)
    trace = hutchinson_trace(operator, w.numel(), samples=samples, seed=seed, dtype=w.dtype, device=w.device)
    return {"hessian_top_eigenvalue": top, "hessian_trace": trace, "hessian_probe_products": used + samples}


def conjugate_gradient(
    operator: Operator,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    max_iters: int = 50,
    tol: float = 1e-4,
    progress_eps: float = 5e-4,
    affordable=None,
):
    """Truncated CG for A x = b, i.e. minimizing phi(x) = x^T A x / 2 - b^T x (Martens 2010, sec. 4.4).

    Stops after `max_iters`, at relative residual `tol`, when the decrease of phi over the last
    k = max(10, i/10) iterations is below k * progress_eps of phi (Martens' criterion), or at a
    direction of non-positive curvature (possible with the Hessian).
    `affordable()`, when given, is asked before each product but the first (the run's budget): the warm
    start is dropped and the iterations stop when it says no.
    Returns (x, phi(x), products): products counts operator calls, the warm start's residual included.
    """
    affordable = affordable or (lambda: True)
    warm = x0 is not None and bool(x0.abs().sum() > 0) and affordable()
    x = x0.clone() if x0 is not None and warm else torch.zeros_like(b)
    r = b - operator(x) if warm else b.clone()
    used = int(warm)
    d = r.clone()
    rr = torch.dot(r, r)
    b_norm = b.norm()
    phis = [float(-0.5 * torch.dot(x, b + r))]
    for i in range(1, max_iters + 1):
        if i > 1 and not affordable():
            break
        ad = operator(d)
        used += 1
        curvature = torch.dot(d, ad)
        if curvature <= 0:
            if i == 1 and not warm:  # no usable curvature along b: fall back to x = b (a gradient step)
                return b.clone(), float(0.5 * curvature - rr), used
            break
        alpha = rr / curvature
        x = x + alpha * d
        r = r - alpha * ad
        rr_new = torch.dot(r, r)
        phis.append(float(-0.5 * torch.dot(x, b + r)))
        if rr_new.sqrt() <= tol * b_norm:
            break
        k = max(10, i // 10)
        if i > k and phis[-1] < 0 and (phis[-1] - phis[-1 - k]) / phis[-1] < k * progress_eps:
            break
        d = r + (rr_new / rr) * d
        rr = rr_new
    phi = float(-0.5 * torch.dot(x, b + r))
    return x, phi, used
