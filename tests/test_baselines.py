"""Every baseline trains through the same path as a found configuration, on a tiny model."""

import json

import pytest

from prunepeft.cli.main import main
from test_search import csv_task  # noqa: F401  (fixture)

FAST = ["--epochs", "2", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--no-progress"]  # fmt: skip


def _train(model_dir, task, out, method, *extra):
    args = ["train", "--method", method, "--model", model_dir, "--task", task, "--output-dir", str(out), *FAST, *extra]
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("method", ["full", "lora", "dora", "adapter", "supernet"])
def test_baseline_runs_and_reports(tiny_bert_dir, csv_task, tmp_path, method):  # noqa: F811
    results = _train(tiny_bert_dir, csv_task, tmp_path / method, method)
    assert results["method"] == method and 0 <= results["test"]["test_accuracy"] <= 1
    params = results["params"]
    expected = {
        "full": params["base"] + params["head"],
        "lora": 4 * 4 * 32 * 4,  # 4 layers x (q, v) x (A + B) = 4 x 2 x 2 x (4 x 32)
        "adapter": 4 * (32 * 8 + 8 + 8 * 32 + 32),
        # the default (LoRA-only) space: 4 layers x ((q, k, v, o) x (A + B), and ffn_in 32->64, ffn_out 64->32)
        "supernet": 4 * (4 * (2 * 4 * 32) + 2 * 4 * (32 + 64)),
    }
    if method in expected:
        assert params["peft"] == expected[method]
    if method == "dora":  # DoRA adds a magnitude vector per adapted Linear
        assert params["peft"] == 4 * 4 * 32 * 4 + 4 * 2 * 32


def test_adalora_allocates_ranks(tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    results = _train(tiny_bert_dir, csv_task, tmp_path / "ada", "adalora", "--epochs", "6")
    params = results["params"]
    assert params["adalora_calls"] > 0  # update_and_allocate really ran every step
    ranks = params["adalora_final_ranks"]
    assert ranks and all(0 <= r <= 6 for r in ranks.values())  # init_r = 1.5 x 4
    assert params["adalora_total_rank"] <= 4 * len(ranks)  # the budget: target_r on average
