"""Several budgets from one search: a recipe and a final training per budget, the curve on top, its resume."""

import json
import os
import subprocess
import sys

import pytest

from prunepeft.cli.main import main
from prunepeft.method.recipe import Recipe
from test_search import _log, csv_task  # noqa: F401  (fixture)

BUDGETS = "3000,2000,1200"
ARGS = ["--epochs", "1", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--round-epochs", "0.3", "--no-progress", "--checkpoint-every", "0"]  # fmt: skip


def _search(model, task, out, *extra):
    return main(["search", "--model", model, "--task", task, "--output-dir", str(out), *ARGS, *extra])


@pytest.fixture(scope="module")
def curve_run(tiny_bert_dir, csv_task, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("budgets") / "run"
    assert _search(tiny_bert_dir, csv_task, out, "--budget", BUDGETS, "--train-budgets", "3000,1200") == 0
    return out


def test_one_search_gives_a_recipe_per_budget(curve_run):
    results = json.loads((curve_run / "results.json").read_text())
    points = results["budgets"]
    assert [p["budget"] for p in points] == ["3000", "2000", "1200"]
    assert [p["trained"] for p in points] == [True, False, True]
    kept = []
    for p in points:
        recipe = Recipe.load(str(curve_run / p["dir"]))
        assert recipe.peft_params == p["peft_params"] <= p["budget_params"] == int(p["budget"])
        assert sorted(c.name for c in recipe.candidates) == p["kept"]
        assert (curve_run / p["dir"] / "results.json").exists() == p["trained"]
        kept.append(set(p["kept"]))
    assert kept[0] >= kept[1] >= kept[2] and kept[0] != kept[2]  # pruning only removes: nested configurations
    # the survivors are recorded when they first fit: putting back the last candidate removed breaks the budget
    start, *rest = _log(curve_run)
    assert start["budgets"] == {"3000": 3000, "2000": 2000, "1200": 1200}
    removed_order = [n for r in rest if r["phase"] == "round" for n in r["removed"]]
    for p in points:
        last = next(
            n
            for n in reversed(removed_order)
            if n not in p["kept"]
            and removed_order.index(n)
            < min((removed_order.index(m) for m in removed_order if m in p["kept"]), default=len(removed_order))
        )
        assert p["peft_params"] + start["candidates"][last] > p["budget_params"]
    trained = [p for p in points if p["trained"]]
    for p in trained:
        sub = json.loads((curve_run / p["dir"] / "results.json").read_text())
        assert sub["params"]["peft"] == p["peft_params"] and sub["test"]["test_accuracy"] == p["test"]["test_accuracy"]
        assert (curve_run / p["dir"] / "adapter_model.safetensors").exists()
    times = results["time_s"]
    assert times["search_to_train_ratio"] == pytest.approx(
        (times["search_s"] + times.get("rate_choice_s_mean", 0.0)) / times["final_train_s_mean"], rel=2e-3
    )
    assert not (curve_run / "_search").exists() and not any((curve_run / p["dir"] / "_final").exists() for p in points)


def test_the_report_plots_the_curve(curve_run):
    page = (curve_run / "report.html").read_text()
    assert "curve.png" in page and "budget 2000" in page and "not trained" in page
    assert (curve_run / "curve.png").stat().st_size > 0
    assert "Module map" in page  # of the smallest budget
    (curve_run / "reference.json").write_text(json.dumps(
        {"points": [{"label": "r2", "group": "peft LoRA", "params": 1024, "test": 0.6},
                    {"label": "r4", "group": "peft LoRA", "params": 2048, "test": 0.7}]}))  # fmt: skip
    before = (curve_run / "curve.png").read_bytes()
    assert main(["report", str(curve_run)]) == 0
    assert (curve_run / "curve.png").read_bytes() != before  # the reference points are drawn


def test_bad_budget_lists_are_refused(tiny_bert_dir, csv_task, tmp_path, capsys):  # noqa: F811
    for budgets, extra, expected in (("2000,2000", [], "several different"), ("3000,", [], "several different"),
                                     ("3000,2000", ["--train-budgets", "1000"], "not among"),
                                     ("2000", ["--train-budgets", "2000"], "only one")):  # fmt: skip
        assert _search(tiny_bert_dir, csv_task, tmp_path / "o", "--budget", budgets, *extra) == 2
        assert expected in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


def _run(*args, kill_at=None):
    env = {**os.environ, "PRUNEPEFT_KILL_AT": kill_at or ""}
    return subprocess.run([sys.executable, "-m", "prunepeft", *args], env=env, capture_output=True, text=True)


def _comparable(out):
    results = json.loads((out / "results.json").read_text())
    return [(p["budget"], p["kept"], p["fit_round"], p.get("test", {}).get("test_accuracy"),
             p.get("test", {}).get("test_loss")) for p in results["budgets"]]  # fmt: skip


@pytest.mark.parametrize("kill_at", ["_search:5", "_final:9"])
def test_a_killed_multi_budget_search_resumes_to_the_same_curve(tiny_bert_dir, csv_task, tmp_path, kill_at):  # noqa: F811
    args = ["search", "--model", tiny_bert_dir, "--task", csv_task, *ARGS, "--budget", "3000,1200"]
    ref = tmp_path / "ref"
    assert _run(*args, "--output-dir", str(ref)).returncode == 0
    out = tmp_path / "run"
    killed = _run(*args, "--output-dir", str(out), kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "results.json").exists()
    resumed = _run("search", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _comparable(out) == _comparable(ref)
    assert json.loads((out / "results.json").read_text())["resumed"] is True


def test_one_budget_alone_keeps_what_the_curve_kept(curve_run, tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    """Same supernet (unit sizes fixed by the flags), seed and data: the search for 2000 alone stops where the
    multi-budget search first fitted 2000, so it keeps the same candidates."""
    out = tmp_path / "single"
    assert _search(tiny_bert_dir, csv_task, out, "--budget", "2000") == 0
    point = next(p for p in json.loads((curve_run / "results.json").read_text())["budgets"] if p["budget"] == "2000")
    assert sorted(c.name for c in Recipe.load(str(out)).candidates) == point["kept"]
