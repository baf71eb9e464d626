"""The hybrid strategy: partitions (depth block x candidate kind), the warm-up assignment of criteria to
partitions, and the combined score of paper eq. 1.

How the criteria of a partition are combined (the paper leaves it open), each step decided by evidence:

1. each criterion is oriented so that higher = prune first (``criteria.oriented``; a count criterion below
   1% of a candidate's elements counts as 0);
2. **a difference counts only beyond noise** (``criteria.beyond_noise``): under one criterion in one round, the
   n(n-1)/2 pairs of the n survivors are one family, and a pair differs only when its gap exceeds the
   Bonferroni quantile Φ⁻¹(1 - α/(2m)) (m pairs, α = ``criteria.ALPHA`` = 0.05; Student t at the pair's
   Welch degrees of freedom for the statistics, whose errors are estimated from the round's steps) times the
   standard error of the difference. So among equally useful candidates a criterion finds a difference in at
   most α of rounds, however many candidates there are (with a fixed 2 standard errors, 12 equal candidates
   showed one in 70% of warm-up turns). Why Bonferroni: the first question, does this criterion tell anything
   apart, is the global null of the family, and Holm's procedure rejects something exactly when Bonferroni
   does (its first step is Bonferroni's test of the smallest p-value); Holm's later steps, which would pass
   more pairs, need p-values ordered across pairs that share candidates (dependent tests), for a gain only in
   how finely a criterion that already votes orders its survivors. Bonferroni holds under any dependence;
3. a criterion **abstains** in a partition for a round when none of the partition's survivors differs from
   any survivor beyond noise; its vote is then left out there, and the log says so;
4. **within noise is a tie**, also inside a criterion that votes: a survivor's evidence under a criterion is
   the number of survivors it exceeds beyond noise minus the number that exceed it (differences within noise
   count 0 for both). Ranking the raw values instead would let a criterion that votes because one candidate
   stands out order all the others by their noise; "within noise" is not transitive (a ~ b, b ~ c, a > c), so
   counting wins orders the survivors without chaining near-equal pairs into one group. With exact values
   (no standard errors) it orders them exactly as their ranks do;
5. over the surviving candidates, each criterion's evidence becomes a normal score: its mid-rank r of n gives
   z = Φ⁻¹((r + ½) / n) (ties share their mid-rank);
6. **Θ(m)** is the normalised rank, among *all* survivors, of m's mean z over the criteria S_i of m's
   partition that vote (every survivor is scored with S_i for this ranking; the mean is an exact sum,
   ``math.fsum``, so two candidates holding the same scores in another order get exactly equal Θ, and the
   seed, not rounding, orders them): Θ is spread uniformly over [0, 1] whether S_i holds one criterion or five,
   and whether they agree or not, so partitions compare on one scale; a partition whose assigned criteria all
   abstain is scored by every criterion that does not abstain there (as the warm-up assignment gives every
   criterion to a partition nothing nominated in);
7. **a partition with no evidence** (every criterion abstains there) neither shields nor dooms its members:
   each takes a seeded random position, uniform among the survivors with evidence (their order, ties included,
   is kept; ``_place_without_evidence``), and Θ is then every survivor's normalised rank. Each such member is
   thus removed with the same chance as a survivor drawn at random (a fixed Θ = ½ would rank it above every
   survivor below the median, so it would be removed always or never);
8. eq. 1: p(m) = softmax_m(k_m Θ(m)) over *all* survivors (never per block), with k_m = sigmoid(r_m) and r_m
   the rank of Θ(m) among survivors scaled to [-1, 1]. p is increasing in Θ, so the top-k by p is the top-k
   by Θ; p is what the log reports.

Ties (in nominations and in removal) are broken by a seeded draw, never by a candidate's name or position.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from statistics import NormalDist

import numpy as np

from prunepeft.method.criteria import CRITERIA, PRUNE_IF_HIGH, beyond_noise

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


def _above(criterion: str, scores: Scores, errors: Errors | None, steps: int | None) -> tuple[list[str], np.ndarray]:
    """(names, above): above[i, j] when candidate i is ahead of j in pruning order beyond noise."""
    names = sorted(scores)
    values = [scores[m][criterion] for m in names]
    errs = None if errors is None else [errors.get(m, {}).get(criterion, 0.0) for m in names]
    above = beyond_noise(criterion, values, errs, steps)
    return names, (above if PRUNE_IF_HIGH.get(criterion, False) else above.T)


def evidence_ranks(criterion: str, scores: Scores, errors: Errors | None = None, steps: int | None = None):
    """Per candidate: how many others it is ahead of in pruning order beyond noise, minus how many are ahead of
    it (higher = prune first; equal within noise counts for neither)."""
    names, above = _above(criterion, scores, errors, steps)
    net = above.sum(axis=1) - above.sum(axis=0)
    return {m: float(net[i]) for i, m in enumerate(names)}


def informative(
    criterion: str, members: Iterable[str], scores: Scores, errors: Errors | None = None, steps: int | None = None
) -> bool:
    """Whether the criterion tells at least one of ``members`` apart from some other scored candidate, beyond
    noise corrected for every pair of scored candidates."""
    names, above = _above(criterion, scores, errors, steps)
    compared = above.any(axis=0) | above.any(axis=1)
    index = {m: i for i, m in enumerate(names)}
    return any(compared[index[m]] for m in members)


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
    scores: Scores,
    criterion: str,
    k: int,
    errors: Errors | None = None,
    rng: random.Random | None = None,
    steps: int | None = None,
) -> list[str]:
    """The k candidates one criterion alone would prune; none if it cannot tell any two candidates apart beyond
    noise. Candidates within noise of each other are tied, and ties at the cut are decided by ``rng`` (seed 0 if
    none is given)."""
    if not informative(criterion, scores, scores, errors, steps):
        return []
    values = evidence_ranks(criterion, scores, errors, steps)
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
    steps: int | None = None,
) -> dict[str, list[str]]:
    """Per partition with survivors: its assigned criteria that do not abstain this round; where all of them
    abstain, the ``fallback`` criteria that do not (the hybrid passes every criterion, as the warm-up assignment
    does for a partition nothing nominated in)."""
    members: dict[str, list[str]] = {}
    for m in scores:
        members.setdefault(partition[m], []).append(m)
    compared: dict[str, set[str]] = {}  # criterion -> the survivors it tells apart from some other

    def votes(c: str, ms: list[str]) -> bool:
        if c not in compared:
            names, above = _above(c, scores, errors, steps)
            compared[c] = {m for m, seen in zip(names, above.any(axis=0) | above.any(axis=1), strict=True) if seen}
        return bool(compared[c] & set(ms))

    voting = {}
    for p, ms in sorted(members.items()):
        voting[p] = [c for c in assignment[p] if votes(c, ms)]
        if not voting[p]:
            voting[p] = [c for c in fallback if votes(c, ms)]
    return voting


def _place_without_evidence(held: dict[str, float], unheld: list[str], rng: random.Random) -> dict[str, float]:
    """Θ of every survivor when ``unheld`` have no evidence: each of them at a uniformly random position among the
    m survivors that hold evidence (whose order, ties included, is kept), then Θ = normalised rank of all."""
    if not unheld:
        return held
    m = len(held)
    keys = {n: (r + 1) / (m + 1) for n, r in mid_ranks(held).items()}  # m + 1 equal gaps between them
    keys |= {n: rng.random() for n in unheld}  # falls in each gap with chance 1 / (m + 1)
    return normalised_ranks(keys)


def combined_scores(
    scores: Scores,
    assignment: Mapping[str, list[str]],
    partition: Mapping[str, str],
    errors: Errors | None = None,
    voting: Mapping[str, list[str]] | None = None,
    steps: int | None = None,
    rng: random.Random | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """(Θ, p) per candidate: the partition score and the eq. 1 probability of being pruned. The members of a
    partition with no voting criterion draw their Θ from ``rng`` (seed 0 if none is given)."""
    voting = voting if voting is not None else voting_criteria(scores, assignment, partition, errors, steps=steps)
    used = sorted({c for crit in voting.values() for c in crit})
    z = {c: normal_scores(evidence_ranks(c, scores, errors, steps)) for c in used}
    by_set: dict[tuple[str, ...], dict[str, float]] = {}  # criteria set -> Θ of every survivor under it
    for crit in {tuple(crit) for crit in voting.values() if crit}:
        by_set[crit] = normalised_ranks({m: math.fsum(z[c][m] for c in crit) / len(crit) for m in scores})
    held = {m: by_set[tuple(voting[partition[m]])][m] for m in scores if voting[partition[m]]}
    theta = _place_without_evidence(held, sorted(set(scores) - set(held)), rng or random.Random(0))
    order = normalised_ranks(theta)
    k = {m: 1 / (1 + math.exp(-(2 * order[m] - 1))) for m in scores}
    top = max(k[m] * theta[m] for m in scores)
    weights = {m: math.exp(k[m] * theta[m] - top) for m in scores}
    total = sum(weights.values())
    return theta, {m: w / total for m, w in weights.items()}
