import pytest

from prunepeft.method import hybrid
from prunepeft.method.criteria import CRITERIA


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
