"""Curvature over training: the loss Hessian's top eigenvalue (sharpness) and its trace.

Sharpness is the *largest* eigenvalue (not the largest in magnitude: early in training a negative
one can be larger in magnitude), the quantity that decides whether full-batch gradient descent with
step eta is stable on the local quadratic (eta < 2 / lambda_max; Cohen et al. 2021). It is computed
by Lanczos iteration (scipy's ARPACK `eigsh`, which="LA") on exact Hessian-vector products over the
whole training set, started from the previous measurement's eigenvector, so a run measured every few
steps needs a few products per point. The trace is Hutchinson's estimate with a fixed set of
Rademacher probes (the same at every point, so a curve over training is not jittered by fresh draws),
or exact (products with every basis vector) when the dimension is no larger than the probe count.
A problem of at most DENSE_LIMIT parameters gets its exact Hessian and eigenvalues instead.
"""

from __future__ import annotations

import numpy as np
import torch

from optlab.problem.problem import Problem
from optlab.strategies.second_order.curvature import hessian_matrix, hessian_operator, hutchinson_trace

DENSE_LIMIT = 64  # parameters up to which the Hessian is formed and diagonalized exactly
TRACE_PROBES = 16  # Rademacher probes of the trace estimate
LANCZOS_TOL = 1e-3  # relative accuracy of the top eigenvalue
LANCZOS_VECTORS = 12  # Lanczos basis size (ARPACK's ncv)


def top_eigenvalue(
    operator, dim: int, dtype, device, start: np.ndarray | None = None, tol: float = LANCZOS_TOL, seed: int = 0
) -> tuple[float, np.ndarray, int]:
    """(largest eigenvalue, its unit eigenvector, products used) of the symmetric operator v -> A v,
    by Lanczos from `start` (a seeded random vector when None)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    used = 0

    def product(v: np.ndarray) -> np.ndarray:
        nonlocal used
        used += 1
        vector = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64).ravel()).to(dtype=dtype, device=device)
        return operator(vector).to(torch.float64).cpu().numpy()

    if start is None:
        start = np.random.default_rng(seed).standard_normal(dim)
    matrix = LinearOperator((dim, dim), matvec=product, dtype=np.float64)
    values, vectors = eigsh(matrix, k=1, which="LA", v0=start, tol=tol, ncv=min(dim, LANCZOS_VECTORS))
    return float(values[0]), vectors[:, 0], used


def exact_trace(operator, dim: int, dtype, device) -> float:
    """tr(A) as the sum of e_j^T A e_j over the basis vectors (dim products)."""
    eye = torch.eye(dim, dtype=dtype, device=device)
    return float(sum(float(operator(eye[j])[j]) for j in range(dim)))


class Sharpness:
    """Top Hessian eigenvalue and trace of the training loss, measured repeatedly along one run
    (keeps the last eigenvector as the next start)."""

    def __init__(self, probes: int = TRACE_PROBES, seed: int = 0):
        self.probes, self.seed = probes, seed
        self.vector: np.ndarray | None = None

    def measure(self, problem: Problem, w: torch.Tensor) -> dict[str, float]:
        batch = problem.batch()
        dim = w.numel()
        if dim <= DENSE_LIMIT:
            hessian = hessian_matrix(problem, w, batch).to(torch.float64)
            return {"sharpness": float(torch.linalg.eigvalsh(hessian)[-1]), "hessian_trace": float(hessian.trace())}
        operator = hessian_operator(problem, w, batch)
        top, self.vector, _ = top_eigenvalue(operator, dim, w.dtype, w.device, self.vector, seed=self.seed)
        if dim <= self.probes:
            trace = exact_trace(operator, dim, w.dtype, w.device)
        else:
            trace = hutchinson_trace(operator, dim, samples=self.probes, seed=self.seed, dtype=w.dtype, device=w.device)
        return {"sharpness": top, "hessian_trace": trace}
