"""The pruning criteria of PrunePEFT (paper Table 1): functions of a candidate's weights and of the
statistics recorded during the training steps of a round.

Every criterion is normalised per parameter (a mean over the candidate's elements), so that units of
different sizes compare. ``PRUNE_IF_HIGH`` says the orientation: for most criteria a *low* value means
"prune first"; for zeros and threshold a *high* value does. ``oriented`` turns any criterion into
"higher = prune first".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

THRESHOLD = 1e-6  # |w| below this counts as "near zero" for the threshold criterion (as in the paper's code)

CRITERIA = ("weight", "zeros", "threshold", "activation", "gradient", "sensitivity")
PRUNE_IF_HIGH = {"zeros": True, "threshold": True}


@dataclass
class UnitStats:
    """Sums accumulated over the steps of one round for one candidate."""

    activation_sum: float = 0.0  # sum over forward calls of mean |branch output|
    activation_calls: int = 0
    grad_abs_sum: float = 0.0  # sum over optimizer steps of sum |dL/dW|
    sensitivity_sum: float = 0.0  # sum over optimizer steps of sum |W * dL/dW|
    grad_steps: int = 0


def weight(params: list[torch.Tensor]) -> float:
    """mean(W^2) over all of the candidate's elements."""
    return _sum(p.detach().float().pow(2).sum() for p in params) / _numel(params)


def zeros(params: list[torch.Tensor]) -> float:
    """Fraction of elements exactly zero."""
    return _sum((p.detach() == 0).sum() for p in params) / _numel(params)


def threshold(params: list[torch.Tensor], t: float = THRESHOLD) -> float:
    """Fraction of elements with |w| < t."""
    return _sum((p.detach().abs() < t).sum() for p in params) / _numel(params)


def activation(stats: UnitStats) -> float:
    """mean |output of the candidate's branch| over the forward passes of the round."""
    return stats.activation_sum / max(stats.activation_calls, 1)


def gradient(stats: UnitStats, n_params: int) -> float:
    """mean |dL/dW| per element and step."""
    return stats.grad_abs_sum / max(stats.grad_steps, 1) / n_params


def sensitivity(stats: UnitStats, n_params: int) -> float:
    """mean |W * dL/dW| per element and step (Taylor / SNIP saliency; the absolute value of the product)."""
    return stats.sensitivity_sum / max(stats.grad_steps, 1) / n_params


def evaluate_all(params: list[torch.Tensor], stats: UnitStats) -> dict[str, float]:
    """All six criteria for one candidate."""
    n = _numel(params)
    return {
        "weight": weight(params),
        "zeros": zeros(params),
        "threshold": threshold(params),
        "activation": activation(stats),
        "gradient": gradient(stats, n),
        "sensitivity": sensitivity(stats, n),
    }


def oriented(criterion: str, value: float) -> float:
    """The value turned so that higher means "prune first"."""
    return value if PRUNE_IF_HIGH.get(criterion, False) else -value


def _numel(params: list[torch.Tensor]) -> int:
    return sum(p.numel() for p in params)


def _sum(values) -> float:
    return float(sum(float(v) for v in values))
