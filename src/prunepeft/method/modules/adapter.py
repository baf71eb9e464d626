"""Bottleneck adapters: down-projection, non-linearity, up-projection.

``SerialAdapter`` transforms the output of the wrapped Linear (Pfeiffer placement when it wraps the
feed-forward output projection): ``h = base(x); h + up(act(down(h)))``.
``ParallelAdapter`` reads the wrapped Linear's input and adds to its output: ``base(x) + up(act(down(x)))``.
Both start as the identity of the base layer (``up`` is zero-initialised), as LoRA does.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class _Bottleneck(nn.Module):
    def __init__(self, base: nn.Linear, in_features: int, bottleneck_size: int, activation: str):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown adapter activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.base = base  # an nn.Linear, or another candidate wrapping one
        self.bottleneck_size = bottleneck_size
        self.in_features, self.out_features = base.in_features, base.out_features
        weight = next(base.parameters())
        factory = {"device": weight.device, "dtype": weight.dtype}
        self.adapter_down = nn.Linear(in_features, bottleneck_size, **factory)
        self.adapter_up = nn.Linear(bottleneck_size, base.out_features, **factory)
        self.act = ACTIVATIONS[activation]()
        self.observer = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.adapter_down.reset_parameters()
        nn.init.zeros_(self.adapter_up.weight)
        nn.init.zeros_(self.adapter_up.bias)

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        delta = self.adapter_up(self.act(self.adapter_down(h)))
        if self.observer is not None:
            self.observer(delta)
        return delta


class SerialAdapter(_Bottleneck):
    kind = "serial_adapter"

    def __init__(self, base: nn.Linear, bottleneck_size: int, activation: str = "relu"):
        super().__init__(base, base.out_features, bottleneck_size, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base(x)
        return h + self.branch(h)


class ParallelAdapter(_Bottleneck):
    kind = "parallel_adapter"

    def __init__(self, base: nn.Linear, bottleneck_size: int, activation: str = "relu"):
        super().__init__(base, base.in_features, bottleneck_size, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.branch(x)
