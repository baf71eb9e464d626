"""The bench runner: plan, run, skip finished runs, and tabulate with the learning rate chosen on validation."""

import pytest

from prunepeft.bench import plan, run_grid
from prunepeft.config import ConfigError
from test_search import csv_task  # noqa: F401  (fixture)


def test_plan_expands_the_grid():
    config = {"tasks": ["a", "b"], "seeds": [0, 1], "methods": {"lora": {"learning_rates": [1e-3, 5e-4]}, "x": None}}
    runs = plan(config, "root")
    assert len(runs) == 2 * (2 * 2 + 2)  # tasks x (lora: 2 rates x 2 seeds + x: 2 seeds)
    assert {r["dir"] for r in runs} >= {"root/a/lora/lr0.001-s1", "root/b/x/s0"}
    with pytest.raises(ConfigError, match="unknown keys"):
        plan({"methods": {"a": {}}, "seed": [0]}, "root")


def test_grid_runs_skips_and_tabulates(tiny_bert_dir, csv_task, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"name: tiny\nmodel: {tiny_bert_dir}\ntasks: [{csv_task}]\nseeds: [0]\n"
        "common: {epochs: 1, batch_size: 16, max_length: 16, lora_rank: 4}\n"
        "methods:\n  lora: {command: train, flags: {method: lora}, learning_rates: [0.001, 0.003]}\n"
        "  prunepeft: {command: search, flags: {budget: '2000', bottleneck_size: 8}}\n"
    )
    table = (tmp_path / run_grid(str(config))).read_text()
    assert table.count("| toy |") == 2 and "± 0.0000" in table
    stamp = {p: p.stat().st_mtime for p in tmp_path.glob("benchmarks/runs/tiny/**/results.json")}
    assert len(stamp) == 3
    run_grid(str(config))  # everything done: nothing reruns
    assert {p: p.stat().st_mtime for p in stamp} == stamp
