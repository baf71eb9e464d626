"""The bench runner: stages, learning rate chosen on validation, skipping finished runs, table and plots."""

import json

import pytest

from prunepeft import __version__
from prunepeft.bench.grid import FORMER_DEFAULTS, Grid, _flags, done, finished
from prunepeft.bench.run import run_grid
from prunepeft.bench.table import kept
from prunepeft.common.config import ConfigError
from test_search import csv_task  # noqa: F401  (fixture)


def grid(**methods):
    config = {"tasks": ["a", "b"], "seeds": [0, 1, 2], "tune_seeds": [0], "methods": methods}
    return Grid(config, "g", "root", "res")


def test_stages_tune_on_the_tune_seeds_then_run_the_rest(tmp_path):
    g = grid(lora={"learning_rates": [1e-3, 5e-4]}, plain=None, ablation={"learning_rate_from": "lora"},
             other={"learning_rate_from": "lora"})  # fmt: skip
    g.results_dir = str(tmp_path)
    first = g.first_stage()
    # per task: lora 2 rates x tune seed 0, plain 3 seeds; the ablation waits for lora's rate
    assert len(first) == 2 * (2 + 3)
    assert {r["dir"] for r in first} >= {"root/a/lora/lr0.001-s0", "root/b/plain/s2"}
    fixed = [(r["task"], r["method"], r["seed"]) for r in grid(x=None, y=None).first_stage()]
    assert fixed == [(t, m, s) for t in "ab" for s in (0, 1, 2) for m in "xy"]  # seed by seed within a task
    (tmp_path / "runs").mkdir()
    assert g.second_stage() == []  # nothing tuned yet: nothing waits on a guess
    for r in first:  # validation prefers 5e-4 on task a, 1e-3 on task b
        better = (r["task"] == "a") == (r["lr"] == 5e-4)
        _fake(r, {"metric": "accuracy", "validation": {"eval_accuracy": 0.9 if better else 0.5}})
    second = {(r["task"], r["method"], r["lr"], r["seed"]) for r in g.second_stage()}
    assert second == {
        ("a", "lora", 5e-4, 1),
        ("a", "lora", 5e-4, 2),
        ("b", "lora", 1e-3, 1),
        ("b", "lora", 1e-3, 2),
    } | {(t, m, lr, s) for t, lr in (("a", 5e-4), ("b", 1e-3)) for m in ("ablation", "other") for s in (0, 1, 2)}
    order = [(r["method"], r["seed"]) for r in g.second_stage()]
    # the tuned method's seeds on every task, then the borrowers, seed by seed, so a stopped grid stays level
    borrowers = [(m, s) for s in (0, 1, 2) for m in ("ablation", "other")]
    assert order == [("lora", 1), ("lora", 2)] * 2 + borrowers * 2


def test_variants_are_tuned_with_the_rate_and_borrowed_with_it(tmp_path):
    units = {"big": None, "small": {"lora_rank": 16}}
    g = grid(search={"command": "search", "learning_rates": [1e-3, 3e-3], "variants": units},
             ablation={"command": "search", "flags": {"criterion": "random"}, "learning_rate_from": "search"})  # fmt: skip
    g.results_dir = str(tmp_path)
    (tmp_path / "runs").mkdir()
    first = [r for r in g.first_stage() if r["task"] == "a"]
    assert {(r["variant"], r["lr"]) for r in first} == {(v, lr) for v in units for lr in (1e-3, 3e-3)}
    assert all(("--lora-rank" in r["args"]) == (r["variant"] == "small") for r in first)
    assert "root/a/search/small-lr0.001-s0" in {r["dir"] for r in first}
    for r in g.first_stage():  # the small variant at 3e-3 wins on validation
        best = (r["variant"], r["lr"]) == ("small", 3e-3)
        _fake(r, {"metric": "accuracy", "validation": {"eval_accuracy": 0.9 if best else 0.5}})
    assert g.chosen("a", "search") == ("small", 3e-3)
    borrowed = [r for r in g.second_stage() if r["method"] == "ablation"]
    assert len(borrowed) == 6 and all(r["variant"] == "small" for r in borrowed)
    args = borrowed[0]["args"]
    assert args[args.index("--lora-rank") + 1] == "16" and args[args.index("--criterion") + 1] == "random"
    with pytest.raises(ConfigError, match="variants"):
        grid(x={"variants": units})  # variants are tuned beside learning rates


def _fake(run, results):
    with open(run["copy"], "w") as fh:
        json.dump({"versions": {"prunepeft": __version__}, **results, "bench": {"args": run["args"]}}, fh)


def test_a_copy_counts_with_the_defaults_it_ran_under(tmp_path):
    today = FORMER_DEFAULTS[-1][0]
    copy = str(tmp_path / "c.json")
    search = ["search", "--task", "t", "--output-dir", "x", "--seed", "0"]
    v2 = ["--lora-slices", "1"]  # the 0.2.0 default that 0.3.0 changed, beside --space

    def counts(recorded, made_by, args):
        versions = {"prunepeft": made_by} if made_by else {}  # copies before 0.2.0 record no version
        with open(copy, "w") as fh:
            json.dump({"versions": versions, "bench": {"args": recorded}}, fh)
        return finished({"copy": copy, "args": args}) is not None

    for former in (None, "0.1.0"):  # made before the default space changed, without --space
        assert counts(search, former, [*search, "--space", "paper", *v2])  # a run of the former defaults, written out
        assert not counts(search, former, search)
        assert not counts(search, former, [*search, "--space", "attention", *v2])
        assert not counts(search, former, [*search, "--space", "paper"])  # slices and the rate choice changed too
    assert counts(search, "0.2.0", [*search, "--space", "attention", *v2])
    assert not counts(search, "0.2.0", search) and not counts(search, "0.2.0", [*search, "--space", "paper", *v2])
    assert counts(search, today, search) and not counts(search, today, [*search, "--space", "paper"])
    assert counts(search, "1.0.0", search)
    # a flag given stays as given; other commands are untouched
    given = [*search, "--space", "attention", "--lora-slices", "2"]
    assert counts(given, None, given) and not counts(given, None, [*given, "--lora-slices", "1"])
    lora = ["train", "--method", "lora", "--seed", "0"]
    assert counts(lora, None, lora) and counts(lora, "0.2.0", lora)
    supernet = ["train", "--method", "supernet", "--seed", "0"]
    assert counts(supernet, None, [*supernet, "--space", "paper", "--lora-slices", "1"])
    assert counts(supernet, "0.2.0", [*supernet, "--space", "attention", "--lora-slices", "1"])
    assert not counts(supernet, None, supernet)
    # the order of flags does not matter, which value goes with which flag does
    reordered = ["search", "--seed", "0", "--output-dir", "y", "--task", "t"]
    assert counts(search, today, reordered)
    assert not counts(["search", "--seed", "1", "--epochs", "0"], today, ["search", "--seed", "0", "--epochs", "1"])


def test_a_config_measured_under_former_defaults_writes_them_out():
    g = grid(s={"command": "search"}, t={"command": "train", "flags": {"method": "lora"}})
    assert "--lora-slices" not in g.run("a", "s", 0, None)["args"]
    g.config["defaults_of"] = "0.2.0"
    args = g.run("a", "s", 0, None)["args"]
    assert args[-4:] == ["--space", "attention", "--lora-slices", "1"]
    assert "--lora-slices" not in g.run("a", "t", 0, None)["args"]  # a LoRA baseline: nothing changed
    g.methods["s"]["defaults_of"] = "current"  # a method of today's defaults in a config measured before
    assert "--lora-slices" not in g.run("a", "s", 0, None)["args"]


def test_rate_choice_minds_losses_nan_ties_and_stale_runs(tmp_path):
    g = grid(m={"learning_rates": ["1e-3", 0.003, 0.01]})  # YAML reads 1e-3 as a string
    g.results_dir = str(tmp_path)
    (tmp_path / "runs").mkdir()
    assert g.methods["m"]["learning_rates"] == [0.001, 0.003, 0.01]
    runs = {lr: g.run("a", "m", 0, lr) for lr in (0.001, 0.003, 0.01)}
    losses = {0.001: 0.9, 0.003: 0.4, 0.01: float("nan")}
    for lr, run in runs.items():
        _fake(run, {"metric": "loss", "validation": {"eval_loss": losses[lr]}})
    assert g.chosen("a", "m") == (None, 0.003)  # the lowest loss, and NaN never wins
    for lr, run in runs.items():  # equal accuracy: the lower validation loss breaks the tie
        _fake(run, {"metric": "accuracy", "validation": {"eval_accuracy": 0.8, "eval_loss": {0.01: 0.3}.get(lr, 0.5)}})
    assert g.chosen("a", "m") == (None, 0.01)
    assert done(runs[0.01])
    changed = grid(m={"learning_rates": [0.01], "flags": {"epochs": 2}})
    changed.results_dir = str(tmp_path)
    assert not done(changed.run("a", "m", 0, 0.01))  # other settings: the old copy does not count
    moved = Grid({**g.config}, "g", "elsewhere", str(tmp_path))
    assert done(moved.run("a", "m", 0, 0.01))  # the folder a run wrote to is not a setting
    assert _flags({"search_eval_samples": 0, "x": False, "y": None, "z": True}) == ["--search-eval-samples", "0", "--z"]


def test_a_method_can_run_on_some_tasks_or_seeds_only(tmp_path):
    g = grid(plain=None, lora={"learning_rates": [1e-3]}, only_b={"tasks": ["b"]},
             tuned_b={"learning_rates": [1e-3], "tasks": ["b"]}, borrows={"learning_rate_from": "tuned_b"},
             once={"seeds": [1]})  # fmt: skip
    g.results_dir = str(tmp_path)
    (tmp_path / "runs").mkdir()
    first = g.first_stage()
    assert {(r["task"], r["method"]) for r in first} == {
        ("a", "plain"), ("a", "lora"), ("b", "plain"), ("b", "lora"), ("b", "only_b"), ("b", "tuned_b"),
        ("a", "once"), ("b", "once"),
    }  # fmt: skip
    assert [r["seed"] for r in first if r["method"] == "once"] == [1, 1]
    assert len([r for r in first if r["method"] == "plain"]) == 6  # the others run every seed
    for r in first:
        _fake(r, {"metric": "accuracy", "validation": {"eval_accuracy": 0.9}})
    second = {(r["task"], r["method"]) for r in g.second_stage()}
    assert second == {("a", "lora"), ("b", "lora"), ("b", "tuned_b"), ("b", "borrows")}  # nothing of b's on a
    with pytest.raises(ConfigError, match="tasks"):
        grid(x={"tasks": ["c"]})
    for bad in ({"seeds": [5]}, {"seeds": []}, {"seeds": [0], "learning_rates": [1e-3]}):
        with pytest.raises(ConfigError, match="seeds"):
            grid(x=bad)


def test_the_kept_table_shows_each_search_seed_by_seed_layer_by_layer():
    def result(seed, per_layer, search_s=10.0):
        time_s = {"final_train_s": 20.0} if search_s is None else {"search_s": search_s, "final_train_s": 20.0}
        return {"bench": {"seed": seed}, "per_layer": per_layer, "time_s": time_s}

    search = {"task": "t", "method": "prunepeft", "note": "", "results": [
        result(1, {"0": [], "1": ["lora_qkvo (rank 3)", "lora_ffn (rank 12)"]}),
        result(0, {"0": ["serial (bottleneck 8)"], "1": []})]}  # fmt: skip
    lora = {"task": "t", "method": "lora", "note": "", "results": [result(0, {"0": ["lora_qv (rank 8)"]}, None)]}
    lines = kept([search, lora])
    assert lines[4] == "| task | method | seed | layer 0 | layer 1 |"
    assert lines[6:8] == [
        "| t | prunepeft | 0 | serial 8 | - |",
        "| t | prunepeft | 1 | - | lora_qkvo 3, lora_ffn 12 |",
    ]
    assert len(lines) == 9 and not any("| lora |" in line for line in lines)  # a training run keeps no choice
    assert kept([lora]) == []


def test_runs_share_the_cores_the_bench_may_use(monkeypatch):
    """Threads per run = the cores the bench is allowed (taskset) // jobs, at least one."""
    from prunepeft.bench import run as bench_run

    seen = []
    monkeypatch.setattr(bench_run, "done", lambda run: False)
    monkeypatch.setattr(bench_run, "_execute", lambda run, threads: seen.append(threads))
    for cores, jobs, threads in [({0}, 1, 1), ({0, 1}, 1, 2), ({0, 1, 2, 3}, 2, 2), ({3}, 2, 1)]:
        monkeypatch.setattr(bench_run.os, "sched_getaffinity", lambda pid, cores=cores: cores, raising=False)
        seen.clear()
        bench_run._run_all([{"dir": "a", "args": []}], jobs)
        assert seen == [threads], (cores, jobs)


def test_bad_configs_are_refused():
    with pytest.raises(ConfigError, match="unknown keys"):
        Grid({"methods": {"a": {}}, "seed": [0]}, "g", "root", "res")
    with pytest.raises(ConfigError, match="learning_rate_from"):
        grid(x={"learning_rate_from": "nothing"})
    with pytest.raises(ConfigError, match="unknown keys"):
        grid(x={"learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="must be numbers"):
        grid(x={"learning_rates": []})
    with pytest.raises(ConfigError, match="share a name"):
        Grid({"tasks": ["a/train.csv", "b/train.csv"], "methods": {"x": None}}, "g", "root", "res")


def test_grid_runs_skips_and_tabulates(tiny_bert_dir, csv_task, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"name: tiny\nmodel: {tiny_bert_dir}\ntasks: [{csv_task}]\nseeds: [0, 1]\ntune_seeds: [0]\njobs: 2\n"
        "headline: prunepeft\n"
        "common: {epochs: 1, batch_size: 16, max_length: 16, lora_rank: 4}\n"
        "methods:\n  lora: {command: train, flags: {method: lora}, learning_rates: [0.001, 0.003]}\n"
        "  prunepeft: {command: search, flags: {budget: '2000', bottleneck_size: 8}}\n"
    )
    table = (tmp_path / run_grid(str(config))).read_text()
    assert (
        sum(line.startswith("| toy |") for line in table.split("## What each search kept")[0].splitlines()) == 2
        and "| lora | 0." in table.split("## Summary")[1]
    )
    paired = table.split("## prunepeft against each method")[1]
    assert "| lora | " in paired and "(n=2) | " in paired  # both seeds of both methods, compared seed by seed
    searches = [line for line in table.split("## What each search kept")[1].splitlines() if line.startswith("| toy |")]
    assert [line.split(" | ")[1:3] for line in searches] == [["prunepeft", "0"], ["prunepeft", "1"]]
    assert (tmp_path / "benchmarks/results/tiny_params.png").stat().st_size > 0
    assert (tmp_path / "benchmarks/results/tiny_search_cost.png").stat().st_size > 0
    copies = sorted(p.name for p in (tmp_path / "benchmarks/results/tiny/runs").iterdir())
    assert len(copies) == 5 and "toy__prunepeft__s1.json" in copies  # 2 rates + 1 more seed + 2 searches
    stamp = {p: p.stat().st_mtime for p in (tmp_path / "benchmarks/results/tiny/runs").iterdir()}
    run_grid(str(config))  # everything done: nothing reruns
    assert {p: p.stat().st_mtime for p in stamp} == stamp


def test_a_budget_list_is_a_row_per_budget_and_a_curve(tiny_bert_dir, csv_task, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "curve.yaml"
    config.write_text(
        f"name: curve\nmodel: {tiny_bert_dir}\ntasks: [{csv_task}]\nseeds: [0]\nheadline: prunepeft@2000\n"
        "common: {epochs: 1, batch_size: 16, max_length: 16, lora_rank: 4}\n"
        "methods:\n  prunepeft: {command: search, flags: {budget: '3000,2000,1200', bottleneck_size: 8,"
        " train_budgets: '3000,2000'}, learning_rates: [0.001, 0.003]}\n"
        "  lora_r2: {command: train, flags: {method: lora, lora_rank: 2}, curve: peft LoRA}\n"
        "  lora_r4: {command: train, flags: {method: lora, lora_rank: 4}, curve: peft LoRA}\n"
    )
    table = (tmp_path / run_grid(str(config))).read_text()
    lines = table.split("## Summary")[0].splitlines()
    assert [line.split(" | ")[1] for line in lines if line.startswith("| toy |")] == [
        "prunepeft@3000", "prunepeft@2000", "lora_r2", "lora_r4"]  # fmt: skip
    assert "| lora_r4 | " in table.split("## prunepeft@2000 against each method")[1]
    kept_rows = [line for line in table.split("## What each search kept")[1].splitlines() if line.startswith("| toy")]
    assert [line.split(" | ")[1] for line in kept_rows] == ["prunepeft@3000", "prunepeft@2000"]
    cells = [line.strip("| ").split(" | ")[3:] for line in kept_rows]
    assert all(len(c) == 4 and set(c) != {"-"} for c in cells)  # tiny_bert's four layers; each budget keeps units
    copies = sorted(p.name for p in (tmp_path / "benchmarks/results/curve/runs").iterdir())
    assert len(copies) == 4  # one search per rate (its budgets together), one run per LoRA rank
    (run,) = [p.parent for p in (tmp_path / "benchmarks/runs/curve/toy/prunepeft").glob("*/reference.json")]
    assert {p["label"] for p in json.loads((run / "reference.json").read_text())["points"]} == {"lora_r2", "lora_r4"}
    assert "curve.png" in (run / "report.html").read_text()
    assert (tmp_path / "benchmarks/results/curve_params.png").stat().st_size > 0
