"""Property-based tests of recipe and budget parsing: what we write reads back; junk is refused, never a crash."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from prunepeft.method.candidates import SPACES, CandidateSpec
from prunepeft.method.pruner import BudgetError, parse_budget
from prunepeft.method.recipe import Recipe, RecipeError

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.0123456789", min_size=1, max_size=20)
kinds = st.sampled_from([(kind, module) for space in SPACES.values() for kind, module, _ in space])


@st.composite
def specs(draw):
    kind, module = draw(kinds)
    lora = module == "lora"
    return CandidateSpec(
        name=draw(names), kind=kind, layer=draw(st.integers(0, 80)), module=module,
        targets=tuple(draw(st.lists(names, min_size=1, max_size=3))), size=draw(st.integers(1, 512)),
        alpha=draw(st.floats(0.5, 256, allow_nan=False)) if lora else 0.0,
        dropout=draw(st.floats(0, 0.9, allow_nan=False)) if lora else 0.0,
        activation="" if lora else draw(st.sampled_from(["relu", "gelu", "silu", "tanh"])),
    )  # fmt: skip


@st.composite
def recipes(draw):
    # one candidate per (layer, kind): a recipe holds what is trained, its LoRA slices already merged per location
    candidates = draw(st.lists(specs(), max_size=12, unique_by=lambda s: (s.layer, s.kind)))
    return Recipe(
        model=draw(names), task=draw(names), num_labels=draw(st.integers(1, 10)), layers_path=draw(names),
        num_layers=max([c.layer for c in candidates], default=0) + 1, candidates=candidates,
        peft_params=draw(st.integers(0, 10**9)), budget_params=draw(st.integers(0, 10**9)),
        base_params=draw(st.integers(1, 10**11)), head_params=draw(st.integers(0, 10**6)),
        removed=draw(st.dictionaries(names, st.integers(1, 50), max_size=5)),
        assignment=draw(st.dictionaries(names, st.lists(st.sampled_from(["weight", "zeros", "gradient"])), max_size=4)),
    )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(recipes())
def test_any_recipe_reads_back_to_the_same_configuration(recipe):
    data = json.loads(json.dumps(recipe.to_dict()))
    again = Recipe.from_dict(data)
    assert again == recipe
    assert again.per_layer() == recipe.per_layer()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_junk_is_refused_with_a_recipe_error(junk):
    try:
        Recipe.from_dict(junk)
    except RecipeError:
        return
    raise AssertionError("junk accepted as a recipe")


@settings(max_examples=60, deadline=None)
@given(recipes(), st.sampled_from(["candidates", "num_labels", "model", "peft_params"]), json_values)
def test_damaged_recipes_are_refused_not_crashing(recipe, key, junk):
    data = recipe.to_dict()
    data[key] = junk
    try:
        Recipe.from_dict(data)
    except RecipeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_budget_parsing_never_crashes(text):
    try:
        value = parse_budget(text, 1_000_000)
    except BudgetError:
        return
    assert value >= 0
