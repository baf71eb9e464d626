"""The hybrid strategy: partitions (depth block x candidate kind), the warm-up assignment of criteria to
partitions, and the combined score of paper eq. 1.

How the criteria of a partition are combined (the paper leaves it open), each step decided by evidence:

1. each criterion is oriented so that higher = prune first (``criteria.oriented``; a count criterion below
   1% of a candidate's elements counts as 0);
2. a criterion **abstains** in a partition for a round when it cannot tell any of the partition's survivors
   from any other survivor (``criteria.distinguishable``: equal values, counts under the floor, or
   statistics within two standard errors); its vote is then left out there, and the log says so;
3. over the surviving candidates, each oriented criterion becomes a normal score: its mid-rank r of n gives
   z = Φ⁻¹((r + ½) / n) (ties share their mid-rank);
4. **Θ(m)** is the normalised rank, among *all* survivors, of m's mean z over the criteria S_i of m's
   partition that vote (every survivor is scored with S_i for this ranking): Θ is spread uniformly over
   [0, 1] whether S_i holds one criterion or five, and whether they agree or not, so partitions compare on
   one scale; a partition whose assigned criteria all abstain is scored by every criterion that does not
   abstain there (as the warm-up assignment gives every criterion to a partition nothing nominated in), and
   gets Θ = ½ (no evidence either way) only when every criterion abstains;
5. eq. 1: p(m) = softmax_m(k_m Θ(m)) over *all* survivors (never per block), with k_m = sigmoid(r_m) and r_m
   the rank of Θ(m) among survivors scaled to [-1, 1]. p is increasing in Θ, so the top-k by p is the top-k
   by Θ; p is what the log reports.

Ties (in nominations and in removal) are broken by a seeded draw, never by a candidate's name or position.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from statistics import NormalDist

from prunepeft.method.criteria import CRITERIA, distinguishable, oriented

Scores = Mapping[str, Mapping[str, float]]  # candidate name -> criterion -> raw value
Errors = Mapping[str, Mapping[str, float]]  # candidate name -> criterion -> standard error (statistics only)
_NORMAL = NormalDist()


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


def mid_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Rank of each value, 0 = lowest; ties share the mean of their ranks."""
    names = sorted(values, key=lambda n: values[n])
    ranks: dict[str, float] = {}
    i = 0
    while i < len(names):
        j = i
        while j + 1 < len(names) and values[names[j + 1]] == values[names[i]]:
            j += 1
        for n in names[i : j + 1]:
            ranks[n] = (i + j) / 2
        i = j + 1
    return ranks


def normalised_ranks(values: Mapping[str, float]) -> dict[str, float]:
    """Rank of each value in [0, 1] (0 = lowest); ties share the mean rank; a single value gets 0.5."""
    if len(values) == 1:
        return dict.fromkeys(values, 0.5)
    return {n: r / (len(values) - 1) for n, r in mid_ranks(values).items()}


def normal_scores(values: Mapping[str, float]) -> dict[str, float]:
    """z = Φ⁻¹((mid-rank + ½) / n): the normal score of each value among all (0 for a lone value)."""
    n = len(values)
    return {m: _NORMAL.inv_cdf((r + 0.5) / n) for m, r in mid_ranks(values).items()}


def _error(errors: Errors | None, m: str, criterion: str) -> float:
    return (errors or {}).get(m, {}).get(criterion, 0.0)


def informative(criterion: str, members: Iterable[str], scores: Scores, errors: Errors | None = None) -> bool:
    """Whether the criterion tells at least one of ``members`` apart from some other scored candidate."""
    for a in members:
        for b in scores:
            if b != a and distinguishable(
                criterion, scores[a][criterion], scores[b][criterion], _error(errors, a, criterion),
                _error(errors, b, criterion),
            ):  # fmt: skip
                return True
    return False


def draw_order(names: Iterable[str], key: Mapping[str, float], rng: random.Random) -> list[str]:
    """Names by decreasing key; equal keys in an order drawn from ``rng`` (never by name)."""
    shuffled = sorted(names)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda m: -key[m])  # a stable sort keeps the drawn order within ties


def tied_at_cut(order: list[str], key: Mapping[str, float], k: int) -> list[str]:
    """The candidates whose key equals the k-th's when some of them fall on each side of the cut (else [])."""
    if not 0 < k < len(order) or key[order[k - 1]] != key[order[k]]:
        return []
    return [m for m in order if key[m] == key[order[k - 1]]]


def nominate(
    scores: Scores, criterion: str, k: int, errors: Errors | None = None, rng: random.Random | None = None
) -> list[str]:
    """The k candidates one criterion alone would prune; none if it cannot tell any two candidates apart.
    Equal values at the cut are decided by ``rng`` (seed 0 if none is given)."""
    if not informative(criterion, scores, scores, errors):
        return []
    values = {m: oriented(criterion, s[criterion]) for m, s in scores.items()}
    return draw_order(values, values, rng or random.Random(0))[:k]


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


def voting_criteria(
    scores: Scores,
    assignment: Mapping[str, list[str]],
    partition: Mapping[str, str],
    errors: Errors | None = None,
    fallback: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Per partition with survivors: its assigned criteria that do not abstain this round; where all of them
    abstain, the ``fallback`` criteria that do not (the hybrid passes every criterion, as the warm-up assignment
    does for a partition nothing nominated in)."""
    members: dict[str, list[str]] = {}
    for m in scores:
        members.setdefault(partition[m], []).append(m)
    voting = {}
    for p, ms in sorted(members.items()):
        voting[p] = [c for c in assignment[p] if informative(c, ms, scores, errors)]
        if not voting[p]:
            voting[p] = [c for c in fallback if informative(c, ms, scores, errors)]
    return voting


def combined_scores(
    scores: Scores,
    assignment: Mapping[str, list[str]],
    partition: Mapping[str, str],
    errors: Errors | None = None,
    voting: Mapping[str, list[str]] | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """(Θ, p) per candidate: the partition score and the eq. 1 probability of being pruned."""
    voting = voting if voting is not None else voting_criteria(scores, assignment, partition, errors)
    used = sorted({c for crit in voting.values() for c in crit})
    z = {c: normal_scores({m: oriented(c, s[c]) for m, s in scores.items()}) for c in used}
    by_set: dict[tuple[str, ...], dict[str, float]] = {}  # criteria set -> Θ of every survivor under it
    for crit in {tuple(crit) for crit in voting.values() if crit}:
        by_set[crit] = normalised_ranks({m: sum(z[c][m] for c in crit) / len(crit) for m in scores})
    theta = {m: by_set[tuple(voting[partition[m]])][m] if voting[partition[m]] else 0.5 for m in scores}
    order = normalised_ranks(theta)
    k = {m: 1 / (1 + math.exp(-(2 * order[m] - 1))) for m in scores}
    top = max(k[m] * theta[m] for m in scores)
    weights = {m: math.exp(k[m] * theta[m] - top) for m in scores}
    total = sum(weights.values())
    return theta, {m: w / total for m, w in weights.items()}
