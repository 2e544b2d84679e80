"""2-D test functions behind the Problem interface, so optimizer trajectories can be drawn.

- ravine: an elongated quadratic valley, f = 0.5 (x^2 + kappa y^2), condition number kappa = 50;
- rosenbrock: f = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1);
- golf: a flat "golf course" with a narrow hole, where gradients carry almost no information.
"""

from __future__ import annotations

import torch

from optlab.problem.problem import SPLITS, Batch, Problem


def ravine(w: torch.Tensor) -> torch.Tensor:
    return 0.5 * (w[..., 0] ** 2 + 50.0 * w[..., 1] ** 2)


def rosenbrock(w: torch.Tensor) -> torch.Tensor:
    return (1 - w[..., 0]) ** 2 + 100.0 * (w[..., 1] - w[..., 0] ** 2) ** 2


def golf(w: torch.Tensor) -> torch.Tensor:
    r2 = (w[..., 0] - 1.0) ** 2 + (w[..., 1] - 1.0) ** 2
    return 1.0 - torch.exp(-r2 / 0.02)


TEST_FUNCTIONS = {
    "ravine": ("elongated quadratic ravine 0.5(x^2 + 50 y^2), minimum 0 at (0, 0)", ravine, (-4.0, 1.0), (0.0, 0.0)),
    "rosenbrock": ("Rosenbrock's banana valley, minimum 0 at (1, 1)", rosenbrock, (-1.2, 1.0), (1.0, 1.0)),
    "golf": (
        "flat golf course with one narrow hole at (1, 1): gradients vanish away from it",
        golf,
        (-1.0, -0.5),
        (1.0, 1.0),
    ),
}


class TestFunctionProblem(Problem):
    """A deterministic function of 2 parameters; seed 0 starts at the classic point, others jitter it."""

    __test__ = False  # not a pytest class
    has_accuracy = False

    def __init__(self, name: str, dtype=torch.float64, device=None):
        super().__init__()
        self.name = name
        self.description, self.function, self.start, self.minimum = TEST_FUNCTIONS[name]
        self.n_params, self.n_train = 2, 1
        self.dtype, self.device = dtype, device

    def init_params(self, seed: int) -> torch.Tensor:
        start = torch.tensor(self.start, dtype=torch.float64)
        if seed:
            start = start + 0.1 * torch.randn(2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        return start.to(dtype=self.dtype, device=self.device)

    def sampler(self, batch_size: int, seed: int, order: str = "shuffled"):
        return None

    def objective(self, w: torch.Tensor, batch: Batch | None = None) -> torch.Tensor:
        return self.function(w)

    def objective_many(self, ws: torch.Tensor, batch: Batch | None = None) -> torch.Tensor:
        return self.function(ws)

    def evaluate(self, w: torch.Tensor, splits: tuple[str, ...] = SPLITS) -> dict[str, float]:
        """The function's value, whatever the splits: a test function has no data to split (and no
        validation set), so every evaluation point measures it."""
        with torch.no_grad():
            return {"train_loss": float(self.function(w))}
