"""Saving and loading trained runs (safetensors only): a recipe rebuilt by prunepeft, a peft baseline through
peft, full fine-tuning as a plain transformers model; and the tokenizer that goes with each."""

from __future__ import annotations

import contextlib
import json
import os
import warnings

from safetensors.torch import load_file, save_file
from torch import nn

from prunepeft.common.distributed import is_main_process
from prunepeft.method.backbone import freeze_for_peft, load_model, quiet_loading, report_new_keys, resolve_model
from prunepeft.method.candidates import attach_all
from prunepeft.method.recipe import Recipe

WEIGHTS = "adapter_model.safetensors"


class RunFolderError(ValueError):
    """The folder is not a finished run that can be loaded."""


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


@contextlib.contextmanager
def peft_without_deprecation():
    """Around peft calls that wrap a model (``get_peft_model``, ``PeftModel.from_pretrained``).

    peft reads ``model.is_gradient_checkpointing`` when it wraps a model, and transformers 5 answers that
    property with ``FutureWarning: is_gradient_checkpointing is deprecated`` every time. The call is inside
    peft, not ours, so exactly that warning is hidden here and nowhere else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def read_json(path: str) -> dict:
    """The file's object, or {} when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def run_kind(run_dir: str) -> str:
    """The kind of run: "recipe" (searches, train --recipe, the adapter and supernet baselines), "peft"
    (lora, dora, adalora baselines: a peft adapter folder) or "full" (full fine-tuning: a transformers model)."""
    for name, kind in (("recipe.json", "recipe"), ("adapter_config.json", "peft"), ("config.json", "full")):
        if os.path.isfile(os.path.join(run_dir, name)):
            return kind
    raise RunFolderError(
        f"{run_dir!r} holds no finished run (no recipe.json, adapter_config.json or config.json). Give the "
        "--output-dir of a search or train run."
    )


def run_base_model(run_dir: str, base_model: str | None = None) -> tuple[str, str | None]:
    """The base model a run was trained on (as the user named it) and its GGUF file; ``base_model`` overrides."""
    if run_kind(run_dir) == "recipe":
        return Recipe.load(run_dir).base_model(base_model)
    if base_model:
        return base_model, None
    run = read_json(os.path.join(run_dir, "run_config.json")).get("run", {})
    return run.get("model") or "minilm", run.get("gguf_file")


def run_labels(run_dir: str) -> tuple[int, list[str] | None]:
    """(number of labels, label names by id or None) of a baseline run, from its own files."""
    results = read_json(os.path.join(run_dir, "results.json"))
    id2label = results.get("id2label") or {}
    names = [id2label[k] for k in sorted(id2label, key=int)] or None
    per_class = results.get("test", {}).get("per_class", {}).get("labels")
    num_labels = read_json(os.path.join(run_dir, "run_config.json")).get("num_labels")
    return num_labels or len(names or per_class or [0]), names  # runs before num_labels was saved: names, or 1


def load_tokenizer(base_model: str | None, run_dir: str, *, trust_remote_code: bool = False):
    """The tokenizer of the run's base model (decoders pad with their end-of-sequence token)."""
    from transformers import AutoTokenizer

    path, gguf_file = run_base_model(run_dir, base_model)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(path, gguf_file), trust_remote_code=trust_remote_code,
                                              **extra)  # fmt: skip
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_trained(
    base_model: str | None, run_dir: str, *, trust_remote_code: bool = False, progress: bool | None = None
) -> nn.Module:
    """Any finished run, in eval mode: a recipe through ``load``, a peft baseline as a peft ``PeftModel`` on the
    base model (with the run's label names), full fine-tuning as the saved transformers model."""
    kind = run_kind(run_dir)
    if kind == "recipe":
        return load(base_model, run_dir, trust_remote_code=trust_remote_code, progress=progress)
    if kind == "full":
        from transformers import AutoModelForSequenceClassification

        with quiet_loading(progress):
            return AutoModelForSequenceClassification.from_pretrained(run_dir, trust_remote_code=trust_remote_code)
    from peft import PeftModel

    path, gguf_file = run_base_model(run_dir, base_model)
    num_labels, names = run_labels(run_dir)
    base = load_model(path, num_labels, trust_remote_code=trust_remote_code, gguf_file=gguf_file, label_names=names,
                      progress=progress).model  # fmt: skip
    with peft_without_deprecation():
        return PeftModel.from_pretrained(base, run_dir).eval()


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
