"""The search job: supernet, warm-up, pruning rounds, recipe; then the final retrain and test.

It can be resumed after a kill at any moment: the run's settings are saved first (run_config.json), every
finished round is a Trainer checkpoint plus our search state, the final training checkpoints every epoch,
and every phase is deterministic given the seed, so an interrupted phase is simply replayed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

from prunepeft import hybrid
from prunepeft.callback import PrunePEFTCallback
from prunepeft.checkpoints import (
    SEARCH_STATE,
    ResumeError,
    count_lines,
    latest_checkpoint,
    load_run_config,
    read_state,
    remove_tree,
    save_run_config,
    truncate_lines,
    verify_checkpoint,
)
from prunepeft.data import DataError, TaskData, stratified_subset, tokenize_task
from prunepeft.distributed import rank, world_size
from prunepeft.jobs import (
    JsonlLog,
    RunError,
    RunOptions,
    build_model,
    final_train,
    load_data,
    peak_memory,
    prepare_output,
)
from prunepeft.models import ModelError, count_params
from prunepeft.recipe import Recipe, write_json_atomic
from prunepeft.search import BudgetError, Pruner, SearchSettings, WarmupVoter, default_k, parse_budget
from prunepeft.space import SpaceError, SpaceSettings, attach_all, build_space
from prunepeft.training import TrainSettings, make_trainer, steps_per_epoch, timed_train

LOG = "search_log.jsonl"


def search(opts: RunOptions, space: SpaceSettings, settings: SearchSettings, train: TrainSettings) -> dict:
    """A new search: refuses an existing run unless ``overwrite``; saves its settings first."""
    prepare_output(opts)
    save_run_config(
        opts.output_dir,
        {
            k: dataclasses.asdict(v)
            for k, v in (("run", opts), ("space", space), ("search", settings), ("train", train))
        },
    )
    try:
        return _run(opts, space, settings, train, resume=False)
    except (DataError, ModelError, SpaceError, BudgetError) as err:
        _forget_empty_run(opts.output_dir)
        raise err


def _forget_empty_run(out: str) -> None:
    """Bad input found before any round: leave no half-made run behind (it would block the corrected one)."""
    if not any(os.path.exists(os.path.join(out, n)) for n in ("recipe.json", "_search", "results.json")):
        remove_tree(out)


def resume(output_dir: str) -> dict:
    """Continue the search saved in ``output_dir`` with its own settings."""
    config = load_run_config(output_dir)
    if not {"run", "space", "search", "train"} <= set(config):
        raise ResumeError(f"{output_dir!r} holds a `prunepeft train` run, not a search; only searches resume.")
    opts = RunOptions(**{**config["run"], "output_dir": output_dir})
    space, settings = SpaceSettings(**config["space"]), SearchSettings(**config["search"])
    train = TrainSettings(**config["train"])
    results = os.path.join(output_dir, "results.json")
    if os.path.exists(results):
        raise RunError(f"the run in {output_dir!r} has finished (results.json exists); nothing to resume.")
    return _run(opts, space, settings, train, resume=True)


def _run(opts, space, settings, train, resume: bool) -> dict:
    task = load_data(opts, train.seed)
    recipe_path = os.path.join(opts.output_dir, "recipe.json")
    if resume and os.path.exists(recipe_path):  # the search had finished: only the final training remains
        recipe = Recipe.load(recipe_path)
        timings, extra = recipe.settings.get("timings", {}), recipe.settings.get("extra", {})
        return final_train(opts, recipe, task, train, timings, extra, resume=True)
    recipe, timings, extra = find_recipe(opts, task, space, settings, train, resume)
    return final_train(opts, recipe, task, train, timings, extra, resume=resume)


def _search_data(task: TaskData, settings: SearchSettings, train: TrainSettings) -> TaskData:
    """Low fidelity: a stratified share of train. The per-round validation (for the log): a stratified subset of
    --search-eval-samples, and no more examples than a round trains on, so that scoring a round for the log
    costs at most about a third of the round (a forward pass against forward and backward)."""
    search_task = task
    if settings.search_fraction < 1:
        search_task = dataclasses.replace(
            task, train=stratified_subset(task.train, settings.search_fraction, train.seed)
        )
    if settings.eval_samples:
        round_steps = max(1, round(settings.round_epochs * steps_per_epoch(len(search_task.train), train.batch_size)))
        rows = min(settings.eval_samples, max(32, round_steps * train.batch_size))
        search_task = dataclasses.replace(search_task, validation=stratified_subset(task.validation, rows, train.seed))
    return search_task


def find_recipe(
    opts: RunOptions,
    task: TaskData,
    space: SpaceSettings,
    settings: SearchSettings,
    train: TrainSettings,
    resume: bool = False,
) -> tuple[Recipe, dict, dict]:
    """Warm-up and pruning rounds on a supernet; writes search_log.jsonl and recipe.json."""
    out = opts.output_dir
    loaded = build_model(opts, task, train.seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    base_params, head_params = count_params(model, loaded.head_names)
    budget_params = parse_budget(settings.budget, base_params)
    model_map = opts.model_map(model)
    candidates = {c.spec.name: c for c in attach_all(model, build_space(model_map, space))}
    sizes = {n: c.n_params for n, c in candidates.items()}
    _check_budget(settings.budget, budget_params, sizes)
    note = coverage_note(budget_params, sizes, model_map.num_layers)
    if note and rank() == 0:
        print(f"prunepeft: note: {note}", file=sys.stderr, flush=True)
    search_task = _search_data(task, settings, train)
    tokenized = tokenize_task(search_task, tokenizer, train.max_length)
    k = settings.prune_per_round or default_k(len(candidates))
    blocks = hybrid.spindle_blocks(model_map.num_layers, 4 if settings.blocks else 1)
    partition = {n: hybrid.partition_of(c.spec.layer, c.spec.kind, blocks) for n, c in candidates.items()}
    log_path = os.path.join(out, LOG)
    log = JsonlLog(log_path)
    rounds_dir = os.path.join(out, "_search")
    checkpoint = latest_checkpoint(rounds_dir, need=SEARCH_STATE) if resume else None
    pruner_kwargs = dict(
        budget_params=budget_params, k=k, criterion=settings.criterion, partition=partition, seed=train.seed,
        metric=task.metric, reinit_survivors=settings.reinit_survivors, log=log,
    )  # fmt: skip
    if checkpoint:
        verify_checkpoint(checkpoint)
        state = read_state(checkpoint)
        truncate_lines(log_path, state["log_lines"])
        timings = state["timings"]
        pruner = Pruner(model, candidates, assignment=state["assignment"], **pruner_kwargs)
        pruner.restore(state["pruner"])
    else:
        remove_tree(rounds_dir)
        truncate_lines(log_path, 0)
        log(
            {
                "phase": "start", "candidates": sizes, "partition": partition, "prune_per_round": k,
                "supernet_params": sum(sizes.values()), "budget_params": budget_params,
                "base_params": base_params, "head_params": head_params,
            }
        )  # fmt: skip
        timings = {"warmup_s": 0.0, "rounds_s": 0.0}
        assignment = {p: [settings.criterion] for p in sorted(set(partition.values()))}
        if settings.criterion == "hybrid":
            assignment, timings["warmup_s"] = _warmup(
                model, tokenizer, task, search_task, settings, train, candidates, partition, k, log
            )
        pruner = Pruner(model, candidates, assignment=assignment, **pruner_kwargs)
    if not pruner.done:
        round_steps = max(1, round(settings.round_epochs * steps_per_epoch(len(tokenized["train"]), train.batch_size)))
        max_rounds = math.ceil(len(candidates) / k) + 1
        clock = {"start": time.perf_counter(), "before": timings["rounds_s"]}

        def save_state(folder: str) -> None:
            elapsed = clock["before"] + time.perf_counter() - clock["start"]
            state = {
                "pruner": pruner.state(),
                "assignment": pruner.assignment,
                "log_lines": count_lines(log_path),
                "timings": {**timings, "rounds_s": elapsed},
            }
            write_json_atomic(os.path.join(folder, SEARCH_STATE), state)

        trainer = make_trainer(
            model, tokenizer, task, train, rounds_dir, tokenized["train"], tokenized["validation"],
            max_steps=max_rounds * round_steps, schedule="constant_with_warmup", save_steps=round_steps,
            callbacks=[PrunePEFTCallback(pruner, round_steps, evaluate=True, save_state=save_state)],
        )  # fmt: skip
        wall, _ = timed_train(trainer, checkpoint)
        timings["rounds_s"] += wall
    pruner.recorder.close()
    timings["search_s"] = timings["warmup_s"] + timings["rounds_s"]
    # peak memory of the search itself (the final training and the latency probe come later)
    extra = {"supernet_params": sum(sizes.values()), "rounds": pruner.round, "search_memory_mib": peak_memory()}
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
        assignment=pruner.assignment,
        settings={
            "run": dataclasses.asdict(opts),
            "space": dataclasses.asdict(space),
            "search": dataclasses.asdict(settings),
            "train": dataclasses.asdict(train),
            "timings": timings,
            "extra": extra,
        },
    )
    recipe.save(os.path.join(out, "recipe.json"))
    if world_size() > 1:  # every process states what it kept: they must agree
        print(f"prunepeft rank {rank()}: kept {sorted(pruner.alive)}", flush=True)
    return recipe, timings, extra


def coverage_note(budget_params: int, sizes: dict[str, int], num_layers: int) -> str | None:
    """A note when the budget cannot hold a module on every layer, even of the smallest candidates."""
    most = budget_params // min(sizes.values())
    if most >= num_layers:
        return None
    return (
        f"the budget ({budget_params:,} parameters) holds at most {most} of the {len(sizes)} candidates "
        f"({min(sizes.values()):,}+ parameters each), so the configuration can reach at most {most} of the "
        f"{num_layers} layers. Smaller units spread it wider (--lora-rank, --bottleneck-size): on MiniLM at 1% "
        "on Rotten Tomatoes, half-size units scored higher on validation (benchmarks/results/minilm.md)."
    )


def _check_budget(budget: str, budget_params: int, sizes: dict[str, int]) -> None:
    largest, total = max(sizes.values()), sum(sizes.values())
    if budget_params < largest:  # below it, the search could end with nothing kept
        raise BudgetError(
            f"budget {budget!r} = {budget_params:,} parameters is below the largest candidate "
            f"({largest:,}), so the search could end with nothing kept. Raise --budget or lower --lora-rank / "
            "--bottleneck-size."
        )
    if budget_params >= total:
        raise BudgetError(
            f"budget {budget!r} = {budget_params:,} parameters holds the whole supernet ({total:,}), so there "
            "is nothing to prune. Lower --budget, or use a larger space (--space extended, --lora-rank)."
        )


def _warmup(
    model, tokenizer, task, search_task, settings, train, candidates, partition, k, log
) -> tuple[dict[str, list[str]], float]:
    """Warm-up turns on a stratified subset; returns the criteria assignment and the wall time."""
    warm_task = dataclasses.replace(
        task, train=stratified_subset(search_task.train, settings.warmup_fraction, train.seed)
    )
    warm = tokenize_task(warm_task, tokenizer, train.max_length)["train"]
    turn_steps = max(1, math.ceil(steps_per_epoch(len(warm), train.batch_size) / settings.warmup_turns))
    voter = WarmupVoter(candidates, partition, k, settings.warmup_turns, log)
    workdir = os.path.join(os.path.dirname(log.path), "_warmup")
    trainer = make_trainer(
        model, tokenizer, task, train, workdir, warm, max_steps=turn_steps * settings.warmup_turns,
        schedule="constant_with_warmup", callbacks=[PrunePEFTCallback(voter, turn_steps, evaluate=False)],
    )  # fmt: skip
    wall, _ = timed_train(trainer)
    remove_tree(workdir)
    voter.recorder.close()
    assignment = voter.assignment()
    log({"phase": "assignment", "counts": voter.counts, "assignment": assignment})
    return assignment, wall
