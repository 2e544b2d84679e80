"""Costs C(y, g(x, w)), averaged over the batch: the objective L(w) = mean_p C(y_p, g(x_p, w)).

`mse` is the cost of the brief (3Blue1Brown, Nielsen): the *sum* over outputs of squared differences
between the sigmoid outputs and the one-hot target. `cross_entropy` is the softmax log-loss.
"""

from __future__ import annotations

import torch


def mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    outputs = torch.sigmoid(logits)
    # the one-hot target by comparison (F.one_hot checks its input's range: data-dependent, so torch.func's
    # vmap, which per-sample gradients use, refuses it)
    classes = torch.arange(outputs.shape[-1], device=labels.device)
    target = (labels.unsqueeze(-1) == classes).to(outputs.dtype)
    return ((outputs - target) ** 2).sum(dim=-1).mean(dim=-1)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1).mean(dim=-1)


COSTS = {
    "mse": ("sum of squared differences between sigmoid outputs and the one-hot target", mse),
    "cross_entropy": ("softmax cross-entropy (log-loss) of the true class", cross_entropy),
}


def outputs(cost: str, logits: torch.Tensor) -> torch.Tensor:
    """The network's visible outputs: sigmoid activations for mse, softmax probabilities otherwise."""
    return torch.sigmoid(logits) if cost == "mse" else torch.softmax(logits, dim=-1)
