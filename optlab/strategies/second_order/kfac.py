"""K-FAC (Martens & Grosse 2015): the Fisher of each Linear layer approximated as A (x) G.

For layer l with inputs a (plus a constant 1 for the bias) and pre-activations s,
A_l = E[a a^T] and G_l = E[delta delta^T], delta = dC/ds for targets *sampled from the model*
(the true Fisher; `fisher=empirical` uses the data labels). The step for [W_l | b_l] is
(G_l + pi sqrt(lam) I)^-1 grad_l (A_l + sqrt(lam)/pi I)^-1 with pi balancing the traces (factored
Tikhonov damping), rescaled so the KL change stays below `kl_clip` (Ba et al. 2017), then fed to
SGD with momentum. Factors are running averages refreshed every `factor_update_every` steps on a
`curvature_batch` subset; their inverses are recomputed at each refresh.

Cost: a refresh is one extra forward and backward pass (with sampled targets), counted as one
gradient evaluation on its batch.
"""

from __future__ import annotations

import math

import torch

from optlab.errors import ConfigError
from optlab.problem.layer_statistics import layer_statistics
from optlab.strategies.base import BudgetSpent, Option
from optlab.strategies.registry import register
from optlab.strategies.schedules import make_scheduler
from optlab.strategies.second_order.common import SecondOrderStrategy

FISHERS = ("true", "empirical")


def sample_targets(logits: torch.Tensor, cost: str, generator: torch.Generator):
    """Targets drawn from the model's predictive distribution (the true Fisher)."""
    if cost == "cross_entropy":
        probs = torch.softmax(logits, dim=-1).to(torch.float64).cpu()
        return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(logits.device)
    # (o - t)^2 is the Gaussian log-likelihood with variance 1/2 up to scale
    noise = torch.randn(logits.shape, generator=generator, dtype=torch.float64) * math.sqrt(0.5)
    return torch.sigmoid(logits) + noise.to(dtype=logits.dtype, device=logits.device)


def kronecker_factors(inputs, deltas):
    """A_l = mean a a^T, G_l = mean delta delta^T for each layer."""
    n = inputs[0].shape[0]
    return [a.T @ a / n for a in inputs], [d.T @ d / n for d in deltas]


def damped_inverses(a: torch.Tensor, g: torch.Tensor, damping: float):
    """(A + sqrt(lam)/pi I)^-1 and (G + pi sqrt(lam) I)^-1, pi = sqrt((tr A / dim A) / (tr G / dim G))."""
    trace_a = float(torch.trace(a)) / a.shape[0]
    trace_g = float(torch.trace(g)) / g.shape[0]
    pi = math.sqrt(trace_a / trace_g) if trace_a > 0 and trace_g > 0 else 1.0
    root = math.sqrt(damping)
    eye = lambda m: torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    inverse = lambda m: torch.cholesky_inverse(torch.linalg.cholesky(0.5 * (m + m.T)))
    return inverse(a + (root / pi) * eye(a)), inverse(g + (root * pi) * eye(g))


@register
class KFAC(SecondOrderStrategy):
    name = "kfac"
    description = "K-FAC (Martens & Grosse 2015): Kronecker-factored Fisher per Linear layer, damped, with momentum"
    default_lr, default_momentum, default_batch_size, default_weight_decay = 0.1, 0.9, 256, 0.0
    supports_schedule = True
    uses = frozenset({"momentum", "weight_decay"})  # they go to the SGD that applies the preconditioned step
    options = {
        "damping": Option(float, 0.01, "Tikhonov damping lambda, split over the two factors", greater_than=0),
        "factor_update_every": Option(int, 10, "steps between refreshes of the factors and their inverses", at_least=1),
        "stat_decay": Option(float, 0.95, "running-average weight of the old factors", at_least=0, less_than=1),
        "curvature_batch": Option(int, 256, "samples of the batch used for the factor statistics", at_least=1),
        "kl_clip": Option(float, 0.001, "bound on lr^2 * step . grad (trust region); 0 disables", at_least=0),
        "fisher": Option(
            str, "true", "true (targets sampled from the model) | empirical (data labels)", choices=FISHERS
        ),
    }

    @classmethod
    def check(cls, config, problem):
        if getattr(problem, "network", None) is None:
            raise ConfigError(
                f"kfac needs a network (Linear layers), {problem.name!r} has none: use newton or newton_cg"
            )

    def __init__(self, problem, params, config, plan):
        super().__init__(problem, params, config, plan)
        self.network, self.cost_name = problem.network, problem.cost_name
        momentum = config.momentum if config.momentum is not None else self.default_momentum
        decay = config.weight_decay if config.weight_decay is not None else 0.0
        self.optimizer = torch.optim.SGD([self.w], lr=self.step_size, momentum=momentum, weight_decay=decay)
        self.scheduler = make_scheduler(self.optimizer, config, plan.steps_per_epoch, plan.max_steps)
        self.factors_a = self.factors_g = None
        self.inverses = None
        self.steps = 0

    def refresh(self, indices) -> None:
        batch = self.problem.data_batch(self.subset(indices, self.opts["curvature_batch"]))
        if self.opts["fisher"] == "true":
            with torch.no_grad():
                logits = self.network.forward(self.w, batch.x)
            labels = sample_targets(logits, self.cost_name, self.generator)
        else:
            labels = batch.y
        inputs, deltas, _ = layer_statistics(self.network, self.w, batch.x, labels, self.cost_name)  # enables grad
        # one forward and one backward pass on the statistics batch: a gradient's worth of work
        self.problem.counters.record(batch.size, gradients=1)
        new_a, new_g = kronecker_factors(inputs, deltas)
        if self.factors_a is None:
            self.factors_a, self.factors_g = new_a, new_g
        else:
            rho = self.opts["stat_decay"]
            self.factors_a = [rho * old + (1 - rho) * new for old, new in zip(self.factors_a, new_a)]
            self.factors_g = [rho * old + (1 - rho) * new for old, new in zip(self.factors_g, new_g)]
        self.inverses = [damped_inverses(a, g, self.opts["damping"]) for a, g in zip(self.factors_a, self.factors_g)]

    def precondition(self, grad: torch.Tensor) -> torch.Tensor:
        """Apply each layer's (G^-1) [dW | db] (A^-1) to the flat gradient."""
        pieces = []
        for (gw, gb), (a_inv, g_inv) in zip(self.network.unflatten(grad), self.inverses):
            combined = torch.cat([gw, gb.unsqueeze(1)], dim=1)
            step = g_inv @ combined @ a_inv
            pieces += [step[:, :-1].reshape(-1), step[:, -1]]
        return torch.cat(pieces)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self) -> dict[str, float]:
        indices = self.next_indices()
        batch = self.problem.batch(indices)
        refresh = self.steps % self.opts["factor_update_every"] == 0
        n = self.problem.n_train if indices is None else indices.numel()
        cost = self.size(batch) + (min(self.opts["curvature_batch"], n) if refresh else 0)
        if self.steps > 0 and not self.affords(cost, evaluations=1 + refresh):  # a refresh is a gradient's work
            raise BudgetSpent
        loss, grad = self.problem.loss_and_grad(self.w, batch)
        if refresh:
            self.refresh(indices)
        self.steps += 1
        natural = self.precondition(grad)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.opts["kl_clip"] > 0:
            quadratic = float(torch.dot(natural, grad)) * lr**2
            if quadratic > 0:
                natural = natural * min(1.0, math.sqrt(self.opts["kl_clip"] / quadratic))
        self.w.grad = natural
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return {"batch_loss": float(loss), "grad_norm": float(grad.norm()), "lr": lr}
