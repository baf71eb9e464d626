"""The final training of a configuration (a found recipe, or a baseline), its test, and its results.json.

Also ``train_recipe``: retrain a saved recipe (``prunepeft train --recipe``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from transformers import TrainerCallback

from prunepeft.common.distributed import is_main_process
from prunepeft.common.progress import PLAN, doing, progress_shown
from prunepeft.data.metrics import never_predicted
from prunepeft.data.task import TaskData
from prunepeft.data.tokenizing import tokenize_task
from prunepeft.handover.load import save_weights
from prunepeft.method.backbone import LoadedModel, count_params, label_maps, load_model
from prunepeft.method.candidates import attach_all
from prunepeft.method.recipe import Recipe, write_json_atomic
from prunepeft.runs.checkpoints import latest_checkpoint, remove_tree, save_run_config, verify_checkpoint
from prunepeft.runs.options import (
    RunError,
    RunOptions,
    build_model,
    environment,
    load_data,
    peak_memory,
    prepare_output,
)
from prunepeft.runs.rate_choice import chosen_on_these_inputs, recipe_rate
from prunepeft.runs.run_folder import read_json
from prunepeft.runs.training import TrainSettings, make_trainer, timed_train


def fit_and_test(
    model, tokenizer, task: TaskData, train: TrainSettings, out: str, resume: bool = False, callbacks=None
) -> tuple[float, list, dict]:
    """Train with per-epoch validation and checkpoints, then evaluate on the test split once.

    With ``resume``, training continues from the newest complete checkpoint in ``out/_final``.
    """
    tokenized = tokenize_task(task, tokenizer, train.max_length)
    workdir = os.path.join(out, "_final")
    checkpoint = latest_checkpoint(workdir) if resume else None
    if checkpoint is None:
        remove_tree(workdir)
    else:
        verify_checkpoint(checkpoint)
    before = (read_json(os.path.join(checkpoint, ELAPSED)) or {}).get("train_s", 0.0) if checkpoint else 0.0
    clock = ElapsedClock(before)
    trainer = make_trainer(
        model, tokenizer, task, train, workdir, tokenized["train"], tokenized["validation"],
        eval_each_epoch=True, save_each_epoch=True, callbacks=[clock, *(callbacks or [])],
    )  # fmt: skip
    wall, history = timed_train(trainer, checkpoint)
    wall += before  # training time before an interruption counts too
    with doing(f"testing on the test split ({len(tokenized['test']):,} rows)"):
        if getattr(task, "causal_lm", False) or task.is_regression:
            test = trainer.evaluate(tokenized["test"], metric_key_prefix="test")
        else:  # the same metrics as evaluate(), plus the predictions for the per-class figures
            output = trainer.predict(tokenized["test"], metric_key_prefix="test")
            test = dict(output.metrics)
            test["per_class"] = per_class(output.predictions, output.label_ids, task)
            validation = trainer.predict(tokenized["validation"], metric_key_prefix="eval")
            test["warnings"] = collapse_warnings(task, {"validation": validation, "test": output})
    return wall, history, test


def collapse_warnings(task: TaskData, outputs: dict) -> list[str]:
    """Split -> Trainer prediction output: one warning line (printed on stderr) per split on which the model
    never predicts a class that the split holds."""
    names = [str(n) for n in (task.label_names or range(task.num_labels))]
    lines = []
    for split, output in outputs.items():
        line = never_predicted(class_ids(output.predictions), output.label_ids, names, split)
        if line:
            lines.append(line)
            if is_main_process():
                print(line, file=sys.stderr)
    return lines


def class_ids(logits):
    """The predicted class of each row, from the Trainer's predictions (logits, or logits and extra outputs)."""
    import numpy as np

    logits = logits[0] if isinstance(logits, tuple) else logits
    return np.asarray(logits).argmax(-1).reshape(-1)


def per_class(logits, label_ids, task: TaskData) -> dict:
    """Confusion matrix (rows: true label, columns: predicted) and per-class precision, recall, F1 and
    support on the test split, under the task's label names."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    preds = class_ids(logits)
    labels = np.asarray(label_ids).reshape(-1)
    ids = list(range(task.num_labels))
    names = [str(n) for n in (task.label_names or ids)]
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=ids, zero_division=0)
    return {
        "labels": names,
        "confusion_matrix": confusion_matrix(labels, preds, labels=ids).tolist(),
        "classes": {
            name: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                   "support": int(n)}
            for name, p, r, f, n in zip(names, precision, recall, f1, support, strict=True)
        },
    }  # fmt: skip


ELAPSED = "elapsed.json"


class ElapsedClock(TrainerCallback):
    """Stores the training time so far in each checkpoint, so a resumed run reports the whole time."""

    def __init__(self, before: float):
        self.before, self.start = before, time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        write_json_atomic(os.path.join(folder, ELAPSED), {"train_s": self.before + time.perf_counter() - self.start})


def final_train(
    opts: RunOptions,
    recipe: Recipe,
    task: TaskData,
    train: TrainSettings,
    timings: dict,
    extra: dict,
    resume: bool = False,
    method: str = "prunepeft",
) -> dict:
    """Retrain the recipe's candidates from a fresh initialisation on the full training data; test once."""
    PLAN.where = "final training (before its first step)"
    if task.label_names and not getattr(task, "causal_lm", False) and recipe.label_names != task.label_names:
        recipe = dataclasses.replace(recipe, label_names=list(task.label_names))  # the names travel with it
        recipe.save(os.path.join(opts.output_dir, "recipe.json"))
    loaded = build_model(opts, task, train.seed)
    try:
        loaded.model.get_submodule(recipe.layers_path)
    except AttributeError as err:
        raise RunError(
            f"the recipe places candidates under {recipe.layers_path!r}, which model {opts.model!r} does not have; "
            "retrain it on the model it was found for (the recipe's 'model')."
        ) from err
    base, head = count_params(loaded.model, loaded.head_names)  # before the candidates are attached
    attached = attach_all(loaded.model, recipe.candidates)
    peft = sum(c.n_params for c in attached)
    print(trainable_line(peft, base, head))
    timings["final_train_s"], history, test = fit_and_test(
        loaded.model, loaded.tokenizer, task, train, opts.output_dir, resume
    )
    if getattr(task, "causal_lm", False):
        from prunepeft.data.instruct import exact_match, perplexity

        test["test_perplexity"] = perplexity(test.get("test_loss"))
        with doing("generating the test answers (exact match)"):
            test["test_exact_match"] = exact_match(loaded.model, loaded.tokenizer, task)
    save_weights(loaded.model, opts.output_dir)
    with doing("measuring inference latency"):
        latency = inference_latency(opts, task, loaded)
    if timings.get("search_s") is not None:  # the learning-rate probes count as search
        search_s = timings["search_s"] + timings.get("rate_choice_s", 0.0)
        timings["search_to_train_ratio"] = round(search_s / timings["final_train_s"], 4)
    # counted on the model trained, not read from the recipe (an edited recipe's peft_params can be stale)
    params = {"peft": peft, "budget": recipe.budget_params, **extra}
    results = summarise(opts, task, method, base, head, params, history, test, timings)
    results["per_layer"] = recipe.per_layer()
    results["latency_ms"] = latency
    results["resumed"] = resume
    if "learning_rate" in recipe.settings:  # how the rate was set, with the probes' evidence (runs.rate_choice)
        results["learning_rate"] = recipe.settings["learning_rate"]
    write_json_atomic(os.path.join(opts.output_dir, "results.json"), results)
    cleanup(opts.output_dir)
    from prunepeft.handover.report import write_report

    with doing("writing the report"):
        write_report(opts.output_dir)
    return results


def inference_latency(opts: RunOptions, task: TaskData, loaded: LoadedModel) -> dict:
    """Forward time per batch (32 x 64 tokens): the base model, this configuration, and it with LoRA merged."""
    import copy

    from prunepeft.handover.peft_export import lora_targets, merge_lora
    from prunepeft.handover.report import measure_latency

    vocab = loaded.model.config.vocab_size
    device = next(loaded.model.parameters()).device  # where the Trainer left the trained model
    base = load_model(
        opts.model,
        task.num_labels,
        trust_remote_code=opts.trust_remote_code,
        gguf_file=opts.gguf_file,
        progress=progress_shown(),
    ).model.to(device)
    has_lora = bool(lora_targets(loaded.model))
    merged = merge_lora(copy.deepcopy(loaded.model)) if has_lora else None
    return {
        "batch": "32x64",
        "base_model": measure_latency(base, vocab),
        "configuration": measure_latency(loaded.model, vocab),
        "configuration_lora_merged": measure_latency(merged, vocab) if has_lora else None,
    }


def cleanup(out: str) -> None:
    """A finished run keeps its results, not its Trainer checkpoints."""
    for name in ("_final", "_search", "_warmup"):
        remove_tree(os.path.join(out, name))


def trainable_share(peft: int, base: int) -> float:
    """The one trainable share of every run, printed before training, in the summary and in results.json:
    PEFT parameters (the kept candidates, or peft's LoRA modules; the task head excluded) as a percentage of
    the base model's parameters (the head excluded): the measure the budget is given in. peft's own
    ``print_trainable_parameters`` (head included, over all parameters with the adapters) is not printed."""
    return round(100 * peft / base, 4)


def trainable_line(peft: int, base: int, head: int) -> str:
    """The trainable share as the summary prints it."""
    return (
        f"trainable PEFT parameters: {peft:,} ({trainable_share(peft, base):.3f}% of the {base:,} base "
        f"parameters; head {head:,} more)"
    )


def summarise(
    opts: RunOptions, task: TaskData, method: str, base: int, head: int, params: dict, history, test, timings
) -> dict:
    """The content of results.json (the same shape for every method)."""
    warnings = test.get("warnings", [])
    test = {k: v for k, v in test.items() if k != "warnings"}
    return {
        "method": method,
        "task": opts.task,
        "model": opts.model,
        "metric": task.metric,
        **label_maps(None if getattr(task, "causal_lm", False) else task.label_names),
        "validation": history[-1] if history else {},
        "validation_history": history,
        "test": test,
        "warnings": warnings,  # e.g. a class the model never predicts
        "params": {
            "base": base,
            "head": head,
            **params,
            "peft_percent_of_base": trainable_share(params["peft"], base),
        },
        "time_s": {k: round(v, 3) for k, v in timings.items()},
        "memory_mib": peak_memory(),
        "split": task.split_note,
        "sizes": {"train": len(task.train), "validation": len(task.validation), "test": len(task.test)},
        "command": " ".join(sys.argv),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **environment(),
    }


def train_recipe(opts: RunOptions, recipe: Recipe, train: TrainSettings) -> dict:
    """Retrain a saved recipe (``prunepeft train --recipe``)."""
    prepare_output(opts)
    save_run_config(opts.output_dir, {"run": dataclasses.asdict(opts), "train": dataclasses.asdict(train)})
    task = load_data(opts, train.seed)
    if task.num_labels != recipe.num_labels:
        raise RunError(
            f"the recipe was found for {recipe.num_labels} labels but task {opts.task!r} has "
            f"{task.num_labels}; retrain it on a task with the same labels."
        )
    same_inputs = chosen_on_these_inputs(recipe, opts, train)
    recipe = dataclasses.replace(recipe, model=opts.model, task=opts.task)  # what this run really trains on
    recipe.save(os.path.join(opts.output_dir, "recipe.json"))
    timings: dict = {}
    recipe, train = recipe_rate(opts, recipe, task, train, timings, same_inputs)
    results = final_train(opts, recipe, task, train, timings, {})
    return results
