"""The final training's learning rate: fixed (``--learning-rate``, 1e-3 by default), or with ``--learning-rate auto``
chosen on validation.

Why the choice is not the default: measured on convention (benchmarks/results/default_vs_lora/rate_probes/, seeds
0 and 1), probes of 20 steps chose 3e-3 both times because at 5e-4 and 1e-3 the model still predicted the majority
class after 20 steps (so those probes lost), and seed 0's final training at 3e-3 fell to 0.670 test accuracy
against 0.724 for LoRA q,k,v,o at 1e-3; the probes also cost 0.38 of the final training. Short probes favour the
largest rate; a rule that avoids that needs probes nearly as long as the training they judge.

The rule with ``auto``: each rate of the grid {5e-4, 1e-3, 3e-3} (the grid the bench gives peft LoRA baselines, a
factor 2-3 either side of the customary LoRA rate 1e-3) trains the found configuration from a fresh initialisation
for a short probe with the final training's schedule shape (warm-up then linear decay, compressed to the probe's
length), and the rate with the best validation metric wins, validation loss breaking ties; a probe whose loss is not
finite, or that predicts a single class on validation while the validation split holds several, loses.

* Probe length: max(MIN_PROBE_STEPS, PROBE_SHARE of the final training's steps), capped at one epoch (and at the
  final training itself). On Rotten Tomatoes' whole split (10,329 rows, batch 32, 3 epochs: 969 steps) that is 25
  steps a probe, 75 for the three: about 0.08 of the final training, so that with the search itself (about 0.11)
  the whole stays under 0.2. A probe trains on a stratified draw of exactly its steps' rows and is scored on a
  stratified subset of at most VALIDATION_ROWS validation rows; every draw and every probe uses the run's seed, so
  the choice is reproducible, and a probe starts from the very initialisation the final training starts from.
* Ties: equal metric, then the lower validation loss, then the smaller rate. If every probe loses, the finite ones
  compete among themselves (all predicted one class); if none is finite, the smallest rate of the grid is taken.
* The search's own phases (warm-up and rounds) train at SEARCH_RATE when the final rate is to be chosen: the choice
  needs the configuration they find.
* A search over several budgets chooses once per trained budget: the configurations differ in rank and placement by
  up to a factor 20 in size, the best rate may differ with them, and the probes cost the same share of each
  budget's own final training, so the cost against one final training does not grow with the number of budgets.
* ``prunepeft train --recipe`` without ``--learning-rate`` takes the rate the recipe records (the rate its search's
  final training used) when it trains on the inputs that rate was set for, and otherwise the default (the probes'
  with ``auto``).
* A resumed search reuses the choice recorded in its recipe, so the final training resumes at the same rate.

The record (``learning_rate`` in results.json and in the recipe's settings) holds the rate, how it was set, and the
probes' evidence; ``time_s.rate_choice_s`` is the probes' wall time, counted in ``search_to_train_ratio``.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from prunepeft.common.progress import PLAN, show_line
from prunepeft.data.metrics import LOWER_IS_BETTER
from prunepeft.data.splits import stratified_subset
from prunepeft.data.task import TaskData
from prunepeft.data.tokenizing import tokenize_task
from prunepeft.method.callback import NonFiniteLossError
from prunepeft.method.candidates import attach_all
from prunepeft.method.recipe import Recipe
from prunepeft.runs.checkpoints import remove_tree
from prunepeft.runs.options import RunOptions, build_model
from prunepeft.runs.training import TrainSettings, make_trainer, steps_per_epoch, warm_device

GRID = (5e-4, 1e-3, 3e-3)
SEARCH_RATE = 1e-3
PROBE_SHARE = 1 / 40
MIN_PROBE_STEPS = 20
VALIDATION_ROWS = 512
RECORD = "learning_rate"  # the key of the record in results.json and in the recipe's settings
PROBES = "validation probes"


@dataclass
class Probe:
    """One rate's short training and its validation result."""

    learning_rate: float
    steps: int
    metric: float | None = None
    loss: float | None = None
    predicted_classes: int | None = None  # classification only
    wall_s: float = 0.0
    lost: str | None = None  # why this probe cannot win; None while it can


def for_search(train: TrainSettings) -> TrainSettings:
    """The settings of the search's own phases: SEARCH_RATE where the final rate is still to be chosen."""
    return train if train.learning_rate is not None else dataclasses.replace(train, learning_rate=SEARCH_RATE)


def probe_steps(train_rows: int, train: TrainSettings) -> int:
    per_epoch = steps_per_epoch(train_rows, train.batch_size)
    final = math.ceil(train.epochs * per_epoch)
    return min(per_epoch, final, max(MIN_PROBE_STEPS, math.ceil(PROBE_SHARE * final)))


def settle_rate(
    opts: RunOptions, recipe: Recipe, task: TaskData, train: TrainSettings, timings: dict
) -> tuple[Recipe, TrainSettings]:
    """The final training's rate for a search: --learning-rate, else the choice its recipe already records (a
    resumed run), else the probes'. Returns the recipe with the record (saved) and the settings at that rate."""
    if train.learning_rate is not None:
        record = {
            "rate": train.learning_rate,
            "source": "--learning-rate",
            "reason": "fixed (--learning-rate, 1e-3 when not given)",
        }
        return _recorded(opts, recipe, record), train
    record = recipe.settings.get(RECORD)
    if not (record and record.get("source") == PROBES):
        record = choose_rate(opts, recipe, task, train)
        recipe = _recorded(opts, recipe, record)
    timings["rate_choice_s"] = record["wall_s"]
    return recipe, dataclasses.replace(train, learning_rate=record["rate"])


def recipe_rate(
    opts: RunOptions, recipe: Recipe, task: TaskData, train: TrainSettings, timings: dict, same_inputs: bool
) -> tuple[Recipe, TrainSettings]:
    """``train --recipe``: --learning-rate, else the recipe's recorded rate when ``same_inputs`` (the inputs its
    search chose on), else the probes' with ``--learning-rate auto`` and the default rate without."""
    record = recipe.settings.get(RECORD)
    if train.learning_rate is None and record and same_inputs:
        return _recorded(opts, recipe, {**record, "source": "recipe"}), dataclasses.replace(
            train, learning_rate=record["rate"]
        )
    if train.learning_rate is None and not train.choose_rate:  # no rate of its own to reuse: the default
        train = dataclasses.replace(train, learning_rate=TrainSettings.learning_rate)
    fresh = dataclasses.replace(recipe, settings={k: v for k, v in recipe.settings.items() if k != RECORD})
    return settle_rate(opts, fresh, task, train, timings)


def chosen_on_these_inputs(recipe: Recipe, opts: RunOptions, train: TrainSettings) -> bool:
    """Whether a retraining of ``recipe`` trains on the inputs its search chose the rate on: the same model, task,
    training rows and training shape (epochs, batch size, length, seed); only then is the recorded rate reused."""
    searched, run = recipe.settings.get("train", {}), recipe.settings.get("run", {})
    return (
        (recipe.model, recipe.task) == (opts.model, opts.task)
        and run.get("max_train_samples") == opts.max_train_samples
        and all(searched.get(key) == getattr(train, key) for key in ("epochs", "batch_size", "max_length", "seed"))
    )


def _recorded(opts: RunOptions, recipe: Recipe, record: dict) -> Recipe:
    recipe = dataclasses.replace(recipe, settings={**recipe.settings, RECORD: record})
    recipe.save(os.path.join(opts.output_dir, "recipe.json"))
    return recipe


def choose_rate(opts: RunOptions, recipe: Recipe, task: TaskData, train: TrainSettings) -> dict:
    """Probe every rate of the grid; the record of the choice."""
    start = time.perf_counter()
    steps = probe_steps(len(task.train), train)
    data = dataclasses.replace(
        task,
        train=stratified_subset(task.train, min(len(task.train), steps * train.batch_size), train.seed),
        validation=stratified_subset(task.validation, VALIDATION_ROWS, train.seed),
        test=task.test.select([]),
    )
    tokenized: dict = {}  # tokenised by the first probe, with its tokenizer
    classes = _classes(data)
    probes = []
    for i, rate in enumerate(GRID, 1):
        PLAN.where = f"learning-rate probe {i} of {len(GRID)} (rate {rate:g})"
        probe = run_probe(opts, recipe, data, tokenized, dataclasses.replace(train, learning_rate=rate), steps)
        judge(probe, classes)
        probes.append(probe)
        show_line(f"learning-rate probe {i} of {len(GRID)}: {_describe(probe, task.metric)}")
    chosen, reason = pick(probes, task.metric, classes)
    show_line(f"learning rate {chosen:g} chosen: {reason}")
    return {
        "rate": chosen,
        "source": PROBES,
        "reason": reason,
        "grid": list(GRID),
        "metric": task.metric,
        "probe_steps": steps,
        "validation_rows": len(data.validation),
        "probes": [dataclasses.asdict(p) for p in probes],
        "wall_s": round(time.perf_counter() - start, 3),
    }


def _describe(probe: Probe, metric: str) -> str:
    shown = [f"rate {probe.learning_rate:g}, {probe.steps} steps"]
    if probe.metric is not None:
        shown.append(f"validation {metric} {probe.metric:.4f}")
    if probe.loss is not None:
        shown.append(f"loss {probe.loss:.4f}")
    return ", ".join(shown) + f" ({probe.wall_s:.0f}s)" + (f" - loses: {probe.lost}" if probe.lost else "")


def _classes(data: TaskData) -> int:
    """Classes in the probes' validation rows (0 where classes do not apply)."""
    if data.is_regression or getattr(data, "causal_lm", False):
        return 0
    return len(set(data.validation["label"]))


SINGLE_CLASS = "predicts a single class on validation"


def judge(probe: Probe, classes: int) -> None:
    """Mark why ``probe`` cannot win (``lost``), if it cannot; ``classes``: those in the validation rows."""
    if probe.lost:
        return
    if not all(x is not None and math.isfinite(x) for x in (probe.loss, probe.metric)):
        probe.lost = "validation loss or metric not finite"
    elif classes > 1 and probe.predicted_classes == 1:
        probe.lost = SINGLE_CLASS


def pick(probes: list[Probe], metric: str, classes: int) -> tuple[float, str]:
    """The winning rate and why (see the module's rule)."""
    for p in probes:
        judge(p, classes)
    pool, note = [p for p in probes if not p.lost], ""
    if not pool:
        pool, note = [p for p in probes if p.lost == SINGLE_CLASS], "; every probe predicted a single class"
    if not pool:
        return min(GRID), "no probe's loss was finite: the smallest rate of the grid"
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    best = max(pool, key=lambda p: (sign * p.metric, -p.loss))  # the first of equals: the smaller rate
    reason = f"best validation {metric} ({best.metric:.4f})"
    tied = sum(p.metric == best.metric for p in pool) - 1
    if tied:
        reason += f", tied with {tied} other rate(s): the lowest validation loss ({best.loss:.4f}) breaks the tie"
    return best.learning_rate, reason + note


def run_probe(
    opts: RunOptions, recipe: Recipe, data: TaskData, tokenized: dict, train: TrainSettings, steps: int
) -> Probe:
    """Train the recipe's configuration from a fresh initialisation at ``train.learning_rate`` for ``steps`` steps
    on ``data.train``; score it on ``data.validation``."""
    start = time.perf_counter()
    probe = Probe(learning_rate=train.learning_rate, steps=steps)
    loaded = build_model(opts, data, train.seed)
    attach_all(loaded.model, recipe.candidates)
    if not tokenized:
        tokenized.update(tokenize_task(data, loaded.tokenizer, train.max_length))
    workdir = os.path.join(opts.output_dir, "_probe")
    trainer = make_trainer(
        loaded.model, loaded.tokenizer, data, train, workdir, tokenized["train"], tokenized["validation"],
        max_steps=steps,
    )  # fmt: skip
    warm_device(trainer.args.device)
    try:
        trained = trainer.train()
        if not math.isfinite(trained.training_loss):
            probe.lost = "training loss not finite"
        if data.is_regression or getattr(data, "causal_lm", False):
            metrics = trainer.evaluate()
        else:  # the predictions too, to see a collapse onto one class
            output = trainer.predict(tokenized["validation"], metric_key_prefix="eval")
            metrics = output.metrics
            logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
            probe.predicted_classes = len(np.unique(np.asarray(logits).argmax(-1)))
        probe.loss = float(metrics["eval_loss"])
        probe.metric = float(metrics.get(f"eval_{data.metric}", metrics["eval_loss"]))
    except NonFiniteLossError:  # a probe long enough to log its loss can stop on it
        probe.lost = "training loss not finite"
    finally:
        remove_tree(workdir)
        del trainer, loaded
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    probe.wall_s = round(time.perf_counter() - start, 3)
    return probe
