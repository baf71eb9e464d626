"""The search job (a new one, or ``--resume``): the search down to its recipes (warm-up and rounds on a supernet,
in ``runs.find_recipe``), then the final retrain and test.

It can be resumed after a kill at any moment: the run's settings are saved first (run_config.json), a finished
round is a resumable checkpoint (a Trainer checkpoint of the trained tensors plus our search state) once
``--checkpoint-every`` seconds have passed since the last one, the final training checkpoints every epoch, and
every phase is deterministic given the seed, so the work after the newest checkpoint is simply replayed.

A search over several budgets (``--budget 2%,1%,0.5%``) prunes down to the smallest, records the survivors the
moment they first fit each budget, and final-trains each of them (or those of ``--train-budgets``) in a
sub-folder named after the budget; the top-level results.json holds the curve.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from prunepeft.common.distributed import is_main_process
from prunepeft.common.progress import PLAN, doing
from prunepeft.data.task import DataError, TaskData
from prunepeft.method.backbone import ModelError
from prunepeft.method.candidates import SpaceError, SpaceSettings
from prunepeft.method.pruner import (
    BudgetError,
    SearchSettings,
)
from prunepeft.method.recipe import Recipe, write_json_atomic
from prunepeft.runs.checkpoints import save_run_config
from prunepeft.runs.final_training import final_train
from prunepeft.runs.find_recipe import budget_labels, find_recipe, find_recipes, search_settings
from prunepeft.runs.options import (
    RunOptions,
    environment,
    load_data,
    peak_memory,
    prepare_output,
)
from prunepeft.runs.rate_choice import for_search, settle_rate
from prunepeft.runs.run_folder import budget_dir, clear_run, read_json, resumable_config
from prunepeft.runs.training import TrainSettings

BUDGETS = "budgets.json"  # a multi-budget search: written once the search has finished


def search(opts: RunOptions, space: SpaceSettings, settings: SearchSettings, train: TrainSettings) -> dict:
    """A new search: refuses an existing run unless ``overwrite``; saves its settings first."""
    budget_labels(settings)  # a malformed list is refused before anything is written
    existed = os.path.isdir(opts.output_dir)
    prepare_output(opts)
    save_run_config(opts.output_dir, search_settings(opts, space, settings, train))
    try:
        return _run(opts, space, settings, train, resume=False)
    except (DataError, ModelError, SpaceError, BudgetError) as err:
        _forget_empty_run(opts.output_dir, existed)
        raise err


def _forget_empty_run(out: str, existed: bool) -> None:
    """Bad input found before any round: leave no half-made run behind (it would block the corrected one).
    Only what the run wrote goes; the folder too if this run made it."""
    if not is_main_process() or any(
        os.path.exists(os.path.join(out, n)) for n in ("recipe.json", "_search", "results.json", BUDGETS)
    ):
        return
    clear_run(out)
    if not existed and not os.listdir(out):
        os.rmdir(out)


def resume(output_dir: str) -> dict:
    """Continue the search saved in ``output_dir`` with its own settings."""
    config = resumable_config(output_dir)
    opts = RunOptions(**{**config["run"], "output_dir": output_dir})
    space, settings = SpaceSettings(**config["space"]), SearchSettings(**config["search"])
    train = TrainSettings(**config["train"])
    return _run(opts, space, settings, train, resume=True)


def _run(opts, space, settings, train, resume: bool) -> dict:
    task = load_data(opts, train.seed)
    if len(budget_labels(settings)) > 1:
        return _run_budgets(opts, task, space, settings, train, resume)
    recipe_path = os.path.join(opts.output_dir, "recipe.json")
    if resume and os.path.exists(recipe_path):  # the search had finished: only the final training remains
        recipe = Recipe.load(recipe_path)
        timings, extra = recipe.settings.get("timings", {}), recipe.settings.get("extra", {})
        recipe, final = settle_rate(opts, recipe, task, train, timings)
        return final_train(opts, recipe, task, final, timings, extra, resume=True)
    recipe, timings, extra = find_recipe(opts, task, space, settings, for_search(train), resume)
    recipe, final = settle_rate(opts, recipe, task, train, timings)
    return final_train(opts, recipe, task, final, timings, extra, resume=resume)


def _run_budgets(opts, task, space, settings, train, resume: bool) -> dict:
    """One search, several budgets: a recipe and a final training per budget in its sub-folder, the curve on top."""
    out = opts.output_dir
    labels = budget_labels(settings)
    summary = read_json(os.path.join(out, BUDGETS)) if resume else None
    if summary is None:
        recipes, timings, extra = find_recipes(opts, task, space, settings, for_search(train), resume)
        summary = {
            "budgets": [
                {"budget": label, "dir": budget_dir(label), "budget_params": r.budget_params,
                 "peft_params": r.peft_params, "fit_round": r.settings["extra"]["fit_round"]}
                for label, r in recipes.items()
            ],
            "timings": timings,
            "extra": extra,
        }  # fmt: skip
        write_json_atomic(os.path.join(out, BUDGETS), summary)
    chosen = [b.strip() for b in (settings.train_budgets or "").split(",") if b.strip()] or labels
    points = []
    for entry in summary["budgets"]:
        sub = os.path.join(out, entry["dir"])
        recipe = Recipe.load(sub)
        results = read_json(os.path.join(sub, "results.json"))
        if results is None and entry["budget"] in chosen:
            sub_opts = dataclasses.replace(opts, output_dir=sub)
            PLAN.phases_done.discard("_final")  # each budget's final training is a phase of its own
            timings, extra = dict(summary["timings"]), dict(summary["extra"])
            recipe, final = settle_rate(sub_opts, recipe, task, train, timings)  # each budget its own rate
            results = final_train(sub_opts, recipe, task, final, timings, extra, resume=resume)
        points.append(_point(entry, recipe, results))
    curve = _curve(opts, task, summary, points, resume)
    write_json_atomic(os.path.join(out, "results.json"), curve)
    from prunepeft.handover.report import write_report
    from prunepeft.runs.final_training import cleanup

    cleanup(out)
    with doing("writing the report"):
        write_report(out)
    return curve


def _point(entry: dict, recipe: Recipe, results: dict | None) -> dict:
    point = {**entry, "kept": sorted(c.name for c in recipe.candidates), "per_layer": recipe.per_layer(),
             "trained": results is not None}  # fmt: skip
    if results is not None:
        point.update(
            params=results["params"],
            validation=results["validation"],
            test={k: v for k, v in results["test"].items() if k != "per_class"},
            final_train_s=results["time_s"]["final_train_s"],
            rate_choice_s=results["time_s"].get("rate_choice_s", 0.0),
            learning_rate=results.get("learning_rate", {}).get("rate"),
        )
    return point


def _curve(opts: RunOptions, task: TaskData, summary: dict, points: list[dict], resume: bool) -> dict:
    """The top-level results.json of a multi-budget search: one point per budget, largest first."""
    timings = {k: round(v, 3) for k, v in summary["timings"].items()}
    trained = [p["final_train_s"] for p in points if p["trained"]]
    if trained:
        timings["final_train_s_mean"] = round(sum(trained) / len(trained), 3)
        choices = [p["rate_choice_s"] for p in points if p["trained"]]
        timings["rate_choice_s_mean"] = round(sum(choices) / len(choices), 3)  # the probes count as search
        search_s = timings["search_s"] + timings["rate_choice_s_mean"]
        timings["search_to_train_ratio"] = round(search_s / timings["final_train_s_mean"], 4)
    return {
        "method": "prunepeft",
        "task": opts.task,
        "model": opts.model,
        "metric": task.metric,
        "budgets": points,
        "time_s": timings,
        "search": summary["extra"],
        "memory_mib": peak_memory(),
        "resumed": resume,
        "command": " ".join(sys.argv),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **environment(),
    }


def print_curve(results: dict, output_dir: str) -> None:
    """The terminal summary of a multi-budget search."""
    metric, times = results["metric"], results["time_s"]
    print(f"\n== prunepeft on {results['task']} ({results['model']}): {len(results['budgets'])} budgets, one search")
    for p in results["budgets"]:
        test = p["test"].get(f"test_{metric}") if p["trained"] else None
        score = f"test {metric} {test:.4f}" if test is not None else "not trained (--train-budgets)"
        print(f"  {p['budget']:>8}: {p['peft_params']:>10,} PEFT parameters (fit in round {p['fit_round']}), {score}"
              f"  -> {output_dir}/{p['dir']}/")  # fmt: skip
    ratio = times.get("search_to_train_ratio")
    probes = f" + learning-rate probes {times['rate_choice_s_mean']:.0f}s" if "rate_choice_s_mean" in times else ""
    print(f"  search {times['search_s']:.0f}s{probes}" + (f" ({ratio:.2f} of one final training)" if ratio else ""))
    print(f"  written to {output_dir}/ (results.json: the curve)")
