"""The jobs behind the CLI: search (warm-up, rounds, final retrain, test), retrain a recipe, LoRA baseline.

Each job writes into its output directory: recipe.json, search_log.jsonl, results.json and the weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field

import torch
from transformers import set_seed

from prunepeft import hybrid
from prunepeft.data import TaskData, load_task, stratified_subset, tokenize_task
from prunepeft.export import save_weights
from prunepeft.models import LoadedModel, count_params, freeze_for_peft, load_model
from prunepeft.recipe import Recipe, write_json_atomic
from prunepeft.search import BudgetError, Pruner, SearchSettings, WarmupVoter, default_k, parse_budget
from prunepeft.space import SpaceSettings, attach_all, build_space, map_model
from prunepeft.training import TrainSettings, make_trainer, steps_per_epoch, timed_train


@dataclass
class RunOptions:
    model: str = "minilm"
    task: str = "rotten_tomatoes"
    output_dir: str = "runs/rotten_tomatoes"
    data_dir: str | None = None  # a saved GLUE-schema copy, for GLUE tasks without hub access
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    max_train_samples: int | None = None
    layers_path: str | None = None
    targets: dict[str, list[str]] = field(default_factory=dict)
    trust_remote_code: bool = False
    overwrite: bool = False


class RunError(RuntimeError):
    """A job cannot start as asked."""


def prepare_output(opts: RunOptions) -> None:
    """Refuse to write over an earlier run unless told to."""
    out = opts.output_dir
    if os.path.isdir(out) and os.listdir(out):
        if not opts.overwrite:
            raise RunError(
                f"output directory {out!r} already holds a run. Choose another --output-dir, "
                "or pass --overwrite to replace it."
            )
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)


def load_data(opts: RunOptions, seed: int) -> TaskData:
    task = load_task(
        opts.task,
        seed=seed,
        text_column=opts.text_column,
        text_pair_column=opts.text_pair_column,
        label_column=opts.label_column,
        glue_source=opts.data_dir,
    )
    if opts.max_train_samples:
        task.train = stratified_subset(task.train, opts.max_train_samples, seed)
    return task


def build_model(opts: RunOptions, task: TaskData, seed: int) -> LoadedModel:
    set_seed(seed)
    loaded = load_model(opts.model, task.num_labels, trust_remote_code=opts.trust_remote_code)
    freeze_for_peft(loaded.model, loaded.head_names)
    return loaded


def environment() -> dict:
    import accelerate
    import datasets
    import peft
    import transformers

    return {
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "datasets": datasets.__version__,
            "accelerate": accelerate.__version__,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }


class JsonlLog:
    """Appends one JSON object per line and flushes, so a crash keeps every finished round."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def search(opts: RunOptions, space: SpaceSettings, settings: SearchSettings, train: TrainSettings) -> dict:
    """The whole job: search, write the recipe, retrain the survivors, evaluate on test."""
    prepare_output(opts)
    task = load_data(opts, train.seed)
    recipe, timings, extra = find_recipe(opts, task, space, settings, train)
    return final_train(opts, recipe, task, train, timings, extra)


def find_recipe(
    opts: RunOptions, task: TaskData, space: SpaceSettings, settings: SearchSettings, train: TrainSettings
) -> tuple[Recipe, dict, dict]:
    """Warm-up and pruning rounds on a supernet; writes search_log.jsonl and recipe.json."""
    out = opts.output_dir
    loaded = build_model(opts, task, train.seed)
    model = loaded.model
    base_params, head_params = count_params(model, loaded.head_names)
    budget_params = parse_budget(settings.budget, base_params)
    model_map = map_model(model, opts.layers_path, {r: tuple(n) for r, n in opts.targets.items()})
    specs = build_space(model_map, space)
    candidates = {c.spec.name: c for c in attach_all(model, specs)}
    supernet_params = sum(c.n_params for c in candidates.values())
    smallest = min(c.n_params for c in candidates.values())
    if budget_params < smallest:
        raise BudgetError(
            f"budget {settings.budget!r} = {budget_params:,} parameters is below the smallest candidate "
            f"({smallest:,}); nothing could be kept. Raise --budget or lower --lora-rank / --bottleneck-size."
        )
    search_task = task
    if settings.search_fraction < 1:
        search_task = dataclasses.replace(
            task, train=stratified_subset(task.train, settings.search_fraction, train.seed)
        )
    if settings.eval_samples:
        search_task = dataclasses.replace(
            search_task, validation=stratified_subset(task.validation, settings.eval_samples, train.seed)
        )
    tokenized = tokenize_task(search_task, loaded.tokenizer, train.max_length)
    search_train = tokenized["train"]
    k = settings.prune_per_round or default_k(len(candidates))
    blocks = hybrid.spindle_blocks(model_map.num_layers, 4 if settings.blocks else 1)
    partition = {n: hybrid.partition_of(c.spec.layer, c.spec.kind, blocks) for n, c in candidates.items()}
    log = JsonlLog(os.path.join(out, "search_log.jsonl"))
    log(
        {
            "phase": "start",
            "candidates": {n: c.n_params for n, c in candidates.items()},
            "partition": partition,
            "supernet_params": supernet_params,
            "budget_params": budget_params,
            "base_params": base_params,
            "head_params": head_params,
            "prune_per_round": k,
        }
    )
    workdir = os.path.join(out, "_trainer")
    timings: dict[str, float] = {"warmup_s": 0.0}
    assignment = {p: [settings.criterion] for p in set(partition.values())}
    if settings.criterion == "hybrid":
        warm_task = dataclasses.replace(
            task, train=stratified_subset(search_task.train, settings.warmup_fraction, train.seed)
        )
        warm = tokenize_task(warm_task, loaded.tokenizer, train.max_length)["train"]
        turn_steps = max(1, math.ceil(steps_per_epoch(len(warm), train.batch_size) / settings.warmup_turns))
        voter = WarmupVoter(candidates, partition, k, settings.warmup_turns, log)
        trainer = make_trainer(
            model, loaded.tokenizer, task, train, workdir, warm,
            max_steps=turn_steps * settings.warmup_turns, schedule="constant_with_warmup",
            callbacks=[_round_callback(voter, turn_steps, evaluate=False)],
        )  # fmt: skip
        timings["warmup_s"], _ = timed_train(trainer)
        voter.recorder.close()
        assignment = voter.assignment()
        log({"phase": "assignment", "counts": voter.counts, "assignment": assignment})
    round_steps = max(1, round(settings.round_epochs * steps_per_epoch(len(search_train), train.batch_size)))
    pruner = Pruner(
        model, candidates, budget_params=budget_params, k=k, criterion=settings.criterion,
        assignment=assignment, partition=partition, seed=train.seed, metric=task.metric,
        reinit_survivors=settings.reinit_survivors, log=log,
    )  # fmt: skip
    if not pruner.done:
        max_rounds = math.ceil(len(candidates) / k) + 1
        trainer = make_trainer(
            model, loaded.tokenizer, task, train, workdir, search_train, tokenized["validation"],
            max_steps=max_rounds * round_steps, schedule="constant_with_warmup",
            callbacks=[_round_callback(pruner, round_steps, evaluate=True)],
        )  # fmt: skip
        timings["rounds_s"], _ = timed_train(trainer)
    pruner.recorder.close()
    timings["search_s"] = timings["warmup_s"] + timings.get("rounds_s", 0.0)
    recipe = Recipe(
        model=opts.model,
        task=opts.task,
        num_labels=task.num_labels,
        layers_path=model_map.layers_path,
        num_layers=model_map.num_layers,
        candidates=[c.spec for c in pruner.alive.values()],
        peft_params=pruner.peft_params,
        budget_params=budget_params,
        base_params=base_params,
        head_params=head_params,
        removed=pruner.removed,
        assignment=assignment,
        settings={
            "run": dataclasses.asdict(opts),
            "space": dataclasses.asdict(space),
            "search": dataclasses.asdict(settings),
            "train": dataclasses.asdict(train),
        },
    )
    recipe.save(os.path.join(out, "recipe.json"))
    return recipe, timings, {"supernet_params": supernet_params, "rounds": pruner.round}


def _round_callback(rounds, round_steps: int, evaluate: bool):
    from prunepeft.callback import PrunePEFTCallback

    return PrunePEFTCallback(rounds, round_steps, evaluate=evaluate)


def fit_and_test(
    model, tokenizer, task: TaskData, train: TrainSettings, out: str
) -> tuple[float, list, dict]:
    """Train with per-epoch validation, then evaluate on the test split once."""
    tokenized = tokenize_task(task, tokenizer, train.max_length)
    workdir = os.path.join(out, "_trainer")
    trainer = make_trainer(
        model,
        tokenizer,
        task,
        train,
        workdir,
        tokenized["train"],
        tokenized["validation"],
        eval_each_epoch=True,
    )
    wall, history = timed_train(trainer)
    test = trainer.evaluate(tokenized["test"], metric_key_prefix="test")
    shutil.rmtree(workdir, ignore_errors=True)
    return wall, history, test


def final_train(
    opts: RunOptions, recipe: Recipe, task: TaskData, train: TrainSettings, timings: dict, extra: dict
) -> dict:
    """Retrain the recipe's candidates from a fresh initialisation on the full training data; test once."""
    loaded = build_model(opts, task, train.seed)
    attach_all(loaded.model, recipe.candidates)
    timings["final_train_s"], history, test = fit_and_test(
        loaded.model, loaded.tokenizer, task, train, opts.output_dir
    )
    save_weights(loaded.model, opts.output_dir)
    if timings.get("search_s") is not None:
        timings["search_to_train_ratio"] = round(timings["search_s"] / timings["final_train_s"], 4)
    params = {"peft": recipe.peft_params, "budget": recipe.budget_params, **extra}
    results = summarise(
        opts, task, "prunepeft", recipe.base_params, recipe.head_params, params, history, test, timings
    )
    results["per_layer"] = recipe.per_layer()
    write_json_atomic(os.path.join(opts.output_dir, "results.json"), results)
    return results


def summarise(
    opts: RunOptions, task: TaskData, method: str, base: int, head: int, params: dict, history, test, timings
) -> dict:
    """The content of results.json (the same shape for every method)."""
    return {
        "method": method,
        "task": opts.task,
        "model": opts.model,
        "metric": task.metric,
        "validation": history[-1] if history else {},
        "validation_history": history,
        "test": test,
        "params": {
            "base": base,
            "head": head,
            **params,
            "peft_percent_of_base": round(100 * params["peft"] / base, 4),
        },
        "time_s": {k: round(v, 3) for k, v in timings.items()},
        "split": task.split_note,
        "sizes": {"train": len(task.train), "validation": len(task.validation), "test": len(task.test)},
        "command": " ".join(sys.argv),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **environment(),
    }


def train_lora(opts: RunOptions, train: TrainSettings, rank: int, alpha: float, targets: list[str]) -> dict:
    """The plain LoRA baseline through peft (same data, split, schedule and head as our runs)."""
    from peft import LoraConfig, TaskType, get_peft_model

    prepare_output(opts)
    task = load_data(opts, train.seed)
    set_seed(train.seed)
    loaded = load_model(opts.model, task.num_labels, trust_remote_code=opts.trust_remote_code)
    base, head = count_params(loaded.model, loaded.head_names)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=alpha, target_modules=targets,
        modules_to_save=list(loaded.head_names),
    )  # fmt: skip
    model = get_peft_model(loaded.model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    wall, history, test = fit_and_test(model, loaded.tokenizer, task, train, opts.output_dir)
    model.save_pretrained(opts.output_dir)  # safetensors by default
    params = {"peft": trainable - head, "lora_rank": rank, "lora_targets": targets}
    results = summarise(opts, task, "lora", base, head, params, history, test, {"final_train_s": wall})
    write_json_atomic(os.path.join(opts.output_dir, "results.json"), results)
    return results


def train_recipe(opts: RunOptions, recipe: Recipe, train: TrainSettings) -> dict:
    """Retrain a saved recipe (``prunepeft train --recipe``)."""
    prepare_output(opts)
    task = load_data(opts, train.seed)
    if task.num_labels != recipe.num_labels:
        raise RunError(
            f"the recipe was found for {recipe.num_labels} labels but task {opts.task!r} has "
            f"{task.num_labels}; retrain it on a task with the same labels."
        )
    recipe.save(os.path.join(opts.output_dir, "recipe.json"))
    return final_train(opts, recipe, task, train, {}, {})
