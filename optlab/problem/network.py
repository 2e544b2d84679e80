"""A fully connected network evaluated on one flat parameter vector.

The parameters live in a single 1-D tensor (13,002 numbers for the reference 784-16-16-10 net);
each layer's weight and bias are views into it. Every strategy therefore sees the same thing, a
point in R^d, and functional tools (torch.func.vmap, jvp, Hessian-vector products) apply directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from optlab.errors import ConfigError

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}
INITS = {
    "fan_in_uniform": "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases (torch.nn.Linear's default)",
    "fan_in_normal": "N(0, 1/fan_in) weights (LeCun), zero biases",
    "xavier": "N(0, 2/(fan_in+fan_out)) weights (Glorot), zero biases",
    "he": "N(0, 2/fan_in) weights (Kaiming, for ReLU), zero biases",
    "normal": "N(0, 1) weights and biases (Nielsen's first chapters; too large for sigmoid nets)",
    "zeros": "all zeros: hidden units stay identical, the net never takes off (symmetry not broken)",
}


@dataclass(frozen=True)
class NetworkSpec:
    n_inputs: int = 784
    hidden: tuple[int, ...] = (16, 16)
    n_outputs: int = 10
    activation: str = "sigmoid"
    init: str = "fan_in_uniform"

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATIONS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose from {', '.join(INITS)}")
        for width in self.hidden:
            if not isinstance(width, int) or width <= 0:
                raise ConfigError(f"hidden layer sizes must be positive integers, got {width!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.n_inputs, *self.hidden, self.n_outputs)

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        """(fan_out, fan_in) of each Linear layer."""
        return [(fan_out, fan_in) for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:])]

    @property
    def n_params(self) -> int:
        return sum(out * inp + out for out, inp in self.layer_shapes)

    def unflatten(self, w: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Views (weight, bias) per layer into a flat vector w of shape (..., d)."""
        layers, offset = [], 0
        for fan_out, fan_in in self.layer_shapes:
            weight = w[..., offset : offset + fan_out * fan_in].unflatten(-1, (fan_out, fan_in))
            offset += fan_out * fan_in
            bias = w[..., offset : offset + fan_out]
            offset += fan_out
            layers.append((weight, bias))
        return layers

    def forward(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation outputs (logits) for inputs x of shape (n, n_inputs)."""
        return self.forward_layers(self.unflatten(w), x)

    def forward_layers(self, layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
        """The same forward pass from the (weight, bias) pairs themselves (what differentiating with
        respect to each layer separately needs: no gradient through the flat vector's slices)."""
        act = ACTIVATIONS[self.activation]
        h = x
        for i, (weight, bias) in enumerate(layers):
            h = torch.addmm(bias, h, weight.T)
            if i < len(layers) - 1:
                h = act(h)
        return h

    def forward_many(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits for K parameter vectors at once: w (K, d), x (n, in) or (K, n, in) -> (K, n, out)."""
        from optlab.problem.stacked import forward  # batched matmuls; shared x is one GEMM

        return forward(self, w, x)

    def init_params(self, seed: int, dtype=torch.float32, device=None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        chunks = []
        for fan_out, fan_in in self.layer_shapes:
            weight_shape, bias_shape = (fan_out * fan_in,), (fan_out,)
            if self.init == "fan_in_uniform":
                bound = 1.0 / math.sqrt(fan_in)
                weight = (torch.rand(weight_shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
                bias = (torch.rand(bias_shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            elif self.init == "normal":
                weight = torch.randn(weight_shape, generator=gen, dtype=torch.float64)
                bias = torch.randn(bias_shape, generator=gen, dtype=torch.float64)
            else:
                std = {
                    "fan_in_normal": 1 / math.sqrt(fan_in),
                    "xavier": math.sqrt(2 / (fan_in + fan_out)),
                    "he": math.sqrt(2 / fan_in),
                    "zeros": 0.0,
                }[self.init]
                weight = torch.randn(weight_shape, generator=gen, dtype=torch.float64) * std
                bias = torch.zeros(bias_shape, dtype=torch.float64)
            chunks += [weight, bias]
        return torch.cat(chunks).to(dtype=dtype, device=device)
