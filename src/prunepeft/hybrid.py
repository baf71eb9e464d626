"""The hybrid strategy: partitions (depth block x candidate kind), the warm-up assignment of criteria to
partitions, and the combined score of paper eq. 1.

How scores of different criteria are made comparable (the paper leaves it open):

1. each criterion is oriented so that higher = prune first (``criteria.oriented``);
2. over the surviving candidates, each oriented criterion is replaced by its normalised rank in [0, 1]
   (ties share their mean rank; a criterion equal on every candidate gives 0.5 to all);
3. a candidate's partition score is Θ(m) = mean of the normalised ranks of the criteria S_i assigned to
   its partition;
4. eq. 1: p(m) = softmax_m(k_m Θ(m)) over *all* survivors (never per block), with
   k_m = sigmoid(r_m) and r_m the rank of Θ(m) among survivors scaled to [-1, 1].
   p is increasing in Θ, so the top-k by p is the top-k by Θ; p is what the log reports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prunepeft.criteria import CRITERIA, oriented

Scores = Mapping[str, Mapping[str, float]]  # candidate name -> criterion -> raw value


def spindle_blocks(num_layers: int, num_blocks: int = 4) -> list[int]:
    """Block index of each layer: small blocks at both ends, large in the middle (24 layers: 4, 8, 8, 4).

    Boundaries sit at 1/6, 1/2 and 5/6 of the depth (for 4 blocks); empty blocks are dropped.
    """
    if num_blocks == 1:
        return [0] * num_layers
    if num_blocks != 4:
        raise ValueError("spindle blocks are defined for 4 blocks (or 1: no blocks)")
    bounds = [round(num_layers * f) for f in (1 / 6, 1 / 2, 5 / 6)]
    raw = [sum(layer >= b for b in bounds) for layer in range(num_layers)]
    renumber = {b: i for i, b in enumerate(sorted(set(raw)))}
    return [renumber[b] for b in raw]


def partition_of(layer: int, kind: str, blocks: list[int]) -> str:
    return f"B{blocks[layer]}.{kind}"


def normalised_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Rank of each value in [0, 1] (0 = lowest); ties share the mean rank."""
    names = sorted(values, key=lambda n: values[n])
    if len(names) == 1:
        return {names[0]: 0.5}
    ranks: dict[str, float] = {}
    i = 0
    while i < len(names):
        j = i
        while j + 1 < len(names) and values[names[j + 1]] == values[names[i]]:
            j += 1
        for n in names[i : j + 1]:
            ranks[n] = (i + j) / 2 / (len(names) - 1)
        i = j + 1
    return ranks


def oriented_ranks(scores: Scores, criteria: tuple[str, ...] = CRITERIA) -> dict[str, dict[str, float]]:
    """criterion -> candidate -> normalised rank of the oriented value (higher = prune first)."""
    return {c: normalised_ranks({m: oriented(c, s[c]) for m, s in scores.items()}) for c in criteria}


def nominate(scores: Scores, criterion: str, k: int) -> list[str]:
    """The k candidates one criterion alone would prune; none if it cannot tell the candidates apart."""
    values = {m: oriented(criterion, s[criterion]) for m, s in scores.items()}
    if len(set(values.values())) <= 1:
        return []
    return sorted(values, key=lambda m: (-values[m], m))[:k]


def assign_criteria(
    counts: Mapping[str, Mapping[str, int]], partition_sizes: Mapping[str, int]
) -> dict[str, list[str]]:
    """Criteria per partition from warm-up nomination counts (criterion -> partition -> count).

    Counts are divided by the partition's size (big middle blocks would otherwise win everything).
    Each partition gets the criteria with its highest rate (ties kept; all criteria if no criterion
    nominated anything there), and each criterion is also added to the partition where its rate peaks.
    """
    rate = {c: {p: counts.get(c, {}).get(p, 0) / n for p, n in partition_sizes.items()} for c in CRITERIA}
    assignment: dict[str, list[str]] = {}
    for p in partition_sizes:
        best = max(rate[c][p] for c in CRITERIA)
        assignment[p] = [c for c in CRITERIA if best > 0 and rate[c][p] == best] or list(CRITERIA)
    for c in CRITERIA:
        peak = max(rate[c].values())
        if peak <= 0:
            continue
        for p, r in rate[c].items():
            if r == peak and c not in assignment[p]:
                assignment[p].append(c)
    return {p: [c for c in CRITERIA if c in crit] for p, crit in assignment.items()}


def combined_scores(
    scores: Scores, assignment: Mapping[str, list[str]], partition: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, float]]:
    """(Θ, p) per candidate: the partition score and the eq. 1 probability of being pruned."""
    ranks = oriented_ranks(scores)
    theta = {m: sum(ranks[c][m] for c in assignment[partition[m]]) / len(assignment[partition[m]]) for m in scores}
    order = normalised_ranks(theta)
    k = {m: 1 / (1 + math.exp(-(2 * order[m] - 1))) for m in scores}
    top = max(k[m] * theta[m] for m in scores)
    weights = {m: math.exp(k[m] * theta[m] - top) for m in scores}
    total = sum(weights.values())
    return theta, {m: w / total for m, w in weights.items()}
