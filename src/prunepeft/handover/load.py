"""Saving and loading trained configurations (safetensors only)."""

from __future__ import annotations

import os

from safetensors.torch import load_file, save_file
from torch import nn

from prunepeft.common.distributed import is_main_process
from prunepeft.method.backbone import freeze_for_peft, load_model, report_new_keys
from prunepeft.method.candidates import attach_all
from prunepeft.method.recipe import Recipe

WEIGHTS = "adapter_model.safetensors"


def trainable_state(model: nn.Module) -> dict:
    """The tensors a run trained: the kept candidates and the task head."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_weights(model: nn.Module, run_dir: str) -> str:
    path = os.path.join(run_dir, WEIGHTS)
    if not is_main_process():
        return path
    tmp = path + ".tmp"
    save_file(trainable_state(model), tmp, metadata={"format": "pt", "producer": "prunepeft"})
    os.replace(tmp, path)
    return path


def load(
    base_model: str | None, run_dir: str, *, trust_remote_code: bool = False, progress: bool | None = None
) -> nn.Module:
    """Rebuild a trained configuration: base model + the recipe's candidates + the saved weights.

    ``base_model`` is a model directory, hub id or alias; None uses the one named in the recipe. The model's
    ``config.id2label`` holds the task's label names. No load report is printed for the head (it is restored
    from the run); a warning names any tensor that stays newly initialised.
    """
    recipe = Recipe.load(run_dir)
    model_path, gguf_file = recipe.base_model(base_model)
    loaded = load_model(
        model_path, recipe.num_labels, trust_remote_code=trust_remote_code, gguf_file=gguf_file,
        label_names=recipe.label_names, progress=progress,
    )  # fmt: skip
    model = loaded.model
    freeze_for_peft(model, loaded.head_names)
    attach_all(model, recipe.candidates)
    path = os.path.join(run_dir, WEIGHTS)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no {WEIGHTS} in {run_dir}; the run may not have finished its final training.")
    state = load_file(path)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise ValueError(
            f"{len(result.unexpected_keys)} saved tensors have no place in the rebuilt model "
            f"(first: {result.unexpected_keys[:3]}); is this the base model the run used?"
        )
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trained - set(state))
    if missing:
        raise ValueError(
            f"{WEIGHTS} lacks {len(missing)} trained tensors (first: {missing[:3]}); the file is incomplete."
        )
    not_restored = [key for key in loaded.new_keys if key not in state]
    report_new_keys(model_path, not_restored, "are missing from the base checkpoint and were not restored from the run")
    report_new_keys(model_path, loaded.unexpected_keys, "of the base checkpoint have no place in the model (unused)")
    return model.eval()
