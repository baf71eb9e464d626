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
(``beyond_noise``, ``distinguishable``).

The noise rule: of n candidates compared under one criterion, the n(n-1)/2 pairs are one family, and a pair
differs only when its gap exceeds q times the standard error of the difference, q the two-sided Bonferroni
quantile at family-wise error ALPHA: q = Φ⁻¹(1 - ALPHA / (2 m)) for m pairs. For the statistics criteria, whose
standard errors are themselves estimated from the round's per-step values, q is the Student t quantile at the
Welch-Satterthwaite degrees of freedom of the pair (from the number of optimizer steps); weight's error comes from
thousands of elements and takes the normal quantile. The count criteria have no sampling noise: any gap past
their floor is a difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats as scipy_stats

THRESHOLD = 1e-6  # |w| below this counts as "near zero" for the threshold criterion (as in the paper's code)
MIN_FRACTION = 0.01  # a count criterion counts nothing below 1% of a candidate's elements
ALPHA = 0.05  # the chance that a criterion finds any difference among equally useful candidates, per round
# the fewest optimizer steps a warm-up turn or a round trains: 8 per-step values give a statistic's standard
# error 7 degrees of freedom (with fewer, the t quantile of the noise rule grows so fast that nothing could be
# told apart), and a zero-initialised up-projection has had 8 updates to show any use
MIN_STEPS = 8

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


def beyond_noise(
    criterion: str,
    values: list[float],
    errors: list[float] | None = None,
    steps: int | None = None,
    pairs: int | None = None,
) -> np.ndarray:
    """above[i, j]: value i exceeds value j by more than noise, under the noise rule (module docstring) with
    ``pairs`` comparisons in the family (default: every pair of ``values``). ``steps``: the optimizer steps
    behind the statistics criteria's standard errors (None: the errors are taken as known)."""
    n = len(values)
    v = np.array([evidence_value(criterion, x) for x in values], dtype=float)
    gap = v[:, None] - v[None, :]
    if criterion in COUNTS or errors is None:
        return gap > 0
    e = np.asarray(errors, dtype=float)
    var = e[:, None] ** 2 + e[None, :] ** 2
    level = 1 - ALPHA / (2 * max(pairs if pairs is not None else n * (n - 1) // 2, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        if criterion in STATISTICS and steps is not None and steps >= 2:
            dof = var**2 / ((e[:, None] ** 4 + e[None, :] ** 4) / (steps - 1))  # Welch-Satterthwaite
            q = scipy_stats.t.ppf(level, np.where(np.isfinite(dof) & (dof > 0), dof, 1.0))
        else:
            q = scipy_stats.norm.ppf(level)
        noise = q * np.sqrt(var)
    exact = var == 0  # no noise at all: any gap counts
    return (gap > 0) & (exact | (np.isfinite(var) & (gap > noise)))


def distinguishable(
    criterion: str,
    a: float,
    b: float,
    error_a: float = 0.0,
    error_b: float = 0.0,
    pairs: int = 1,
    steps: int | None = None,
) -> bool:
    """Whether two candidates' values of one criterion differ beyond noise, as one of ``pairs`` comparisons."""
    return bool(beyond_noise(criterion, [a, b], [error_a, error_b], steps, pairs).any())


def steps_of(stats: dict[str, UnitStats]) -> int:
    """The optimizer steps whose gradients a round's statistics hold (summed over processes)."""
    return max((s.grad_steps for s in stats.values()), default=0)


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
