"""Handing a found configuration over in the formats practitioners use.

* LoRA-only configurations → a stock peft LoRA folder that ``PeftModel.from_pretrained`` loads without
  prunepeft (``adapter_config.json`` written by peft's own ``LoraConfig``, ``adapter_model.safetensors``).
* ``merge`` → a standalone transformers model with every LoRA update folded into its Linear weights.

Mixed configurations (LoRA + adapters) load with ``prunepeft.load``. They cannot be registered as a peft
method: ``peft.utils.register_peft_method`` accepts only names that are members of
``peft.utils.peft_types.PeftType``, a closed Enum, and we do not patch peft's Enum at run time.
"""

from __future__ import annotations

import collections
import os

import torch
from torch import nn

from prunepeft.handover.load import load
from prunepeft.method.backbone import resolve_model
from prunepeft.method.modules import LoraLinear
from prunepeft.method.recipe import Recipe


class ExportError(ValueError):
    """The configuration cannot be written in the requested format."""


def _lora_only(recipe: Recipe, what: str) -> None:
    others = sorted({s.kind for s in recipe.candidates if s.module != "lora"})
    if others:
        raise ExportError(
            f"this configuration keeps bottleneck adapters ({', '.join(others)}), so it {what}: an adapter applies "
            "a non-linearity between its projections, which no single weight matrix and no peft LoRA folder can "
            "express. Load it with prunepeft.load(base_model, run_dir) instead."
        )


def lora_targets(model: nn.Module) -> dict[str, LoraLinear]:
    """Module path -> our LoRA wrapper, for every LoRA unit attached to the model."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLinear)}


def export_peft(run_dir: str, out_dir: str, base_model: str | None = None) -> str:
    """Write a stock peft LoRA adapter folder and check, with peft itself, that every target was adapted."""
    from peft import LoraConfig, TaskType

    recipe = Recipe.load(run_dir)
    _lora_only(recipe, "cannot be a peft LoRA folder")
    model = load(base_model, run_dir)
    loras = lora_targets(model)
    head = {n.rpartition(".")[0] for n, p in model.named_parameters() if p.requires_grad and ".lora_" not in n}
    ranks = collections.Counter(m.rank for m in loras.values())
    alphas = collections.Counter(m.rank * m.scaling for m in loras.values())
    rank, alpha = ranks.most_common(1)[0][0], alphas.most_common(1)[0][0]
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=rank,
        lora_alpha=alpha,
        target_modules=sorted(loras),  # full paths: peft matches them exactly
        rank_pattern={n: m.rank for n, m in loras.items() if m.rank != rank},
        alpha_pattern={n: m.rank * m.scaling for n, m in loras.items() if m.rank * m.scaling != alpha},
        lora_dropout=max((getattr(m.dropout, "p", 0.0) for m in loras.values()), default=0.0),
        modules_to_save=sorted(head),
        base_model_name_or_path=resolve_model(*recipe.base_model(base_model)),
    )
    os.makedirs(out_dir, exist_ok=True)
    config.save_pretrained(out_dir)
    state = {}
    for name, lora in loras.items():
        state[f"base_model.model.{name}.lora_A.weight"] = lora.lora_A.weight
        state[f"base_model.model.{name}.lora_B.weight"] = lora.lora_B.weight
    for name, param in model.named_parameters():
        if param.requires_grad and ".lora_" not in name:
            state[f"base_model.model.{name}"] = param
    from safetensors.torch import save_file

    save_file(
        {k: v.detach().cpu().contiguous() for k, v in state.items()}, os.path.join(out_dir, "adapter_model.safetensors")
    )
    verify_peft_folder(out_dir, recipe, base_model)
    return out_dir


def verify_peft_folder(out_dir: str, recipe: Recipe, base_model: str | None = None) -> None:
    """Load the folder with peft and check every intended module became a LoRA layer with the right rank."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from prunepeft.method.backbone import load_model

    model_path, gguf_file = recipe.base_model(base_model)
    base = load_model(model_path, recipe.num_labels, gguf_file=gguf_file).model
    peft_model = PeftModel.from_pretrained(base, out_dir)
    adapted = {
        name.removeprefix("base_model.model."): m.r["default"]
        for name, m in peft_model.named_modules()
        if isinstance(m, LoraLayer)
    }
    wanted = {t: s.size for s in recipe.candidates for t in s.targets}
    if adapted != wanted:
        wrong = sorted(n for n in set(wanted) | set(adapted) if wanted.get(n) != adapted.get(n))
        raise ExportError(
            f"peft did not adapt the modules as intended: {[(n, wanted.get(n), adapted.get(n)) for n in wrong[:5]]} "
            "(module, rank wanted, rank peft built)."
        )


def export_merged(run_dir: str, out_dir: str, base_model: str | None = None) -> str:
    """A standalone transformers model: LoRA folded into the weights, the head kept, no prunepeft needed."""
    recipe = Recipe.load(run_dir)
    _lora_only(recipe, "cannot be merged into the base weights")
    model = merge_lora(load(base_model, run_dir))
    model.save_pretrained(out_dir, safe_serialization=True)
    from prunepeft.method.backbone import load_model

    model_path, gguf_file = recipe.base_model(base_model)
    load_model(model_path, recipe.num_labels, gguf_file=gguf_file).tokenizer.save_pretrained(out_dir)
    return out_dir


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA unit whose base is a plain Linear into that Linear (adapters stay as they are)."""
    for name, lora in lora_targets(model).items():
        if not isinstance(lora.base, nn.Linear):
            continue
        with torch.no_grad():
            lora.base.weight.copy_(lora.merged_weight())
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, lora.base)
    return model
