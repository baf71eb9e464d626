"""LoRA: a parallel low-rank update added to the output of a frozen ``nn.Linear``.

Same parametrisation and initialisation as peft's LoRA (A: Kaiming-uniform, B: zeros,
scaling = alpha / rank), so our numbers can be checked against peft's.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


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


class LoraSlice(nn.Module):
    """One slice of a ``SlicedLoraLinear``: its own A (rank x in) and B (out x rank), created and initialised as a
    ``LoraLinear`` of that rank would be. The owner computes the branch; ``observer`` receives this slice's output."""

    def __init__(self, in_features: int, out_features: int, rank: int, factory: dict):
        super().__init__()
        self.rank = rank
        self.lora_A = nn.Linear(in_features, rank, bias=False, **factory)
        self.lora_B = nn.Linear(rank, out_features, bias=False, **factory)
        self.observer = None
        self.reset_parameters()

    reset_parameters = LoraLinear.reset_parameters


class SlicedLoraLinear(nn.Module):
    """A LoRA held as slices that can be removed one by one: ``base(x) + scaling * B(A(dropout(x)))`` with A the
    slices' A stacked by rows and B their B by columns, so the kept slices are exactly one LoRA of their summed rank,
    computed in one pass whatever their number. Each slice's own output, for its observer, is computed from the
    shared hidden state without a graph (statistics only, never trained through)."""

    kind = "lora"

    def __init__(self, base: nn.Module, scaling: float, dropout: float, location: str):
        super().__init__()
        self.base = base  # an nn.Linear, or another candidate wrapping one
        self.scaling = scaling
        self.location = location  # the LoRA location whose slices this holds, e.g. "L3.lora_qkvo"
        self.dropout_p = dropout
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.slices = nn.ModuleDict()

    def add_slice(self, key: str, rank: int) -> LoraSlice:
        weight = next(self.base.parameters())
        piece = LoraSlice(self.in_features, self.out_features, rank, {"device": weight.device, "dtype": weight.dtype})
        self.slices[key] = piece
        return piece

    def remove_slice(self, piece: LoraSlice) -> None:
        (key,) = [k for k, p in self.slices.items() if p is piece]
        del self.slices[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = list(self.slices.values())
        if not pieces:
            return self.base(x)
        a = torch.cat([p.lora_A.weight for p in pieces]) if len(pieces) > 1 else pieces[0].lora_A.weight
        b = torch.cat([p.lora_B.weight for p in pieces], 1) if len(pieces) > 1 else pieces[0].lora_B.weight
        hidden = F.linear(self.dropout(x), a)
        delta = F.linear(hidden, b) * self.scaling
        if torch.is_grad_enabled() and any(p.observer is not None for p in pieces):
            hidden, start = hidden.detach(), 0
            for p in pieces:
                if p.observer is not None:
                    p.observer(F.linear(hidden[..., start : start + p.rank], p.lora_B.weight.detach()) * self.scaling)
                start += p.rank
        return self.base(x) + delta.to(x.dtype)
