"""The search's decisions, each checked against a case whose right answer is known: what is scored (gradient,
sensitivity and activation statistics by hand, through the real Trainer), in which direction (planted useless
and useful candidates), what is removed (highest Θ first, ties by a seeded draw, never by name), and when a
criterion has nothing to say (abstention)."""

from __future__ import annotations

import copy
import json
import random

import datasets
import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from prunepeft.method import hybrid
from prunepeft.method import pruner as pruner_module
from prunepeft.method.callback import StatsRecorder
from prunepeft.method.candidates import Candidate, SpaceSettings, attach_all, build_space, map_model
from prunepeft.method.criteria import CRITERIA, MIN_FRACTION, UnitStats, distinguishable, standard_errors
from prunepeft.method.modules import LoraLinear
from prunepeft.method.pruner import BudgetError, Pruner
from prunepeft.method.trainer_plugin import PrunePEFT

SPACE = SpaceSettings(space="paper", lora_rank=4, lora_alpha=4, bottleneck_size=8, lora_slices=1)  # whole units


def _bert(layers: int = 4) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=200, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def _toy_data(rows: int = 64, length: int = 12, seed: int = 0) -> datasets.Dataset:
    """Label 1 when token 7 occurs: learnable by any candidate."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, 200, (rows, length), generator=g)
    labels = torch.arange(rows) % 2
    ids[labels == 1, 3] = 7
    return datasets.Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()})


def _trainer(model, data, out, steps: int, callbacks, max_grad_norm: float = 1.0, batch: int = 16) -> Trainer:
    args = TrainingArguments(
        str(out), max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-2, save_strategy="no",
        report_to="none", use_cpu=True, max_grad_norm=max_grad_norm, disable_tqdm=True, seed=0,
        lr_scheduler_type="constant",
    )  # fmt: skip
    return Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)


# ---------------------------------------------------------------- what is scored


def test_gradient_and_sensitivity_sums_through_the_trainer_equal_a_hand_computation(tmp_path):
    """Read after clipping and before the optimizer step: a recorder reading zeroed or unclipped gradients fails."""
    model = _bert(layers=2)
    records = []
    search_ = PrunePEFT(model, budget="1100", space=SPACE, criterion="gradient", prune_per_round=1, log=records.append)
    torch.manual_seed(1)
    for p in (p for c in search_.pruner.alive.values() for p in c.parameters()):
        nn.init.normal_(p, std=0.1)  # no zero-initialised half: every W and every G is non-zero from the first step
    names = {id(p): n for n, p in model.named_parameters()}
    owned = {m: [names[id(p)] for p in c.parameters()] for m, c in search_.pruner.alive.items()}
    reference = copy.deepcopy(model)  # the same weights, before any step
    for module in reference.modules():
        module.observer = None  # the copy's wrappers must not report to the search's recorder
    data = _toy_data(rows=16)
    _trainer(model, data, tmp_path, steps=1, callbacks=[search_.callback(round_steps=1)], max_grad_norm=0.01).train()
    batch = {k: torch.tensor(data[k]) for k in ("input_ids", "labels")}
    reference.train()
    reference(**batch).loss.backward()
    norm = torch.nn.utils.clip_grad_norm_([p for p in reference.parameters() if p.requires_grad], 0.01)
    assert norm > 0.05  # clipping is active: unclipped gradients would be 5x larger
    params = dict(reference.named_parameters())
    scores = records[-1]["scores"]
    for m, owned_names in owned.items():
        ps = [params[n] for n in owned_names]
        n = sum(p.numel() for p in ps)
        grad = sum(p.grad.abs().sum().item() for p in ps) / n
        sens = sum((p * p.grad).abs().sum().item() for p in ps) / n
        assert grad > 0 and sens > 0
        assert scores[m]["gradient"] == pytest.approx(grad, rel=1e-4)
        assert scores[m]["sensitivity"] == pytest.approx(sens, rel=1e-4)


def test_activation_statistics_follow_the_branch_output():
    torch.manual_seed(0)
    small, large = LoraLinear(nn.Linear(8, 8), rank=2, alpha=2), LoraLinear(nn.Linear(8, 8), rank=2, alpha=2)
    large.lora_A.weight.data.copy_(small.lora_A.weight)
    nn.init.normal_(small.lora_B.weight)
    large.lora_B.weight.data.copy_(3 * small.lora_B.weight)
    rec = StatsRecorder({"small": Candidate(None, [small]), "large": Candidate(None, [large])})
    for _ in range(3):
        x = torch.randn(4, 8)
        small(x), large(x)
    stats = rec.take()
    assert stats["large"].activation_sum == pytest.approx(3 * stats["small"].activation_sum, rel=1e-6)
    assert stats["small"].activation_calls == stats["large"].activation_calls == 3
    rec.close()


# ---------------------------------------------------------------- abstention


def test_count_criteria_ignore_a_handful_of_elements():
    """threshold on trained floats: 5 of 25,000 elements below 1e-6 is noise, not a reason to prune."""
    noise = {"a": {"threshold": 5 / 25_000}, "b": {"threshold": 0.0}, "c": {"threshold": 2 / 25_000}}
    assert hybrid.nominate(noise, "threshold", 1) == []
    assert not hybrid.informative("threshold", ["a"], noise)
    signal = {**noise, "a": {"threshold": 2 * MIN_FRACTION}}
    assert hybrid.nominate(signal, "threshold", 1) == ["a"]


def test_statistics_within_noise_abstain():
    def stats(mean, spread, steps=10):
        values = [mean + spread * (-1) ** i for i in range(steps)]
        return UnitStats(grad_abs_sum=sum(values), grad_abs_sq=sum(v * v for v in values), grad_steps=steps)

    close, near, far = stats(1.00, 0.5), stats(1.05, 0.5), stats(3.0, 0.5)
    e = {n: standard_errors(s, 1)["gradient"] for n, s in {"close": close, "near": near, "far": far}.items()}
    assert not distinguishable("gradient", 1.00, 1.05, e["close"], e["near"])
    assert distinguishable("gradient", 1.00, 3.0, e["close"], e["far"])
    scores = {"close": {"gradient": 1.0}, "near": {"gradient": 1.05}}
    errors = {"close": {"gradient": e["close"]}, "near": {"gradient": e["near"]}}
    assert hybrid.nominate(scores, "gradient", 1, errors) == []


def test_an_abstaining_criterion_leaves_its_partition_and_the_log_says_so():
    scores = {
        "a": {**dict.fromkeys(CRITERIA, 0.0), "weight": 1.0},
        "b": {**dict.fromkeys(CRITERIA, 0.0), "weight": 2.0},
        "c": {**dict.fromkeys(CRITERIA, 0.0), "weight": 3.0},
    }
    partition = {"a": "P", "b": "P", "c": "Q"}
    voting = hybrid.voting_criteria(scores, {"P": ["weight", "threshold"], "Q": ["zeros"]}, partition)
    assert voting == {"P": ["weight"], "Q": []}
    theta, _ = hybrid.combined_scores(scores, {"P": ["weight", "threshold"], "Q": ["zeros"]}, partition)
    assert theta["a"] > theta["b"]  # c, with no evidence, takes a drawn position (test_hybrid checks its rate)


def test_a_partition_whose_criteria_all_abstain_is_scored_by_those_that_do_not():
    """Θ = ½ for a partition whose assigned criteria all abstain would leave its candidates to the seeded draw
    while another criterion can still tell them apart; the hybrid falls back to every informative criterion."""
    scores = {
        "a": {**dict.fromkeys(CRITERIA, 0.0), "weight": 1.0},
        "b": {**dict.fromkeys(CRITERIA, 0.0), "weight": 2.0},
        "c": {**dict.fromkeys(CRITERIA, 0.0), "weight": 3.0},
    }
    partition, assignment = {"a": "P", "b": "P", "c": "Q"}, {"P": ["threshold"], "Q": ["zeros"]}
    voting = hybrid.voting_criteria(scores, assignment, partition, fallback=CRITERIA)
    assert voting == {"P": ["weight"], "Q": ["weight"]}
    theta, _ = hybrid.combined_scores(scores, assignment, partition, voting=voting)
    assert theta["a"] > theta["b"] > theta["c"]  # the smallest weight is pruned first, in either partition
    nothing = {m: dict.fromkeys(CRITERIA, 0.0) for m in scores}  # no criterion can tell anything apart
    assert hybrid.voting_criteria(nothing, assignment, partition, fallback=CRITERIA) == {"P": [], "Q": []}


def test_the_hybrid_falls_back_when_its_partition_abstains_and_a_single_criterion_does_not(monkeypatch):
    hybrid_pruner = _pruner(_bert(), k=2)
    hybrid_pruner.criterion, hybrid_pruner.assignment = "hybrid", {"P": ["zeros"]}
    weights = {m: float(i) for i, m in enumerate(sorted(hybrid_pruner.alive))}
    weights["L3.serial_ffn"], weights["L2.lora_qv"] = -2.0, -1.0  # the two smallest weights
    record = _fake_round(hybrid_pruner, monkeypatch, weights)
    assert record["fell_back"] == {"P": ["weight"]} and record["abstained"] == {"P": ["zeros"]}
    assert record["removed"] == ["L3.serial_ffn", "L2.lora_qv"] and not record["tied_at_cut"]
    removed = set()
    for seed in range(6):  # `--criterion zeros`: zeros alone, even when it abstains: a draw, not weight's order
        alone = _pruner(_bert(), criterion="zeros", k=2, seed=seed)
        record = _fake_round(alone, monkeypatch, weights)
        assert record["fell_back"] == {} and record["abstained"] == {"P": ["zeros"]}
        removed.add(tuple(record["removed"]))
    assert len(removed) >= 4


# ---------------------------------------------------------------- comparable Θ


def test_theta_is_the_rank_among_all_survivors_of_the_mean_normal_score_by_hand():
    """P = {a, b} votes with weight and activation, Q = {x, y} with weight alone; exact values, 4 survivors.
    Normal scores of ranks 0..3 (prune-first last): z0 < z1 < -z1 < -z0 with z0 = Φ⁻¹(1/8), z1 = Φ⁻¹(3/8)."""
    raw = {"a": (1.0, 4.0), "b": (2.0, 1.0), "x": (3.0, 3.0), "y": (4.0, 2.0)}  # (weight, activation)
    scores = {m: {**dict.fromkeys(CRITERIA, 0.0), "weight": w, "activation": act} for m, (w, act) in raw.items()}
    partition = {"a": "P", "b": "P", "x": "Q", "y": "Q"}
    theta, _ = hybrid.combined_scores(scores, {"P": ["weight", "activation"], "Q": ["weight"]}, partition)
    # weight alone (low prunes first): a 1, b 2/3, x 1/3, y 0 among all four survivors
    assert theta["x"] == pytest.approx(1 / 3) and theta["y"] == 0.0
    # mean z of (weight, activation): a (-z0 + z0) / 2 = 0, b (-z1 - z0) / 2 > 0 (top), x (z1 + z1) / 2 < 0,
    # y (z0 - z1) / 2 < z1 (bottom): ranks b 3, a 2, x 1, y 0
    assert theta["b"] == 1.0 and theta["a"] == pytest.approx(2 / 3)


def test_the_warmup_counts_each_nomination_in_its_partition(monkeypatch):
    """The two candidates of partition P have the lowest weight in every turn: weight nominates them each turn,
    the counts say so, and P gets weight alone (without the counts every partition would get every criterion)."""
    model = _bert(layers=2)
    cands = {c.spec.name: c for c in attach_all(model, build_space(map_model(model), SPACE))}
    partition = {m: "P" if i < 2 else "Q" for i, m in enumerate(sorted(cands))}
    weights = {m: float(i) for i, m in enumerate(sorted(cands))}
    scores = {m: {**dict.fromkeys(CRITERIA, 0.0), "weight": weights[m]} for m in cands}
    monkeypatch.setattr(pruner_module, "evidence", lambda alive, stats: (scores, {}))
    records = []
    voter = pruner_module.WarmupVoter(cands, partition, k=2, turns=3, log=records.append, fresh_turns=False)
    for turn in range(3):
        assert voter.end_round(turn, {}, None) == (turn == 2)
    assert all(sorted(r["nominated"]["weight"]) == sorted(cands)[:2] for r in records)
    assert voter.counts["weight"] == {"P": 6, "Q": 0}
    assert voter.assignment() == {"P": ["weight"], "Q": list(CRITERIA)}  # nothing was nominated in Q


# ---------------------------------------------------------------- what is removed, and ties


def _pruner(model, criterion="weight", seed=0, k=1, names=None):
    specs = build_space(map_model(model), SPACE)
    cands = {c.spec.name: c for c in attach_all(model, specs)}
    if names:
        cands = {names[n]: c for n, c in cands.items()}
    partition = dict.fromkeys(cands, "P")
    budget = sum(c.n_params for c in cands.values()) // 2
    return Pruner(
        model, cands, budget_params=budget, k=k, criterion=criterion, assignment={"P": [criterion]},
        partition=partition, seed=seed, metric="accuracy",
    )  # fmt: skip


def _fake_round(pruner, monkeypatch, weights: dict[str, float]) -> dict:
    """One round of ``pruner`` in which only ``weights`` (as the weight criterion) is evidence; its log record."""
    scores = {m: {**dict.fromkeys(CRITERIA, 0.0), "weight": weights[m]} for m in pruner.alive}
    monkeypatch.setattr(pruner_module, "evidence", lambda alive, stats: ({m: scores[m] for m in alive}, {}))
    records = []
    pruner.log = records.append
    pruner.end_round(0, {}, None)
    return records[-1]


def test_the_pruner_removes_the_least_useful_first(monkeypatch):
    pruner = _pruner(_bert(), k=2)
    weights = {m: float(i) for i, m in enumerate(sorted(pruner.alive))}
    weights["L3.serial_ffn"], weights["L2.lora_qv"] = -2.0, -1.0  # the two smallest weights
    assert _fake_round(pruner, monkeypatch, weights)["removed"] == ["L3.serial_ffn", "L2.lora_qv"]


def test_renaming_candidates_does_not_change_what_is_removed(monkeypatch):
    first = _pruner(_bert(), k=3)
    names = sorted(first.alive)
    shuffled = names[::-1]
    rename = dict(zip(names, shuffled, strict=True))
    weights = {m: float((7 * i) % len(names)) for i, m in enumerate(names)}
    removed = _fake_round(first, monkeypatch, weights)["removed"]
    second = _pruner(_bert(), k=3, names=rename)
    removed_renamed = _fake_round(second, monkeypatch, {rename[m]: w for m, w in weights.items()})["removed"]
    assert [rename[m] for m in removed] == removed_renamed


def test_ties_in_removal_are_drawn_by_the_seed_not_by_name(monkeypatch):
    firsts = set()
    for seed in range(12):
        pruner = _pruner(_bert(), seed=seed, k=1)
        record = _fake_round(pruner, monkeypatch, dict.fromkeys(pruner.alive, 1.0))  # nothing to tell them apart
        assert record["abstained"] == {"P": ["weight"]}
        firsts.add(record["removed"][0])
    assert len(firsts) >= 4  # spread over the candidates, not always the first name


def test_ties_in_nomination_are_drawn_by_the_seed_not_by_name():
    scores = {m: {"weight": 1.0} for m in ("L0.x", "L1.x", "L10.x", "L2.x")} | {"L3.x": {"weight": 5.0}}
    picks = {tuple(hybrid.nominate(scores, "weight", 2, rng=random.Random(s))) for s in range(20)}
    assert all(len(p) == 2 and "L3.x" not in p for p in picks)
    assert len(picks) >= 3


# ---------------------------------------------------------------- planted candidates, through the Trainer


def _plant(search_: PrunePEFT, useless: str, useful: str) -> None:
    """``useless``: its branch is multiplied by zero and its weights stay zero; ``useful``: a 16x larger update."""
    for w in search_.pruner.alive[useless].wrappers:
        w.scaling = 0.0
        w.reset_parameters = lambda w=w: (nn.init.zeros_(w.lora_A.weight), nn.init.zeros_(w.lora_B.weight))
        w.reset_parameters()
    for w in search_.pruner.alive[useful].wrappers:
        w.scaling *= 16


@pytest.mark.parametrize("criterion", ["hybrid", *CRITERIA])
def test_a_planted_useless_candidate_goes_first_and_a_useful_one_survives(tmp_path, criterion):
    model = _bert()
    records = []
    search_ = PrunePEFT(
        model, budget="1700", space=SPACE, criterion=criterion, prune_per_round=1, warmup_turns=2, seed=0,
        log=records.append,
    )  # fmt: skip
    _plant(search_, useless="L2.lora_qv", useful="L0.lora_qv")
    # rounds of 32 steps (the default cap): at 8 or 16, the per-step noise of sensitivity hides even a candidate
    # whose value is exactly zero, once the noise rule corrects for the 28 pairs of 8 candidates
    trainer = _trainer(model, _toy_data(), tmp_path, steps=320, callbacks=[search_.callback(round_steps=32)])
    trainer.train()
    rounds = [r for r in records if r.get("phase") == "round"]
    assert rounds[0]["removed"] == ["L2.lora_qv"], rounds[0]["theta"]
    assert search_.done
    if criterion in ("hybrid", "activation", "gradient", "sensitivity"):  # the criteria that see a larger update
        assert "L0.lora_qv" in search_.pruner.alive
    if criterion == "hybrid":
        warm = [r for r in records if r.get("phase") == "warmup"]
        assert len(warm) == 2 and all("L2.lora_qv" in r["nominated"]["gradient"] for r in warm)


def test_the_api_refuses_a_budget_it_cannot_meet():
    with pytest.raises(BudgetError, match="below the largest candidate"):
        PrunePEFT(_bert(), budget="10", space=SPACE)
    with pytest.raises(BudgetError, match="nothing to prune"):
        PrunePEFT(_bert(), budget="0.9", space=SPACE)
    with pytest.raises(BudgetError, match="over 100%"):
        PrunePEFT(_bert(), budget="150%", space=SPACE)


def test_fresh_warmup_turns_start_the_candidates_again(tmp_path):
    from transformers import TrainerCallback

    model = _bert(layers=2)
    search_ = PrunePEFT(model, budget="1100", space=SPACE, warmup_turns=3)
    lora = search_.pruner.alive["L0.lora_qv"].wrappers[0]
    seen = []

    class AfterTurn(TrainerCallback):  # runs after the search's callback at the same step
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % 4 == 0:
                seen.append(float(lora.lora_B.weight.abs().sum()))

    _trainer(model, _toy_data(), tmp_path, steps=8, callbacks=[search_.callback(round_steps=4), AfterTurn()]).train()
    assert seen == [0.0, 0.0]  # after turns 1 and 2 the update was reset (B starts at zero again)


def test_a_criterion_that_abstained_in_every_round_is_labelled_a_draw(tmp_path):
    """bench tables: `--criterion zeros` whose log shows zeros abstaining in every partition of every round kept
    the seeded draw's configuration; voting once in one partition makes it a criterion again."""
    from prunepeft.bench.table import draw_note, drew_every_round

    partition = {"a": "P", "b": "P", "c": "Q"}
    everywhere = {"P": ["zeros"], "Q": ["zeros"]}
    rounds = [{"phase": "round", "scores": dict.fromkeys("abc"), "abstained": everywhere},
              {"phase": "round", "scores": dict.fromkeys("ac"), "abstained": everywhere}]  # fmt: skip

    def run(name, records, criterion="zeros"):
        folder = tmp_path / name
        folder.mkdir()
        lines = [{"phase": "start", "partition": partition}, *records]
        (folder / "search_log.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
        return {"bench": {"args": ["search", "--output-dir", str(folder), "--criterion", criterion]}}

    drew = run("drew", rounds)
    voted = run("voted", [rounds[0], {**rounds[1], "abstained": {"P": ["zeros"]}}])  # zeros told Q's c apart
    assert drew_every_round(drew) is True and drew_every_round(voted) is False
    assert drew_every_round(run("random", rounds, criterion="random")) is None  # not one criterion alone
    assert drew_every_round({"bench": {"args": ["search", "--output-dir", str(tmp_path / "gone"),
                                                "--criterion", "zeros"]}}) is None  # fmt: skip
    assert draw_note([True, True]) == " (draw: abstained in every round)"
    assert draw_note([True, False, True]) == " (draw on 2 of 3 seeds: abstained in every round)"
    assert draw_note([False, None]) == ""
