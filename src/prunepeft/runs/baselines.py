"""The methods a user would otherwise run, trained exactly like a found configuration (same data, split,
schedule, head and Trainer): ``full``, peft's ``lora`` / ``dora`` / ``adalora``, and our ``adapter`` (a
serial adapter on every layer) and ``supernet`` (every candidate, no pruning)."""

from __future__ import annotations

import dataclasses
import math
import os

from transformers import TrainerCallback, set_seed

from prunepeft.common.distributed import is_main_process
from prunepeft.common.progress import progress_shown
from prunepeft.handover.load import peft_without_deprecation
from prunepeft.method.backbone import count_params, load_model, quiet_loading
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space
from prunepeft.method.recipe import Recipe, write_json_atomic
from prunepeft.runs.checkpoints import save_run_config
from prunepeft.runs.final_training import cleanup, final_train, fit_and_test, summarise, trainable_line
from prunepeft.runs.options import RunError, RunOptions, build_model, load_data, prepare_output
from prunepeft.runs.run_folder import PEFT_BASELINES
from prunepeft.runs.training import TrainSettings, steps_per_epoch

PEFT_METHODS = PEFT_BASELINES  # peft's own methods (run_folder knows the files they write)
OUR_METHODS = ("adapter", "supernet")
METHODS = ("full", *PEFT_METHODS, *OUR_METHODS)


class AdaLoraAllocation(TrainerCallback):
    """AdaLoRA re-allocates ranks from gradients: after each optimizer step, before the Trainer zeroes them.
    Without this call AdaLoRA silently trains as a plain LoRA of rank ``init_r``."""

    def __init__(self, peft_model):
        self.peft_model = peft_model
        self.calls = 0

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.peft_model.base_model.update_and_allocate(state.global_step)
        self.calls += 1


def train_baseline(
    opts: RunOptions, train: TrainSettings, method: str, *, rank: int, alpha: float, targets: list[str],
    space: SpaceSettings,
) -> dict:  # fmt: skip
    if method in OUR_METHODS:
        return _train_ours(opts, train, method, space)
    prepare_output(opts)
    task = load_data(opts, train.seed)
    save_run_config(opts.output_dir, {"method": method, "run": opts.__dict__, "train": train.__dict__,
                                      "lora": {"rank": rank, "alpha": alpha, "targets": targets},
                                      "num_labels": task.num_labels})  # fmt: skip
    set_seed(train.seed)
    loaded = load_model(opts.model, task.num_labels, trust_remote_code=opts.trust_remote_code, gguf_file=opts.gguf_file,
                        label_names=task.label_names)  # fmt: skip
    base, head = count_params(loaded.model, loaded.head_names)
    model, callbacks, params = loaded.model, [], {}
    if method == "full":
        model.requires_grad_(True)
    else:
        if not targets:  # the attention's query and value projections, whatever the family calls them
            roles = opts.model_map(loaded.model).roles
            if not roles.get("q") or not roles.get("v"):
                raise RunError("no query/value projections were recognised in this model; name the modules for "
                               "LoRA with --lora-targets (e.g. --lora-targets q_proj,v_proj).")  # fmt: skip
            targets = [*roles["q"], *roles["v"]]
        model, callbacks, params = _peft_model(loaded, method, task, train, rank, alpha, targets)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    peft = trainable - (0 if method == "full" else head)
    print(trainable_line(peft, base, head))
    wall, history, test = fit_and_test(model, loaded.tokenizer, task, train, opts.output_dir, callbacks=callbacks)
    if method == "adalora":
        params.update(_adalora_allocation(model, callbacks[0]))
    if is_main_process():
        with quiet_loading(progress_shown()):  # no "Writing model shards" bar under --no-progress
            model.save_pretrained(opts.output_dir)  # safetensors
    results = summarise(
        opts, task, method, base, head, {"peft": peft, **params}, history, test, {"final_train_s": wall}
    )
    write_json_atomic(os.path.join(opts.output_dir, "results.json"), results)
    cleanup(opts.output_dir)
    return results


def _peft_model(loaded, method, task, train, rank, alpha, targets):
    from peft import AdaLoraConfig, LoraConfig, TaskType, get_peft_model

    common = dict(task_type=TaskType.SEQ_CLS, lora_alpha=alpha, target_modules=targets,
                  modules_to_save=list(loaded.head_names))  # fmt: skip
    if method == "adalora":
        total = math.ceil(train.epochs * steps_per_epoch(len(task.train), train.batch_size))
        # start at 1.5x the target rank, allocate between 10% and 80% of training (peft's recommended shape)
        config = AdaLoraConfig(init_r=max(rank * 3 // 2, rank + 1), target_r=rank, total_step=total,
                               tinit=int(0.1 * total), tfinal=int(0.2 * total), deltaT=10, **common)  # fmt: skip
    else:
        config = LoraConfig(r=rank, use_dora=method == "dora", **common)
    with peft_without_deprecation():
        model = get_peft_model(loaded.model, config)
    callbacks = [AdaLoraAllocation(model)] if method == "adalora" else []
    return model, callbacks, {"lora_rank": rank, "lora_targets": targets}


def _adalora_allocation(model, allocation: AdaLoraAllocation) -> dict:
    pattern = model.peft_config["default"].rank_pattern or {}
    ranks = {name: int(sum(bool(x) for x in mask)) for name, mask in pattern.items()}
    return {"adalora_calls": allocation.calls, "adalora_final_ranks": ranks, "adalora_total_rank": sum(ranks.values())}


def _train_ours(opts: RunOptions, train: TrainSettings, method: str, space: SpaceSettings) -> dict:
    """A fixed configuration of our candidates, retrained like a found recipe."""
    prepare_output(opts)
    task = load_data(opts, train.seed)
    loaded = build_model(opts, task, train.seed)  # only to map the model and count the candidates
    base, head = count_params(loaded.model, loaded.head_names)
    model_map = opts.model_map(loaded.model)
    if method == "adapter":  # the serial adapters of the mixed space, whatever space the search defaults to
        specs = [
            s for s in build_space(model_map, dataclasses.replace(space, space="attention")) if s.kind == "serial_ffn"
        ]
    else:
        specs = build_space(model_map, space)
    n_params = sum(c.n_params for c in attach_all(loaded.model, specs))
    recipe = Recipe(
        model=opts.model, task=opts.task, num_labels=task.num_labels, layers_path=model_map.layers_path,
        num_layers=model_map.num_layers, candidates=specs, peft_params=n_params, budget_params=n_params,
        base_params=base, head_params=head, settings={"method": method, "space": space.__dict__},
    )  # fmt: skip
    del loaded
    recipe.save(os.path.join(opts.output_dir, "recipe.json"))
    save_run_config(opts.output_dir, {"method": method, "run": opts.__dict__, "train": train.__dict__})
    return final_train(opts, recipe, task, train, {}, {}, method=method)
