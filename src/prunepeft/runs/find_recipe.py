"""Warm-up and pruning rounds on a supernet, from the task's data to one recipe per budget.

The search's data (low fidelity, the log's validation rows), the steps of a round, the candidates' sizes, and the
Trainer runs of the warm-up and of the rounds (the rounds resumable from their last checkpoint).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time

from prunepeft.common.distributed import rank, world_size
from prunepeft.data.splits import stratified_subset
from prunepeft.data.task import TaskData
from prunepeft.data.tokenizing import tokenize_task
from prunepeft.method import hybrid
from prunepeft.method.backbone import count_params
from prunepeft.method.callback import PrunePEFTCallback
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space, spec_params, unit_sizes
from prunepeft.method.criteria import MIN_STEPS
from prunepeft.method.pruner import (
    BudgetError,
    Pruner,
    SearchSettings,
    WarmupVoter,
    check_budget,
    default_k,
    parse_budget,
)
from prunepeft.method.recipe import Recipe, write_json_atomic
from prunepeft.runs.checkpoints import (
    SEARCH_STATE,
    count_lines,
    latest_checkpoint,
    read_state,
    remove_tree,
    truncate_lines,
    verify_checkpoint,
)
from prunepeft.runs.options import (
    JsonlLog,
    RunOptions,
    build_model,
    peak_memory,
)
from prunepeft.runs.run_folder import budget_dir
from prunepeft.runs.training import TrainSettings, make_trainer, steps_per_epoch, timed_train

LOG = "search_log.jsonl"


def search_settings(opts: RunOptions, space: SpaceSettings, settings: SearchSettings, train: TrainSettings) -> dict:
    """A search's settings as saved in run_config.json (which ``--resume`` reads back) and in its recipes."""
    return {
        "run": dataclasses.asdict(opts),
        "space": dataclasses.asdict(space),
        "search": dataclasses.asdict(settings),
        "train": dataclasses.asdict(train),
    }


def budget_labels(settings: SearchSettings) -> list[str]:
    """The budgets as given (``"2%,1%"`` -> ``["2%", "1%"]``); one for a plain search. Checks --train-budgets."""
    labels = [b.strip() for b in str(settings.budget).split(",")]
    if not all(labels) or len(set(labels)) != len(labels):
        raise BudgetError(
            f"--budget {settings.budget!r}: give one budget, or several different ones separated by commas "
            "(e.g. '2%,1%,0.5%,0.25%')."
        )
    chosen = [b.strip() for b in (settings.train_budgets or "").split(",") if b.strip()]
    unknown = [b for b in chosen if b not in labels]
    if unknown:
        raise BudgetError(f"--train-budgets {', '.join(unknown)}: not among --budget {settings.budget!r}.")
    if chosen and len(labels) == 1:
        raise BudgetError("--train-budgets chooses among several budgets; --budget gives only one.")
    return labels


def _search_data(task: TaskData, settings: SearchSettings, train: TrainSettings) -> TaskData:
    """Low fidelity: a stratified share of train. The per-round validation, for the log only and off unless
    --search-eval-samples is given: a stratified subset of that many rows, and no more than a round trains on,
    so that scoring a round for the log costs at most about a third of the round (a forward pass against
    forward and backward). The test split is never used by the search."""
    search_task = dataclasses.replace(task, validation=task.validation.select([]), test=task.test.select([]))
    if settings.search_fraction < 1:
        search_task = dataclasses.replace(
            search_task, train=stratified_subset(task.train, settings.search_fraction, train.seed)
        )
    if settings.eval_samples:
        round_steps = _round_steps(settings, len(search_task.train), train.batch_size)
        rows = min(settings.eval_samples, max(32, round_steps * train.batch_size))
        search_task = dataclasses.replace(search_task, validation=stratified_subset(task.validation, rows, train.seed))
    return search_task


def _round_steps(settings: SearchSettings, rows: int, batch_size: int) -> int:
    """Optimizer steps per round: --round-epochs of the search data (``rows``), at most --round-max-steps (0: no
    cap), and never fewer than MIN_STEPS (the Trainer loops over small data), so that a round's statistics carry
    evidence whatever the data size. A low-fidelity search at fraction f is f of the default search: f of the
    rows, so f of a round's epoch share, and f of the cap too."""
    steps = max(MIN_STEPS, round(settings.round_epochs * steps_per_epoch(rows, batch_size)))
    if not settings.round_max_steps:
        return steps
    return min(steps, max(MIN_STEPS, round(settings.search_fraction * settings.round_max_steps)))


def find_recipe(
    opts: RunOptions,
    task: TaskData,
    space: SpaceSettings,
    settings: SearchSettings,
    train: TrainSettings,
    resume: bool = False,
) -> tuple[Recipe, dict, dict]:
    """Warm-up and pruning rounds on a supernet; writes search_log.jsonl and recipe.json."""
    recipes, timings, extra = find_recipes(opts, task, space, settings, train, resume)
    (recipe,) = recipes.values()
    return recipe, timings, extra


def find_recipes(
    opts: RunOptions,
    task: TaskData,
    space: SpaceSettings,
    settings: SearchSettings,
    train: TrainSettings,
    resume: bool = False,
) -> tuple[dict[str, Recipe], dict, dict]:
    """Warm-up and pruning rounds on a supernet down to the smallest budget; writes search_log.jsonl and a
    recipe per budget (recipe.json, or BUDGET/recipe.json for each of several budgets), largest budget first."""
    out = opts.output_dir
    loaded = build_model(opts, task, train.seed)
    model, tokenizer = loaded.model, loaded.tokenizer
    base_params, head_params = count_params(model, loaded.head_names)
    labels = budget_labels(settings)
    budgets = {label: parse_budget(label, base_params) for label in labels}
    if len(set(budgets.values())) != len(budgets):
        raise BudgetError(f"--budget {settings.budget!r}: two of the budgets are the same number of parameters.")
    budget_params = min(budgets.values())
    model_map = opts.model_map(model)
    specs = build_space(
        model_map, space, unit_sizes(model, model_map, space, _sizing_budget(model, model_map, space, budgets))
    )
    candidates = {c.spec.name: c for c in attach_all(model, specs)}
    sizes = {n: c.n_params for n, c in candidates.items()}
    for label, params in budgets.items():
        check_budget(label, params, sizes)
    note = coverage_note(budget_params, sizes, model_map.num_layers)
    if note and rank() == 0 and (space.lora_rank or space.bottleneck_size):  # sizes the user fixed
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
        budgets=sorted(budgets.values(), reverse=True) if len(budgets) > 1 else None,
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
        start = {
            "phase": "start", "candidates": sizes, "partition": partition, "prune_per_round": k,
            "supernet_params": sum(sizes.values()), "budget_params": budget_params,
            "base_params": base_params, "head_params": head_params,
        }  # fmt: skip
        if len(budgets) > 1:
            start["budgets"] = budgets
        log(start)
        timings = {"warmup_s": 0.0, "rounds_s": 0.0}
        assignment = {p: [settings.criterion] for p in sorted(set(partition.values()))}
        if settings.criterion == "hybrid":
            assignment, timings["warmup_s"] = _warmup(
                model, tokenizer, task, search_task, tokenized["train"], settings, train, candidates, partition, k, log
            )
        pruner = Pruner(model, candidates, assignment=assignment, **pruner_kwargs)
    if not pruner.done:
        round_steps = _round_steps(settings, len(tokenized["train"]), train.batch_size)
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

        evaluate = bool(settings.eval_samples)
        rounds = PrunePEFTCallback(
            pruner, round_steps, evaluate=evaluate, save_state=save_state, checkpoint_every=settings.checkpoint_every
        )
        trainer = make_trainer(
            model, tokenizer, task, train, rounds_dir, tokenized["train"],
            tokenized["validation"] if evaluate else None, max_steps=max_rounds * round_steps,
            schedule="constant_with_warmup", callbacks=[rounds],
        )  # fmt: skip
        wall, _ = timed_train(trainer, checkpoint)
        timings["rounds_s"] += wall
    pruner.recorder.close()
    timings["search_s"] = timings["warmup_s"] + timings["rounds_s"]
    # peak memory of the search itself (the final training and the latency probe come later)
    extra = {"supernet_params": sum(sizes.values()), "rounds": pruner.round, "search_memory_mib": peak_memory()}
    common = dict(
        model=opts.model, task=opts.task, num_labels=task.num_labels, layers_path=model_map.layers_path,
        num_layers=model_map.num_layers, base_params=base_params, head_params=head_params,
        assignment=pruner.assignment,
    )  # fmt: skip
    run_settings = {**search_settings(opts, space, settings, train), "timings": timings}
    recipes = {}
    if len(budgets) == 1:
        recipe = Recipe(
            candidates=[c.spec for c in pruner.alive.values()], peft_params=pruner.peft_params,
            budget_params=budget_params, removed=pruner.removed, settings={**run_settings, "extra": extra}, **common,
        )  # fmt: skip
        recipe.save(os.path.join(out, "recipe.json"))
        recipes[labels[0]] = recipe
    else:
        for label, params in sorted(budgets.items(), key=lambda item: -item[1]):
            fit = pruner.fits[params]
            alive = set(fit["alive"])
            recipe = Recipe(
                candidates=[candidates[n].spec for n in candidates if n in alive], peft_params=fit["peft_params"],
                budget_params=params, removed={n: r for n, r in pruner.removed.items() if n not in alive},
                settings={**run_settings, "extra": {**extra, "budget": label, "fit_round": fit["round"]}}, **common,
            )  # fmt: skip
            os.makedirs(os.path.join(out, budget_dir(label)), exist_ok=True)
            recipe.save(os.path.join(out, budget_dir(label), "recipe.json"))
            recipes[label] = recipe
    if world_size() > 1:  # every process states what it kept: they must agree
        print(f"prunepeft rank {rank()}: kept {sorted(pruner.alive)}", flush=True)
    return recipes, timings, extra


def _sizing_budget(model, model_map, space: SpaceSettings, budgets: dict[str, int]) -> int:
    """The budget the candidates are sized for (where --lora-rank / --bottleneck-size leave it open): the only
    one; of several, the largest (so that its configuration is sized as a search for it alone would size it),
    unless a candidate sized for it would not fit in the smallest: then as large as lets one candidate take
    about 4/5 of the smallest budget."""
    largest, smallest = max(budgets.values()), min(budgets.values())
    if largest == smallest:
        return largest
    specs = build_space(model_map, space, unit_sizes(model, model_map, space, largest))
    unit = max(spec_params(model, s) for s in specs)
    if unit <= smallest:
        return largest
    return max(smallest, int(largest * 0.8 * smallest / unit))


def coverage_note(budget_params: int, sizes: dict[str, int], num_layers: int) -> str | None:
    """A note when the budget cannot hold a module on every layer, even of the smallest candidates."""
    most = budget_params // min(sizes.values())
    if most >= num_layers:
        return None
    return (
        f"the budget ({budget_params:,} parameters) holds at most {most} of the {len(sizes)} candidates "
        f"({min(sizes.values()):,}+ parameters each), so the configuration can reach at most {most} of the "
        f"{num_layers} layers. Smaller units spread it wider: lower --lora-rank / --bottleneck-size, or leave them "
        "unset to size every candidate from the budget (an equal share of twice the budget)."
    )


def _warmup(
    model, tokenizer, task, search_task, search_train, settings, train, candidates, partition, k, log
) -> tuple[dict[str, list[str]], float]:
    """Warm-up turns on a stratified subset of the search data (its rows taken from the tokenised search data,
    not tokenised again); returns the criteria assignment and the wall time."""
    numbered = search_task.train.add_column("__row", list(range(len(search_task.train))))
    warm = search_train.select(stratified_subset(numbered, settings.warmup_fraction, train.seed)["__row"])
    turn_steps = max(MIN_STEPS, math.ceil(steps_per_epoch(len(warm), train.batch_size) / settings.warmup_turns))
    voter = WarmupVoter(candidates, partition, k, settings.warmup_turns, log, seed=train.seed)
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
