"""Per-sample quantities of a fully connected network from one forward and one backward pass.

For layer l with input a_i (plus a constant 1 for the bias) and pre-activation s_i = W a_i + b, sample i's
gradient of its own cost C_i is the outer product delta_i a_i^T, delta_i = dC_i/ds_i. Backpropagating the
*sum* of the per-sample costs gives every delta_i at once (sample i's cost depends on its own row only),
so per-sample statistics of the gradients need the inputs and deltas of each layer, never the (n, d)
matrix of per-sample gradients: K-FAC's factors are E[a a^T] and E[delta delta^T]; the per-parameter sum
and sum of squares of the per-sample gradients are delta^T a and (delta^2)^T (a^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from optlab.problem.network import ACTIVATIONS, NetworkSpec


def layer_statistics(network: NetworkSpec, w: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, cost: str):
    """Per layer, the inputs with a bias column (n, in+1) and the pre-activation gradients (n, out)
    of the per-sample costs (summed, so each row is dC_i/ds_i), plus the logits. `labels`: class indices,
    or for `mse` also (n, classes) targets (K-FAC's sampled ones)."""
    act = ACTIVATIONS[network.activation]
    layers = network.unflatten(w.detach())
    inputs, probes = [], []
    h = x
    with torch.enable_grad():
        for i, (weight, bias) in enumerate(layers):
            inputs.append(torch.cat([h.detach(), torch.ones_like(h[:, :1])], dim=1))
            probe = torch.zeros(h.shape[0], weight.shape[0], dtype=h.dtype, device=h.device, requires_grad=True)
            h = torch.addmm(bias, h, weight.T) + probe
            probes.append(probe)
            if i < len(layers) - 1:
                h = act(h)
        logits = h
        if cost == "cross_entropy":
            per_sample = F.cross_entropy(logits, labels, reduction="sum")
        else:  # the sum of squared differences of the sigmoid outputs to a one-hot or sampled target
            target = labels if labels.dim() == 2 else F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
            per_sample = ((torch.sigmoid(logits) - target) ** 2).sum()
        deltas = torch.autograd.grad(per_sample, probes)
    return inputs, list(deltas), logits.detach()
