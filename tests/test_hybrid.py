import random

import pytest

from prunepeft.method import hybrid
from prunepeft.method.criteria import ALPHA, CRITERIA, MIN_STEPS, UnitStats, standard_errors


@pytest.mark.parametrize(
    "layers,sizes",
    [(24, [4, 8, 8, 4]), (12, [2, 4, 4, 2]), (6, [1, 2, 2, 1]), (2, [1, 1]), (1, [1])],
)
def test_spindle_blocks(layers, sizes):
    blocks = hybrid.spindle_blocks(layers)
    assert [blocks.count(b) for b in sorted(set(blocks))] == sizes
    assert blocks == sorted(blocks)
    assert hybrid.spindle_blocks(layers, 1) == [0] * layers


def test_normalised_ranks_with_ties():
    r = hybrid.normalised_ranks({"a": 3.0, "b": 1.0, "c": 3.0, "d": 2.0})
    assert r == {"b": 0.0, "d": 1 / 3, "a": 5 / 6, "c": 5 / 6}
    assert hybrid.normalised_ranks({"a": 1.0, "b": 1.0}) == {"a": 0.5, "b": 0.5}


def _scores(**weights):
    base = dict.fromkeys(CRITERIA, 0.0)
    return {m: {**base, "weight": w, "activation": 10 - w} for m, w in weights.items()}


def test_nominate_orients_and_abstains():
    scores = _scores(a=1.0, b=3.0, c=2.0)
    assert hybrid.nominate(scores, "weight", 2) == ["a", "c"]  # lowest weights
    assert hybrid.nominate(scores, "activation", 1) == ["b"]
    assert hybrid.nominate(scores, "zeros", 2) == []  # cannot tell them apart


def test_assignment_by_hand():
    sizes = {"P1": 1, "P2": 4}
    counts = {"weight": {"P1": 1, "P2": 2}, "gradient": {"P1": 0, "P2": 3}}
    got = hybrid.assign_criteria(counts, sizes)
    # rates: weight P1 1.0, P2 0.5; gradient P1 0, P2 0.75
    assert got["P1"] == ["weight"]
    assert got["P2"] == ["gradient"]
    got = hybrid.assign_criteria({"weight": {"P1": 1, "P2": 0}}, sizes)
    assert got["P2"] == list(CRITERIA)  # nobody nominated there: every criterion


def test_combined_scores_use_each_partitions_criteria_and_one_global_softmax():
    scores = _scores(a=1.0, b=3.0, x=2.0, y=4.0)
    partition = {"a": "P1", "b": "P1", "x": "P2", "y": "P2"}
    theta, p = hybrid.combined_scores(scores, {"P1": ["weight"], "P2": ["activation"]}, partition)
    # weight: low prunes (a first); activation = 10 - w: low activation = high w prunes (y first)
    assert theta["a"] > theta["b"] and theta["y"] > theta["x"]
    assert sum(p.values()) == pytest.approx(1.0)
    assert sorted(p, key=p.get) == sorted(theta, key=theta.get)  # p is increasing in theta
    # a small partition gains nothing from being small: one softmax over all candidates
    theta2, p2 = hybrid.combined_scores(scores, {"P1": ["weight"], "P2": ["weight"]}, partition)
    assert max(p2, key=p2.get) == "a"


def test_blocks_act_only_through_the_criteria_each_block_is_assigned():
    """12 layers, two kinds: with the same criteria in every depth block (as the warm-up assigned on mpnet), the
    partitions by block and kind give every candidate the Θ and p that partitions by kind alone give, so the search
    without blocks removes the same candidates; a block assigned other criteria changes its members' Θ."""
    rng = random.Random(3)
    blocks = hybrid.spindle_blocks(12)
    names = [f"L{layer}.{kind}" for layer in range(12) for kind in ("ffn", "qkvo")]
    scores = {m: {c: rng.random() for c in CRITERIA} for m in names}
    by_kind = {m: m.split(".")[1] for m in names}
    by_block = {m: hybrid.partition_of(int(m[1:].split(".")[0]), by_kind[m], blocks) for m in names}
    criteria = {"ffn": ["weight"], "qkvo": ["activation", "gradient", "weight"]}
    same = {p: criteria[p.split(".")[1]] for p in set(by_block.values())}
    assert len(same) == 8  # four blocks x two kinds
    assert hybrid.combined_scores(scores, criteria, by_kind) == hybrid.combined_scores(scores, same, by_block)
    other = same | {"B2.ffn": ["activation"]}  # one block of the middle assigned another criterion
    theta, _ = hybrid.combined_scores(scores, other, by_block)
    assert theta != hybrid.combined_scores(scores, criteria, by_kind)[0]


# ---------------------------------------------------------------- the noise rule


def _equal_candidates(rng: random.Random, n: int, steps: int, shift: dict[str, float] | None = None):
    """n candidates whose per-step gradient values share one true mean (plus ``shift``): (scores, errors), the
    errors estimated from the same steps, as the recorder does."""
    scores, errors = {}, {}
    for i in range(n):
        name = f"m{i:02d}"
        values = [rng.gauss(1.0 + (shift or {}).get(name, 0.0), rng.choice((0.1, 0.3, 0.5))) for _ in range(steps)]
        stats = UnitStats(grad_abs_sum=sum(values), grad_abs_sq=sum(v * v for v in values), grad_steps=steps)
        scores[name] = {"gradient": stats.grad_abs_sum / steps}
        errors[name] = {"gradient": standard_errors(stats, 1)["gradient"]}
    return scores, errors


def test_equal_candidates_make_a_criterion_nominate_in_at_most_alpha_of_turns():
    """12 equally useful candidates, honest errors from MIN_STEPS steps: with 2 standard errors and no correction
    a criterion nominated in 70% of turns; the Bonferroni rule keeps it near ALPHA. A 2-member partition votes no
    more often. A real difference is still seen."""
    rng = random.Random(0)
    turns, nominated, voted = 300, 0, 0
    partition = {f"m{i:02d}": "P" if i < 2 else "Q" for i in range(12)}
    for _ in range(turns):
        scores, errors = _equal_candidates(rng, 12, MIN_STEPS)
        nominated += bool(hybrid.nominate(scores, "gradient", 2, errors, rng, MIN_STEPS))
        voting = hybrid.voting_criteria(scores, dict.fromkeys("PQ", ["gradient"]), partition, errors, steps=MIN_STEPS)
        voted += bool(voting["P"])
    assert nominated / turns <= ALPHA + 0.02 and voted / turns <= ALPHA + 0.02
    seen = 0
    for _ in range(50):  # one candidate's gradient a tenth of the others': nominated nearly every turn
        scores, errors = _equal_candidates(rng, 12, MIN_STEPS, shift={"m05": -0.9})
        seen += hybrid.nominate(scores, "gradient", 1, errors, rng, MIN_STEPS) == ["m05"]
    assert seen >= 45


def test_within_noise_is_a_tie_inside_a_voting_criterion():
    """a stands out; b and c differ by far less than their noise: they tie, and the seed picks between them."""
    scores = {"a": {"gradient": 0.1}, "b": {"gradient": 1.0}, "c": {"gradient": 1.01}, "d": {"gradient": 5.0}}
    errors = {m: {"gradient": 0.02} for m in scores}
    ranks = hybrid.evidence_ranks("gradient", scores, errors, steps=32)
    assert ranks["a"] > ranks["b"] == ranks["c"] > ranks["d"]
    picks = {tuple(hybrid.nominate(scores, "gradient", 2, errors, random.Random(s), 32)) for s in range(20)}
    assert picks == {("a", "b"), ("a", "c")}
    theta, _ = hybrid.combined_scores(scores, {"P": ["gradient"]}, dict.fromkeys(scores, "P"), errors, steps=32)
    assert theta["b"] == theta["c"]
    exact = hybrid.evidence_ranks("gradient", scores)  # no errors: every gap counts, as ranks do
    assert exact["b"] > exact["c"]


def test_the_mean_of_normal_scores_is_an_exact_sum():
    """a holds ranks (0, 1, 5) under weight, activation, gradient and b holds (1, 5, 0): the same scores in another
    order, so the same Θ (a plain float sum gives them different ones; the seed must decide, not rounding)."""
    names = [f"m{i:02d}" for i in range(12)]
    held = {"weight": {"a": 0, "b": 1}, "activation": {"a": 1, "b": 5}, "gradient": {"a": 5, "b": 0}}
    scores = {m: {} for m in ["a", "b", *names[:10]]}
    for c, fixed in held.items():
        rest = iter(r for r in range(12) if r not in fixed.values())
        for m in scores:  # rank r from the prune-first end: a low value of these criteria is pruned first
            scores[m][c] = float(fixed[m] if m in fixed else next(rest))
    z = {c: hybrid.normal_scores({m: -s[c] for m, s in scores.items()}) for c in held}
    assert sum(z[c]["a"] for c in held) != sum(z[c]["b"] for c in held)  # the case rounding decides
    theta, _ = hybrid.combined_scores(scores, {"P": list(held)}, dict.fromkeys(scores, "P"))
    assert theta["a"] == theta["b"]


def test_a_partition_with_no_evidence_neither_shields_nor_dooms_its_members():
    """Q's criteria (and every other) abstain there; P's weights are exact. Over seeds each Q member is among the
    3 removed of 10 about 3/10 of the time, as a P member is on average (a fixed Θ = ½ would remove it always
    or never)."""
    scores = {f"p{i}": {**dict.fromkeys(CRITERIA, 0.0), "weight": float(i)} for i in range(8)}
    scores |= {q: {**dict.fromkeys(CRITERIA, 0.0), "weight": 3.5} for q in ("q0", "q1")}
    partition = {m: m[0].upper() for m in scores}
    assignment = {"P": ["weight"], "Q": ["zeros"]}
    voting = hybrid.voting_criteria(scores, assignment, partition)
    assert voting == {"P": ["weight"], "Q": []}
    removed = dict.fromkeys(scores, 0)
    seeds = 400
    for seed in range(seeds):
        rng = random.Random(seed)
        theta, _ = hybrid.combined_scores(scores, assignment, partition, voting=voting, rng=rng)
        for m in hybrid.draw_order(theta, theta, rng)[:3]:
            removed[m] += 1
    for q in ("q0", "q1"):
        assert 0.22 < removed[q] / seeds < 0.38, removed
    assert removed["p0"] > removed["p7"]  # P keeps its evidence: the smallest weight goes first


def test_the_fallback_keeps_every_criterion_that_votes():
    """P's assigned criterion abstains; weight and activation both tell P's members apart: both vote."""
    scores = {m: {**dict.fromkeys(CRITERIA, 0.0), "weight": w, "activation": 10 - 2 * w} for m, w in
              (("a", 1.0), ("b", 2.0), ("c", 3.0))}  # fmt: skip
    voting = hybrid.voting_criteria(scores, {"P": ["zeros"]}, dict.fromkeys(scores, "P"), fallback=CRITERIA)
    assert voting == {"P": ["weight", "activation"]}
