"""`spsa`: two-sided simultaneous-perturbation gradient estimates driving a torch.optim update.

Each step draws q random directions z_i and, on one mini-batch, evaluates L(w + eps z_i) and
L(w - eps z_i) (2q function evaluations, no gradient). The estimate

    g = (1/q) sum_i (L(w + eps z_i) - L(w - eps z_i)) / (2 eps) * z_i

is an unbiased estimate (up to O(eps^2)) of the gradient of the smoothed loss. MeZO's seed trick
(Malladi et al., 2023): w is perturbed in place and z_i is regenerated from its seed when needed,
so no perturbation is ever stored; only the q projected derivatives and seeds are kept.
"""

from __future__ import annotations

import torch

from optlab.strategies.base import Option
from optlab.strategies.first_order import rules
from optlab.strategies.first_order.torch_optim import TorchOptimStrategy
from optlab.strategies.registry import register


@register
class SPSA(TorchOptimStrategy):
    name = "spsa"
    description = (
        "simultaneous perturbation: (L(w+eps z) - L(w-eps z)) / 2eps * z averaged over q random "
        "directions, MeZO seed trick, SGD update (2q evaluations per step)"
    )
    family = "zeroth-order"
    default_lr, default_batch_size, default_momentum, default_weight_decay = 0.05, 256, 0.0, 0.0
    rule = rules.SGD(momentum=True)
    options = {
        "q": Option(
            int, 1, "random directions averaged per step (2 function evaluations each)", at_least=1, at_most=100_000
        ),
        "eps": Option(float, 1e-3, "perturbation size", greater_than=0),
        "distribution": Option(
            str,
            "gaussian",
            "directions: gaussian (MeZO) | rademacher (Spall's +-1)",
            choices=("gaussian", "rademacher"),
        ),
    }

    @classmethod
    def evaluations_per_step(cls, config):
        return 2.0 * cls.resolve_options(config)["q"]

    @classmethod
    def samples_per_step(cls, config, batch_size, problem):
        return (batch_size if batch_size is not None else problem.n_train) * cls.evaluations_per_step(config)

    @classmethod
    def whole_step_evaluations(cls, config, problem):
        return int(cls.evaluations_per_step(config))

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.seeds = torch.Generator().manual_seed(config.seed + 2)

    def direction(self, seed: int) -> torch.Tensor:
        """z for one seed, regenerated identically on every call (the seed trick)."""
        gen = torch.Generator(device=self.w.device).manual_seed(seed)
        if self.opts["distribution"] == "gaussian":
            return torch.randn(self.w.shape, generator=gen, dtype=self.w.dtype, device=self.w.device)
        signs = torch.randint(0, 2, self.w.shape, generator=gen, device=self.w.device)
        return (signs * 2 - 1).to(self.w.dtype)

    @torch.no_grad()
    def estimate_gradient(self, batch) -> tuple[float, torch.Tensor]:
        """(loss estimate, averaged SPSA gradient estimate) at the current w; 2q counted evaluations."""
        eps, q = self.opts["eps"], self.opts["q"]
        seeds = torch.randint(0, 2**62, (q,), generator=self.seeds).tolist()
        slopes, loss_sum = [], 0.0
        for seed in seeds:
            z = self.direction(seed)
            self.w.add_(z, alpha=eps)
            plus = float(self.problem.loss(self.w, batch))
            self.w.add_(z, alpha=-2 * eps)
            minus = float(self.problem.loss(self.w, batch))
            self.w.add_(z, alpha=eps)
            del z  # never kept: regenerated from its seed below
            slopes.append((plus - minus) / (2 * eps))
            loss_sum += (plus + minus) / 2
        grad = torch.zeros_like(self.w)
        for seed, slope in zip(seeds, slopes):
            grad.add_(self.direction(seed), alpha=slope / q)
        return loss_sum / q, grad

    def gradient(self, batch):
        return self.estimate_gradient(batch)
