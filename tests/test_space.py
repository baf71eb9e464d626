import pytest
import torch
from torch import nn
from transformers import (
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from conftest import tiny_bert, tiny_llama
from prunepeft.method.candidates import SpaceError, SpaceSettings, attach, attach_all, build_space, detach, map_model
from prunepeft.method.modules import ParallelAdapter, SerialAdapter, SlicedLoraLinear
from prunepeft.method.pruner import drop_from_optimizer

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100)


def test_bert_map_and_paper_space():
    model = tiny_bert(layers=4)
    mm = map_model(model)
    assert mm.layers_path == "bert.encoder.layer" and mm.num_layers == 4
    specs = build_space(mm, SpaceSettings(space="paper", lora_slices=1))
    assert [s.name for s in specs[:2]] == ["L0.lora_qv", "L0.serial_ffn"]
    assert specs[0].targets == (
        "bert.encoder.layer.0.attention.self.query",
        "bert.encoder.layer.0.attention.self.value",
    )
    assert specs[1].targets == ("bert.encoder.layer.0.output.dense",)
    assert len(specs) == 8


@pytest.mark.parametrize("make", [tiny_bert, tiny_llama])
def test_the_attention_space_puts_lora_on_every_attention_projection(make):
    model = make()
    mm = map_model(model)
    specs = build_space(mm, SpaceSettings(space="attention", lora_slices=1))
    assert [s.kind for s in specs] == ["lora_qkvo", "serial_ffn"] * mm.num_layers
    roles = ("q", "k", "v", "o")
    assert specs[2].targets == tuple(f"{mm.layers_path}.1.{mm.roles[r][0]}" for r in roles)
    assert specs[3].targets == (f"{mm.layers_path}.1.{mm.roles['ffn_out'][0]}",)


@pytest.mark.parametrize(
    "model,layers_path,q",
    [
        (
            RobertaForSequenceClassification(RobertaConfig(**SMALL)),
            "roberta.encoder.layer",
            "attention.self.query",
        ),
        (
            DebertaV2ForSequenceClassification(DebertaV2Config(**SMALL)),
            "deberta.encoder.layer",
            "attention.self.query_proj",
        ),
        (tiny_llama(), "model.layers", "self_attn.q_proj"),
    ],
)
def test_known_families(model, layers_path, q):
    mm = map_model(model)
    assert mm.layers_path == layers_path
    assert mm.roles["q"] == (q,)
    specs = build_space(mm, SpaceSettings(space="extended", lora_slices=1))
    assert len(specs) == 9 * mm.num_layers
    cands = attach_all(model, specs)  # every target exists and is wrappable
    assert all(c.n_params > 0 for c in cands)


def test_llama_ffn_in_is_gate_and_up():
    mm = map_model(tiny_llama())
    assert mm.roles["ffn_in"] == ("mlp.gate_proj", "mlp.up_proj")


def test_unknown_architecture_is_discovered_by_names():
    cfg = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    mm = map_model(DistilBertForSequenceClassification(cfg))
    assert mm.layers_path == "distilbert.transformer.layer"
    assert mm.roles == {
        "q": ("attention.q_lin",), "k": ("attention.k_lin",), "v": ("attention.v_lin",),
        "o": ("attention.out_lin",), "ffn_in": ("ffn.lin1",), "ffn_out": ("ffn.lin2",),
    }  # fmt: skip


class Blockless(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Conv1d(4, 4, 1)


class OddBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = nn.Linear(4, 4)


def test_nothing_found_lists_what_was_found():
    with pytest.raises(SpaceError, match="--layers-path"):
        map_model(Blockless())
    odd = nn.Module()
    odd.blocks = nn.ModuleList([OddBlock(), OddBlock()])
    mm = map_model(odd)
    with pytest.raises(SpaceError, match=r"\['mix'\].*--target"):
        build_space(mm, SpaceSettings())
    mm = map_model(odd, role_overrides={"q": ("mix",), "v": ("mix",), "ffn_out": ("mix",)})
    assert len(build_space(mm, SpaceSettings(space="paper", lora_slices=1))) == 4
    attention = SpaceSettings(space="attention", lora_slices=1)
    assert [s.kind for s in build_space(mm, attention)] == ["serial_ffn"] * 2  # no k, o: no attention LoRA
    with pytest.raises(SpaceError, match="not Linear"):
        map_model(odd, role_overrides={"q": ("nope",)})


def test_attach_detach_restores_model_exactly():
    model = tiny_bert(layers=2)
    before = {n: p.clone() for n, p in model.state_dict().items()}
    originals = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    x = torch.randint(0, 100, (2, 7))
    model.eval()
    ref = model(input_ids=x).logits
    specs = build_space(map_model(model), SpaceSettings(space="extended"))
    cands = attach_all(model, specs)
    ffn_out = model.get_submodule("bert.encoder.layer.0.output.dense")
    assert isinstance(ffn_out, SerialAdapter) and isinstance(ffn_out.base, ParallelAdapter)
    assert isinstance(ffn_out.base.base, SlicedLoraLinear)  # the location's slices share one wrapper
    torch.testing.assert_close(model(input_ids=x).logits, ref)  # every candidate starts as identity
    # remove from the middle of a chain first, then the rest
    by_name = {c.spec.name: c for c in cands}
    detach(model, by_name.pop("L0.parallel_ffn"))
    assert model.get_submodule("bert.encoder.layer.0.output.dense").base.__class__ is SlicedLoraLinear
    for cand in by_name.values():
        detach(model, cand)
    assert {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)} == originals
    assert set(model.state_dict()) == set(before)


def test_removed_parameters_leave_the_optimizer():
    model = tiny_bert(layers=2)
    cand = attach(model, build_space(map_model(model), SpaceSettings(lora_slices=1))[0])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    model(input_ids=torch.randint(0, 100, (2, 5))).logits.sum().backward()
    opt.step()
    params = cand.parameters()
    assert all(p in opt.state for p in params)
    detach(model, cand)
    drop_from_optimizer(opt, params)
    kept = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in kept or p in opt.state for p in params)
    assert not any(id(p) in {id(q) for q in model.parameters()} for p in params)


@pytest.mark.parametrize("space", ["lora", "attention", "paper", "extended"])
@pytest.mark.parametrize("make", [tiny_bert, tiny_llama])
def test_unit_sizes_give_every_candidate_at_most_an_equal_share_of_twice_the_budget(space, make):
    from prunepeft.method.candidates import KEEP_SHARE, spec_params, unit_sizes

    model = make()
    model_map = map_model(model)
    settings = SpaceSettings(space=space, lora_slices=1)  # whole locations (slices: test_slices_*)
    for budget in (3_000, 12_000, 48_000):
        sizes = unit_sizes(model, model_map, settings, budget)
        specs = build_space(model_map, settings, sizes)
        share = budget / (KEEP_SHARE * len(specs))
        for spec in specs:
            one_more = spec_params(model, type(spec)(**{**spec.__dict__, "size": spec.size + 1}))
            step = one_more - spec_params(model, spec)  # what one more rank or width costs
            # the largest size within the share: one more rank or width would pass it
            assert spec.size == 1 or spec_params(model, spec) <= share < one_more, (spec, share, step)
            assert spec.alpha == (2.0 * spec.size if spec.module == "lora" else 0.0)
        supernet = sorted((spec_params(model, s) for s in specs), reverse=True)
        if min(sizes.values()) > 1:  # so any half of the candidates fits the budget, the largest half too
            assert sum(supernet[: int(KEEP_SHARE * len(specs))]) <= budget
        assert sum(supernet) == pytest.approx(budget / KEEP_SHARE, rel=0.35) or min(sizes.values()) == 1


def test_unit_sizes_keep_what_the_user_gives():
    from prunepeft.method.candidates import unit_sizes

    model = tiny_bert()
    settings = SpaceSettings(space="paper", lora_rank=3, lora_alpha=5.0, lora_slices=1)
    sizes = unit_sizes(model, map_model(model), settings, 20_000)
    assert sizes["lora_qv"] == 3 and sizes["serial_ffn"] > 3
    specs = build_space(map_model(model), settings, sizes)
    assert {(s.kind, s.size, s.alpha) for s in specs if s.layer == 0} == {
        ("lora_qv", 3, 5.0),
        ("serial_ffn", sizes["serial_ffn"], 0.0),
    }
    no_budget = SpaceSettings(space="paper", lora_slices=1)
    assert {s.size for s in build_space(map_model(model), no_budget)} == {32, 64}  # no budget: paper units
    zero = build_space(map_model(model), SpaceSettings(lora_rank=3, lora_alpha=0.0, lora_slices=1))  # even 0 stays
    assert {s.alpha for s in zero if s.module == "lora"} == {0.0}


@pytest.mark.parametrize("make", [tiny_bert, tiny_llama])
def test_the_default_space_is_lora_only_on_attention_and_feed_forward(make):
    mm = map_model(make())
    specs = build_space(mm, SpaceSettings(lora_slices=1))
    assert {s.module for s in specs} == {"lora"}
    assert [s.kind for s in specs] == ["lora_qkvo", "lora_ffn"] * mm.num_layers
    roles = ("ffn_in", "ffn_out")
    assert specs[3].targets == tuple(f"{mm.layers_path}.1.{n}" for r in roles for n in mm.roles[r])


@pytest.mark.parametrize(
    "rank,slices,expected",
    [(12, 4, [3] * 4), (9, 4, [3, 2, 2, 2]), (5, 4, [2, 1, 1, 1]), (3, 4, [1] * 3), (1, 4, [1]), (8, 1, [8])],
)
def test_a_location_is_sliced_into_near_equal_ranks_that_sum_to_it(rank, slices, expected):
    from prunepeft.method.candidates import slice_ranks

    assert slice_ranks(rank, slices) == expected


def test_slices_are_one_lora_of_the_summed_rank():
    """Chained slices on the same weights compute what the merged spec computes with their weights stacked."""
    from prunepeft.method.candidates import merge_slices

    torch.manual_seed(0)
    model = tiny_bert(layers=2)
    mm = map_model(model)
    specs = build_space(mm, SpaceSettings(lora_rank=8, lora_slices=4))
    layer0 = [s for s in specs if s.layer == 0 and s.kind == "lora_qkvo"]
    assert [s.name for s in layer0] == [f"L0.lora_qkvo.s{i}" for i in range(4)] and {s.size for s in layer0} == {2}
    kept = [layer0[0], layer0[2]]
    (merged,) = merge_slices(kept)
    assert (merged.name, merged.size, merged.alpha) == ("L0.lora_qkvo", 4, 8.0)
    x = torch.randint(0, 100, (2, 7))
    model.eval()
    sliced = attach_all(model, kept)
    for cand in sliced:
        for w in cand.wrappers:
            torch.nn.init.normal_(w.lora_B.weight)
    out_sliced = model(input_ids=x).logits
    stacks = {}
    for cand in sliced:
        for target, w in zip(cand.spec.targets, cand.wrappers, strict=True):
            stacks.setdefault(target, []).append((w.lora_A.weight.detach(), w.lora_B.weight.detach()))
    for cand in reversed(sliced):
        detach(model, cand)
    (whole,) = attach_all(model, [merged])
    for target, w in zip(merged.targets, whole.wrappers, strict=True):
        with torch.no_grad():
            w.lora_A.weight.copy_(torch.cat([a for a, _ in stacks[target]], 0))
            w.lora_B.weight.copy_(torch.cat([b for _, b in stacks[target]], 1))
    torch.testing.assert_close(model(input_ids=x).logits, out_sliced)


def test_each_slice_is_observed_alone_and_removing_one_leaves_the_others():
    """A location's slices run as one LoRA, yet each slice's observer gets that slice's own output (what the
    activation criterion scores); a removed slice stops contributing and leaves the optimizer, the others are kept."""
    torch.manual_seed(0)
    model = tiny_bert(layers=1)
    specs = [s for s in build_space(map_model(model), SpaceSettings(lora_rank=6, lora_slices=3)) if s.layer == 0]
    cands = {c.spec.name: c for c in attach_all(model, [s for s in specs if s.kind == "lora_qkvo"])}
    query = model.get_submodule("bert.encoder.layer.0.attention.self.query")
    assert isinstance(query, SlicedLoraLinear) and list(query.slices) == ["s0", "s1", "s2"]
    for cand in cands.values():
        for w in cand.wrappers:
            nn.init.normal_(w.lora_B.weight)
    x = torch.randn(3, 5, query.in_features)
    seen = {}
    for name, cand in cands.items():
        cand.wrappers[0].observer = lambda delta, name=name: seen.setdefault(name, delta)
    out = query(x)
    base = query.base(x)
    alone = {n: c.wrappers[0].lora_B(c.wrappers[0].lora_A(x)) * query.scaling for n, c in cands.items()}
    torch.testing.assert_close(out, base + sum(alone.values()))
    for name in cands:
        torch.testing.assert_close(seen[name], alone[name])
    with torch.no_grad():  # evaluation passes are not observed
        seen.clear()
        query(x)
    assert seen == {}
    gone = cands.pop("L0.lora_qkvo.s1")
    detach(model, gone)
    assert list(query.slices) == ["s0", "s2"]
    assert model.get_submodule("bert.encoder.layer.0.attention.self.query") is query
    torch.testing.assert_close(query(x), base + alone["L0.lora_qkvo.s0"] + alone["L0.lora_qkvo.s2"])
    assert not any(p is q for p in gone.parameters() for q in model.parameters())
    for cand in cands.values():
        detach(model, cand)
    assert isinstance(model.get_submodule("bert.encoder.layer.0.attention.self.query"), nn.Linear)


def test_merging_keeps_other_candidates_and_refuses_mismatched_slices():
    import dataclasses

    from prunepeft.method.candidates import merge_slices

    specs = build_space(map_model(tiny_bert(layers=2)), SpaceSettings(space="attention", lora_rank=8))
    adapters = [s for s in specs if s.module != "lora"]
    assert merge_slices(adapters) == adapters  # an adapter is one candidate: nothing to merge
    lora = [s for s in specs if s.module == "lora" and s.layer == 1]
    assert [(s.name, s.size) for s in merge_slices(lora)] == [("L1.lora_qkvo", 8)]
    with pytest.raises(SpaceError, match="cannot be merged"):
        merge_slices([lora[0], dataclasses.replace(lora[1], alpha=lora[1].alpha * 3)])
