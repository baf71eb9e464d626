"""LoRA: a parallel low-rank update added to the output of a frozen ``nn.Linear``.

Same parametrisation and initialisation as peft's LoRA (A: Kaiming-uniform, B: zeros,
scaling = alpha / rank), so our numbers can be checked against peft's.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoraLinear(nn.Module):
    """``base(x) + scaling * B(A(dropout(x)))``; the base layer stays frozen."""

    kind = "lora"

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base  # an nn.Linear, or another candidate wrapping one
        self.rank = rank
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.in_features, self.out_features = base.in_features, base.out_features
        weight = next(base.parameters())
        factory = {"device": weight.device, "dtype": weight.dtype}
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, **factory)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, **factory)
        self.observer = None  # set by the statistics recorder; receives the branch output
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.lora_B(self.lora_A(self.dropout(x))) * self.scaling
        if self.observer is not None:
            self.observer(delta)
        return self.base(x) + delta.to(x.dtype)

    def merged_weight(self) -> torch.Tensor:
        """The base weight with the update folded in (for merging into a plain Linear)."""
        return self.base.weight + (self.lora_B.weight @ self.lora_A.weight) * self.scaling
