"""Section 6: optimizer trajectories over the contours of 2-D test functions, computed live.

Each strategy runs through the real Strategy interface on the TestFunctionProblem (cheap: 2 parameters).
SGD has no data to sample on a test function, so its gradient is taken at a randomly jittered point
(sigma below), which mimics mini-batch noise. `newton` and Nevergrad (`ng:NAME`) come from the registry
when those strategies are installed; without `newton` the exact Newton step is computed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from matplotlib.colors import LogNorm

from optlab.errors import OptlabError
from optlab.reports import style
from optlab.reports.model import Figure, Note, Section

if TYPE_CHECKING:
    from optlab.problem import Problem

TITLE = "Landscapes"
SGD_NOISE = {"ravine": 0.04, "rosenbrock": 0.05}
# (strategy, settings) per function: learning rates chosen so each method is stable and visible
PLANS: dict[str, dict[str, Any]] = {
    "ravine": {
        "steps": 120,
        "extent": ((-4.5, 1.5), (-1.5, 1.5)),
        "runs": [
            ("gd", {"lr": 0.036}),
            ("sgd", {"lr": 0.02}),
            ("momentum", {"lr": 0.01, "momentum": 0.9}),
            ("adam", {"lr": 0.15}),
            ("newton", {}),
            ("ng:OnePlusOne", {}),
        ],
    },
    "rosenbrock": {
        "steps": 1500,
        "extent": ((-1.6, 1.6), (-0.6, 1.6)),
        "runs": [
            ("gd", {"lr": 0.001}),
            ("sgd", {"lr": 0.0008}),
            ("momentum", {"lr": 0.0003, "momentum": 0.9}),
            ("adam", {"lr": 0.05}),
            ("newton", {}),
            ("ng:OnePlusOne", {}),
        ],
    },
}


CORE = ("gd", "sgd", "momentum", "adam")  # foundation strategies: their errors are bugs, not skips


class _JitteredProblem:
    """Wraps a test-function problem so gradients are taken at w + N(0, sigma^2): a noisy gradient."""

    def __init__(self, problem, sigma: float, seed: int = 0):
        self._problem, self.sigma = problem, sigma
        self.gen = torch.Generator().manual_seed(seed)

    def __getattr__(self, name):
        return getattr(self._problem, name)

    def loss_and_grad(self, w, batch=None):
        shift = self.sigma * torch.randn(w.shape, generator=self.gen, dtype=w.dtype)
        return self._problem.loss_and_grad(w + shift, batch)


def trajectory(function: str, strategy: str, settings: dict, steps: int) -> np.ndarray:
    from optlab.engine import prepare

    config = {"strategy": strategy, "dataset": function, "steps": steps, "dtype": "float64", **settings}
    prep = prepare(config)
    problem = prep.problem
    w0 = problem.init_params(0)
    # the jittered wrapper passes every other attribute through: to the strategy it is the problem
    solved = cast("Problem", _JitteredProblem(problem, SGD_NOISE[function])) if strategy == "sgd" else problem
    strat = prep.strategy_cls(solved, w0, prep.config, prep.plan)
    points = [w0.detach().clone()]
    for _ in range(prep.plan.max_steps or steps):
        strat.step()
        points.append(strat.params().detach().clone())
        if not torch.isfinite(points[-1]).all():
            break
    return _trim(torch.stack(points).cpu().numpy())


def _trim(path: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Drop the stationary tail (a converged Newton run), so the legend counts the steps that moved."""
    moved = np.flatnonzero(np.abs(np.diff(path, axis=0)).max(axis=1) > tol)
    return path[: moved[-1] + 2] if len(moved) else path[:1]


def exact_newton(function: str, steps: int = 30) -> np.ndarray:
    """Pure Newton: w <- w - H(w)^-1 grad f(w), with exact derivatives from torch autograd."""
    from optlab.problem.test_functions import TEST_FUNCTIONS

    f = TEST_FUNCTIONS[function][1]
    w = torch.tensor(TEST_FUNCTIONS[function][2], dtype=torch.float64)
    points = [w.clone()]
    for _ in range(steps):
        grad = torch.autograd.functional.jacobian(f, w)
        hess = torch.autograd.functional.hessian(f, w)
        w = w - torch.linalg.solve(hess, grad)
        points.append(w.clone())
        if grad.norm() < 1e-12:
            break
    return torch.stack(points).numpy()


def build(store=None) -> Section:
    from optlab.problem.test_functions import TEST_FUNCTIONS

    section = Section(
        6,
        TITLE,
        "Trajectories of gradient descent, SGD, momentum, Adam, Newton and a Nevergrad "
        "optimizer on an elongated quadratic ravine (condition number 50) and on Rosenbrock's "
        "banana valley, over log-spaced contours; computed live when the report is built.",
    )
    notes = []
    fig, axes = style.figure(1, len(PLANS), width=6.2, height=4.8)
    for ax, (function, plan) in zip(axes[0], PLANS.items()):
        f = TEST_FUNCTIONS[function][1]
        (x0, x1), (y0, y1) = plan["extent"]
        xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        zs = f(torch.from_numpy(np.stack([xs, ys], axis=-1))).numpy()
        levels = np.geomspace(max(zs.min(), 1e-3), zs.max(), 18)
        ax.contourf(xs, ys, zs, levels=levels, cmap="Blues_r", alpha=0.25, norm=LogNorm())
        ax.contour(xs, ys, zs, levels=levels, colors="grey", linewidths=0.5, alpha=0.7)
        for i, (strategy, settings) in enumerate(plan["runs"]):
            label = strategy
            try:
                path = trajectory(function, strategy, settings, plan["steps"])
            except Exception as exc:  # strategies written elsewhere: a failure skips one curve, not the section
                if not isinstance(exc, OptlabError) and strategy in CORE:
                    raise
                if strategy == "newton":
                    path, label = exact_newton(function), "newton (exact step, computed here)"
                    notes.append(
                        "Strategy 'newton' is not registered in this build: the exact Newton step "
                        "w ← w − H⁻¹∇f was computed here instead."
                    )
                else:
                    reason = (
                        "not registered in this build"
                        if "unknown strategy" in str(exc)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    notes.append(f"Strategy {strategy!r} skipped on {function}: {reason}.")
                    continue
            path = path[np.isfinite(path).all(axis=1)]
            settings_text = ", ".join(f"{k}={v:g}" for k, v in settings.items())
            ax.plot(
                path[:, 0],
                path[:, 1],
                "-",
                lw=1.2,
                color=f"C{i}",
                alpha=0.9,
                marker="." if len(path) < 60 else None,
                ms=3,
                label=f"{label}" + (f" ({settings_text})" if settings_text else "") + f", {len(path) - 1} steps",
            )
        start, minimum = TEST_FUNCTIONS[function][2], TEST_FUNCTIONS[function][3]
        ax.plot(*start, "ko", ms=5)
        ax.plot(*minimum, "*", color="gold", ms=13, markeredgecolor="black")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(f"{function}: {TEST_FUNCTIONS[function][0]}", fontsize=8)
        ax.set_xlabel("w1")
        ax.set_ylabel("w2")
        ax.legend(loc="lower right" if function == "ravine" else "lower left", fontsize=6.5)
    fig.tight_layout()
    section.add(
        Figure(
            fig,
            "Trajectories from the classic start (black dot) to the minimum (star), seed 0, computed "
            "live from optlab's strategies (no MLflow runs). SGD's gradient is taken at a point "
            f"jittered by N(0, σ²) (σ = {SGD_NOISE['ravine']} on the ravine, "
            f"{SGD_NOISE['rosenbrock']} on Rosenbrock) to mimic mini-batch noise. The Nevergrad "
            "curve is its recommendation after each ask/tell step.",
        )
    )
    for note in dict.fromkeys(notes):
        section.add(Note(note, kind="info"))
    return section
