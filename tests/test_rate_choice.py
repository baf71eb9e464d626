"""The final training's learning rate, chosen on validation by short probes (runs.rate_choice)."""

import dataclasses
import json
import math

import datasets
import pytest

from prunepeft.cli.main import _train_settings, main
from prunepeft.cli.parser import parse
from prunepeft.data.task import TaskData
from prunepeft.method.recipe import Recipe
from prunepeft.runs import rate_choice
from prunepeft.runs.options import RunOptions
from prunepeft.runs.rate_choice import GRID, Probe, pick, probe_steps, recipe_rate, settle_rate
from prunepeft.runs.search import _curve
from prunepeft.runs.training import TrainSettings
from test_search import csv_task  # noqa: F401  (fixture)

NAN = float("nan")


def _probes(metrics, losses=(0.5, 0.5, 0.5), classes=(2, 2, 2)):
    return [Probe(r, 10, m, loss, c) for r, m, loss, c in zip(GRID, metrics, losses, classes, strict=True)]


def test_the_rate_with_the_best_validation_metric_wins():
    assert pick(_probes([0.70, 0.80, 0.75]), "accuracy", 2) == (1e-3, "best validation accuracy (0.8000)")
    assert pick(_probes([0.80, 0.70, 0.75]), "accuracy", 2)[0] == 5e-4
    assert pick(_probes([0.70, 0.75, 0.80]), "accuracy", 2)[0] == 3e-3
    assert pick(_probes([0.40, 0.30, 0.35]), "mse", 0)[0] == 1e-3  # an error: lower is better
    assert pick(_probes([2.1, 1.9, 2.3], losses=(2.1, 1.9, 2.3)), "loss", 0)[0] == 1e-3  # language modelling


def test_validation_loss_breaks_a_tie_and_equals_go_to_the_smaller_rate():
    rate, reason = pick(_probes([0.80, 0.80, 0.70], losses=(0.50, 0.40, 0.30)), "accuracy", 2)
    assert rate == 1e-3 and "lowest validation loss (0.4000) breaks the tie" in reason
    assert pick(_probes([0.80, 0.80, 0.80], losses=(0.40, 0.40, 0.40)), "accuracy", 2)[0] == 5e-4


def test_a_probe_whose_loss_is_not_finite_loses():
    probes = _probes([0.70, 0.80, 0.90], losses=(0.5, 0.5, NAN))
    assert pick(probes, "accuracy", 2)[0] == 1e-3
    assert probes[2].lost and not probes[0].lost and not probes[1].lost
    diverged = _probes([0.70, 0.80, 0.90])
    diverged[2].lost = "training loss not finite"  # as run_probe marks a NaN training loss
    assert pick(diverged, "accuracy", 2)[0] == 1e-3
    assert pick(_probes([NAN, NAN, NAN], losses=(NAN, NAN, NAN)), "accuracy", 2) == (
        5e-4,
        "no probe's loss was finite: the smallest rate of the grid",
    )


def test_a_probe_that_predicts_a_single_class_loses_while_validation_holds_several():
    probes = _probes([0.70, 0.80, 0.90], classes=(2, 2, 1))
    assert pick(probes, "accuracy", 2)[0] == 1e-3 and probes[2].lost == rate_choice.SINGLE_CLASS
    assert pick(_probes([0.70, 0.80, 0.90], classes=(2, 2, 1)), "accuracy", 1)[0] == 3e-3  # one class: no collapse
    # every probe collapsed: the best of them, by the same rule
    rate, reason = pick(_probes([0.5, 0.5, 0.5], losses=(0.70, 0.69, 0.71), classes=(1, 1, 1)), "accuracy", 2)
    assert rate == 1e-3 and "every probe predicted a single class" in reason


def test_probe_length_follows_the_final_training():
    rt = probe_steps(10_329, TrainSettings())  # Rotten Tomatoes' whole split: 969 final steps
    assert rt == 25 and len(GRID) * rt / 969 < 0.08
    assert probe_steps(2_000, TrainSettings()) == rate_choice.MIN_PROBE_STEPS  # 189 final steps: the minimum
    assert probe_steps(100, TrainSettings()) == 4  # at most one epoch
    assert probe_steps(10_329, TrainSettings(epochs=0.01)) == 4  # at most the final training itself


def _task(n_val=600):
    rows = lambda k: datasets.Dataset.from_dict({"text": ["x"] * k, "label": [i % 2 for i in range(k)]})  # noqa: E731
    return TaskData("toy", rows(400), rows(n_val), rows(50), 2, None, "accuracy", "")


def _recipe():
    return Recipe(model="m", task="t", num_labels=2, layers_path="layers", num_layers=1, candidates=[],
                  peft_params=0, budget_params=1, base_params=1, head_params=0)  # fmt: skip


def _fake_probes(monkeypatch, metrics: dict, seen: list):
    def fake(opts, recipe, data, tokenized, train, steps):
        seen.append((train.learning_rate, train.seed, steps, len(data.train), len(data.validation)))
        return Probe(train.learning_rate, steps, metrics[train.learning_rate], 0.5, 2, 0.1)

    monkeypatch.setattr(rate_choice, "run_probe", fake)


def _no_probes(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("no probe should run")

    monkeypatch.setattr(rate_choice, "run_probe", refuse)


def test_the_search_trains_at_the_probes_choice_and_records_it(monkeypatch, tmp_path):
    seen = []
    _fake_probes(monkeypatch, {5e-4: 0.71, 1e-3: 0.74, 3e-3: 0.78}, seen)
    opts, timings = RunOptions(output_dir=str(tmp_path)), {}
    recipe, train = settle_rate(opts, _recipe(), _task(), TrainSettings(learning_rate=None, seed=7), timings)
    assert train.learning_rate == 3e-3
    # every probe: the run's seed; the minimum of 20 steps capped at one epoch (13 steps of 32 of the 400 rows);
    # 512 of the 600 validation rows
    assert seen == [(rate, 7, 13, 400, 512) for rate in GRID]
    record = recipe.settings["learning_rate"]
    assert record["rate"] == 3e-3 and record["source"] == "validation probes" and record["grid"] == list(GRID)
    assert [p["metric"] for p in record["probes"]] == [0.71, 0.74, 0.78] and record["probe_steps"] == 13
    assert timings["rate_choice_s"] == record["wall_s"]
    assert Recipe.load(str(tmp_path)).settings["learning_rate"] == record  # saved with the recipe


def test_a_resumed_search_reuses_its_recorded_choice(monkeypatch, tmp_path):
    _fake_probes(monkeypatch, {5e-4: 0.80, 1e-3: 0.74, 3e-3: 0.78}, [])
    opts = RunOptions(output_dir=str(tmp_path))
    recipe, _ = settle_rate(opts, _recipe(), _task(), TrainSettings(learning_rate=None), {})
    _no_probes(monkeypatch)
    timings = {}
    _, train = settle_rate(opts, Recipe.load(str(tmp_path)), _task(), TrainSettings(learning_rate=None), timings)
    assert train.learning_rate == 5e-4 and timings["rate_choice_s"] == recipe.settings["learning_rate"]["wall_s"]


def test_learning_rate_fixes_the_rate_without_probes(monkeypatch, tmp_path):
    _no_probes(monkeypatch)
    timings = {}
    recipe, train = settle_rate(
        RunOptions(output_dir=str(tmp_path)), _recipe(), _task(), TrainSettings(learning_rate=2e-3), timings
    )
    assert train.learning_rate == 2e-3 and "rate_choice_s" not in timings
    assert recipe.settings["learning_rate"] == {"rate": 2e-3, "source": "--learning-rate",
                                                "reason": "fixed (--learning-rate, 1e-3 when not given)"}  # fmt: skip


def test_train_recipe_reuses_the_searchs_rate_on_its_own_task_and_probes_on_another(monkeypatch, tmp_path):
    seen = []
    _fake_probes(monkeypatch, {5e-4: 0.70, 1e-3: 0.79, 3e-3: 0.78}, seen)
    found, _ = settle_rate(
        RunOptions(output_dir=str(tmp_path)), _recipe(), _task(), TrainSettings(learning_rate=None), {}
    )
    assert len(seen) == 3
    opts = RunOptions(output_dir=str(tmp_path / "retrain"))
    (tmp_path / "retrain").mkdir()
    _no_probes(monkeypatch)
    recipe, train = recipe_rate(opts, found, _task(), TrainSettings(learning_rate=None), {}, same_inputs=True)
    assert train.learning_rate == 1e-3 and recipe.settings["learning_rate"]["source"] == "recipe"
    _fake_probes(monkeypatch, {5e-4: 0.90, 1e-3: 0.79, 3e-3: 0.78}, seen)
    _, train = recipe_rate(opts, found, _task(), TrainSettings(learning_rate=None), {}, same_inputs=False)
    assert train.learning_rate == 1e-3 and len(seen) == 3  # other inputs, no auto: the default rate, no probes
    auto = TrainSettings(learning_rate=None, choose_rate=True)
    _, train = recipe_rate(opts, found, _task(), auto, {}, same_inputs=False)
    assert train.learning_rate == 5e-4 and len(seen) == 6


@pytest.mark.parametrize(
    ("argv", "rate"),
    [
        (["search"], 1e-3),  # a fixed default: short probes favour the largest rate (runs.rate_choice)
        (["search", "--learning-rate", "auto"], None),
        (["search", "--learning-rate", "2e-3"], 2e-3),
        (["train", "--recipe", "r.json"], None),
        (["train", "--method", "lora"], 1e-3),  # baselines keep their fixed rate
        (["train", "--method", "adapter", "--learning-rate", "3e-4"], 3e-4),
    ],
)
def test_only_searches_and_recipes_choose_by_default(argv, rate):
    assert _train_settings(parse(argv)).learning_rate == rate


def test_a_multi_budget_curve_counts_each_budgets_probes_as_search():
    point = lambda f, r: {"trained": True, "final_train_s": f, "rate_choice_s": r}  # noqa: E731
    summary = {"timings": {"search_s": 3.0}, "extra": {}}
    curve = _curve(RunOptions(), _task(), summary, [point(10.0, 1.0), point(20.0, 3.0)], False)
    assert curve["time_s"]["rate_choice_s_mean"] == 2.0
    assert curve["time_s"]["search_to_train_ratio"] == pytest.approx((3.0 + 2.0) / 15.0, abs=1e-4)


def _winner(record: dict) -> float:
    """The rule, applied to what the record shows (its own code path is not used)."""
    probes = [p for p in record["probes"] if not p["lost"]] or [
        p for p in record["probes"] if p["lost"] == rate_choice.SINGLE_CLASS
    ]
    return max(probes, key=lambda p: (p["metric"], -p["loss"]))["learning_rate"]


def test_an_auto_search_chooses_records_and_trains_at_its_rate(tiny_bert_dir, csv_task, tmp_path, monkeypatch):  # noqa: F811
    import prunepeft.runs.search as search_module

    used = []
    real = search_module.final_train
    monkeypatch.setattr(search_module, "final_train", lambda *a, **k: used.append(a[3].learning_rate) or real(*a, **k))
    out = tmp_path / "run"
    small = ["--epochs", "1", "--batch-size", "16", "--max-length", "16", "--no-progress"]
    args = ["search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), *small,
            "--lora-rank", "4", "--bottleneck-size", "8", "--round-epochs", "0.5", "--budget", "2000",
            "--learning-rate", "auto"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    record = results["learning_rate"]
    assert record["source"] == "validation probes" and [p["learning_rate"] for p in record["probes"]] == list(GRID)
    assert all(p["steps"] == record["probe_steps"] > 0 and math.isfinite(p["loss"]) for p in record["probes"])
    assert used == [record["rate"]] and record["rate"] == _winner(record)
    assert Recipe.load(str(out)).settings["learning_rate"] == record
    assert json.loads((out / "run_config.json").read_text())["train"]["learning_rate"] is None  # a resume chooses
    times = results["time_s"]
    assert times["rate_choice_s"] == record["wall_s"]
    expected = (times["search_s"] + times["rate_choice_s"]) / times["final_train_s"]
    assert times["search_to_train_ratio"] == pytest.approx(expected, rel=0.01)
    assert not (out / "_probe").exists()

    _no_probes(monkeypatch)  # train --recipe on the same model and task: the search's rate
    again = tmp_path / "again"
    assert main(["train", "--recipe", str(out / "recipe.json"), "--output-dir", str(again), *small]) == 0
    retrained = json.loads((again / "results.json").read_text())["learning_rate"]
    assert retrained["source"] == "recipe" and retrained["rate"] == record["rate"]


def test_a_recorded_rate_is_reused_only_on_the_inputs_it_was_chosen_on():
    from prunepeft.runs.rate_choice import chosen_on_these_inputs

    train = TrainSettings(learning_rate=None, epochs=3, batch_size=32, max_length=64, seed=1)
    recipe = _recipe()
    recipe.settings = {"run": {"max_train_samples": 400}, "train": dataclasses.asdict(train)}
    opts = RunOptions(model="m", task="t", max_train_samples=400)
    assert chosen_on_these_inputs(recipe, opts, train)
    assert not chosen_on_these_inputs(recipe, dataclasses.replace(opts, task="other.csv"), train)
    assert not chosen_on_these_inputs(recipe, dataclasses.replace(opts, max_train_samples=None), train)
    for change in ({"epochs": 1}, {"batch_size": 16}, {"max_length": 128}, {"seed": 2}):
        assert not chosen_on_these_inputs(recipe, opts, dataclasses.replace(train, **change)), change
