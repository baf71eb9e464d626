"""End-to-end on the real model (all-MiniLM-L6-v2) and real data, on small slices (about a minute)."""

import json

import pytest

import prunepeft
from prunepeft.cli.main import main
from prunepeft.method.recipe import Recipe


@pytest.mark.slow
def test_default_search_on_minilm_small_slice(tmp_path):
    out = tmp_path / "run"
    args = ["search", "--max-train-samples", "256", "--epochs", "1", "--max-length", "48",
            "--search-eval-samples", "128", "--round-epochs", "0.5", "--output-dir", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    recipe = Recipe.load(str(out))
    results = json.loads((out / "results.json").read_text())
    assert recipe.model == "minilm" and recipe.num_layers == 6
    assert recipe.base_params > 22_000_000 and recipe.peft_params <= recipe.budget_params
    assert results["sizes"]["train"] == 256 and results["sizes"]["test"] > 1000
    assert 0.5 < results["test"]["test_accuracy"] <= 1  # a real number, not a crash or NaN
    model = prunepeft.load(None, str(out))
    n_trainable_saved = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n or "adapter_" in n)
    assert n_trainable_saved == recipe.peft_params  # pruned candidates are gone, not masked
