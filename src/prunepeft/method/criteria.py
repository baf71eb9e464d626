"""The pruning criteria of PrunePEFT (paper Table 1): functions of a candidate's weights and of the
statistics recorded during the training steps of a round, and how far each value can be trusted.

Every criterion is normalised per parameter (a mean over the candidate's elements), so that units of
different sizes compare. ``PRUNE_IF_HIGH`` says the orientation: for most criteria a *low* value means
"prune first"; for zeros and threshold a *high* value does. ``oriented`` turns any criterion into
"higher = prune first".

Evidence, not artefacts: the count criteria (zeros, threshold) count nothing below ``MIN_FRACTION`` of a
candidate's elements (a handful of exact zeros among thousands of trained floats is noise), and the
statistics criteria carry a standard error from their per-step values (``standard_errors``), and weight one from
its elements (``weight_error``), so that a difference within noise is not read as a difference
(``distinguishable``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

THRESHOLD = 1e-6  # |w| below this counts as "near zero" for the threshold criterion (as in the paper's code)
MIN_FRACTION = 0.01  # a count criterion counts nothing below 1% of a candidate's elements
NOISE_Z = 2.0  # two statistics differ when their gap exceeds two standard errors of the difference

CRITERIA = ("weight", "zeros", "threshold", "activation", "gradient", "sensitivity")
PRUNE_IF_HIGH = {"zeros": True, "threshold": True}
COUNTS = ("zeros", "threshold")
STATISTICS = ("activation", "gradient", "sensitivity")


@dataclass
class UnitStats:
    """Sums accumulated over the steps of one round for one candidate (and sums of squares, for noise)."""

    activation_sum: float = 0.0  # sum over forward calls of mean |branch output|
    activation_calls: int = 0
    grad_abs_sum: float = 0.0  # sum over optimizer steps of sum |dL/dW|
    sensitivity_sum: float = 0.0  # sum over optimizer steps of sum |W * dL/dW|
    grad_steps: int = 0
    activation_sq: float = 0.0  # sum over forward calls of (mean |branch output|)^2
    grad_abs_sq: float = 0.0  # sum over optimizer steps of (sum |dL/dW|)^2
    sensitivity_sq: float = 0.0  # sum over optimizer steps of (sum |W * dL/dW|)^2


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


def weight_error(params: list[torch.Tensor]) -> float:
    """Standard error of mean(W^2) when the elements are taken as samples: the spread that freshly initialised,
    equally useful candidates show between each other."""
    squares = torch.cat([p.detach().float().pow(2).flatten() for p in params])
    return float(squares.std()) / math.sqrt(squares.numel()) if squares.numel() > 1 else 0.0


def standard_errors(stats: UnitStats, n_params: int) -> dict[str, float]:
    """Standard error of each statistics criterion (a mean over forward calls or steps)."""
    return {
        "activation": _sem(stats.activation_sum, stats.activation_sq, stats.activation_calls),
        "gradient": _sem(stats.grad_abs_sum, stats.grad_abs_sq, stats.grad_steps) / n_params,
        "sensitivity": _sem(stats.sensitivity_sum, stats.sensitivity_sq, stats.grad_steps) / n_params,
    }


def evidence_value(criterion: str, value: float) -> float:
    """The value as evidence: a count criterion below MIN_FRACTION counts as 0."""
    if criterion in COUNTS and value < MIN_FRACTION:
        return 0.0
    return value


def distinguishable(criterion: str, a: float, b: float, error_a: float = 0.0, error_b: float = 0.0) -> bool:
    """Whether two candidates' values of one criterion differ by more than the criterion can resolve."""
    a, b = evidence_value(criterion, a), evidence_value(criterion, b)
    gap = abs(a - b)
    if criterion in STATISTICS or criterion == "weight":
        return gap > 0 and gap > NOISE_Z * math.hypot(error_a, error_b)
    return gap > 0


def oriented(criterion: str, value: float) -> float:
    """The value as evidence, turned so that higher means "prune first"."""
    value = evidence_value(criterion, value)
    return value if PRUNE_IF_HIGH.get(criterion, False) else -value


def _sem(total: float, squares: float, count: int) -> float:
    if count < 2:
        return math.inf if count == 1 else 0.0  # one observation: its noise is unknown
    mean = total / count
    variance = max(squares / count - mean * mean, 0.0) * count / (count - 1)
    return math.sqrt(variance / count)


def _numel(params: list[torch.Tensor]) -> int:
    return sum(p.numel() for p in params)


def _sum(values) -> float:
    return float(sum(float(v) for v in values))
