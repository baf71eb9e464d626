import math

import pytest
import torch
from torch import nn

from prunepeft.method import criteria
from prunepeft.method.callback import StatsRecorder
from prunepeft.method.candidates import Candidate
from prunepeft.method.criteria import UnitStats
from prunepeft.method.modules import LoraLinear


def test_weight_zeros_threshold_by_hand():
    a = torch.tensor([[1.0, 0.0], [2.0, -1.0]])
    b = torch.tensor([0.0, 5e-7, 3.0])
    params = [a, b]  # 7 elements
    assert criteria.weight(params) == pytest.approx((1 + 0 + 4 + 1 + 0 + 2.5e-13 + 9) / 7)
    assert criteria.zeros(params) == pytest.approx(2 / 7)
    assert criteria.threshold(params) == pytest.approx(3 / 7)  # 0, 0 and 5e-7 are below 1e-6


def test_statistics_criteria_by_hand():
    stats = UnitStats(activation_sum=3.0, activation_calls=4, grad_abs_sum=10.0, sensitivity_sum=6.0, grad_steps=2)
    assert criteria.activation(stats) == 0.75
    assert criteria.gradient(stats, n_params=5) == 1.0  # 10 / 2 steps / 5 elements
    assert criteria.sensitivity(stats, n_params=5) == 0.6


def test_orientation():
    assert criteria.oriented("weight", 2.0) == -2.0  # low weight = prune first
    assert criteria.oriented("zeros", 0.3) == 0.3  # many zeros = prune first


def test_recorder_accumulates_activation_gradient_and_sensitivity():
    torch.manual_seed(0)
    lora = LoraLinear(nn.Linear(3, 2), rank=2, alpha=2)
    nn.init.normal_(lora.lora_B.weight)
    cand = Candidate(spec=None, wrappers=[lora])
    rec = StatsRecorder({"c": cand})
    xs = [torch.randn(4, 3), torch.randn(4, 3)]
    act = grad = sens = 0.0
    for x in xs:
        delta = lora.lora_B(lora.lora_A(x))  # scaling is 1
        act += delta.abs().mean().item()
        lora.zero_grad()
        lora(x).pow(2).sum().backward()
        rec.after_backward()
        for p in (lora.lora_A.weight, lora.lora_B.weight):
            grad += p.grad.abs().sum().item()
            sens += (p * p.grad).abs().sum().item()
    with torch.no_grad():
        lora(xs[0])  # an evaluation pass: not counted
    stats = rec.take()["c"]
    assert stats.activation_calls == 2 and stats.grad_steps == 2
    assert stats.activation_sum == pytest.approx(act, rel=1e-6)
    assert stats.grad_abs_sum == pytest.approx(grad, rel=1e-6)
    assert stats.sensitivity_sum == pytest.approx(sens, rel=1e-6)
    assert rec.take()["c"].grad_steps == 0  # sums start again
    scores = criteria.evaluate_all(cand.parameters(), stats)
    n = 2 * 3 + 2 * 2
    assert scores["gradient"] == pytest.approx(grad / 2 / n, rel=1e-6)
    assert not math.isnan(scores["sensitivity"])
    rec.close()
    assert lora.observer is None
