"""Token ids for the model: one Dataset per split, the labels kept and the text columns removed."""

from __future__ import annotations

from typing import Any

import datasets
from datasets import Value

from prunepeft.common.interrupts import map_fingerprints
from prunepeft.data.instruct import tokenize_instructions
from prunepeft.data.task import DataError, TaskData


def tokenize_task(task: TaskData, tokenizer: Any, max_length: int) -> dict[str, datasets.Dataset]:
    """Token ids per split ("labels" kept, text columns removed); padding is left to the collator."""
    if getattr(task, "causal_lm", False):
        return tokenize_instructions(task, tokenizer, max_length)
    if max_length < 1:
        raise DataError(f"max_length must be a positive number of tokens, got {max_length}.")
    pair = task.has_pair

    def encode(batch: dict[str, list[Any]]) -> Any:
        return tokenizer(batch["text"], batch["text_pair"] if pair else None, truncation=True, max_length=max_length)

    out: dict[str, datasets.Dataset] = {}
    splits = ("train", "validation", "test")
    # computed by us, not by datasets, where a Ctrl-C would be lost (see common.interrupts)
    key = ["encode", type(tokenizer).__name__, sorted(tokenizer.get_vocab().items()), max_length, pair]
    fingerprints = map_fingerprints(encode, [getattr(task, split) for split in splits], "batched", key=key)
    for split, fingerprint in zip(splits, fingerprints, strict=True):
        ds: datasets.Dataset = getattr(task, split)
        text_cols = [c for c in ("text", "text_pair") if c in ds.column_names]
        tok = ds.map(encode, batched=True, remove_columns=text_cols, desc=f"tokenize {task.name} {split}",
                     new_fingerprint=fingerprint)  # fmt: skip
        tok = tok.rename_column("label", "labels")
        if task.is_regression:
            tok = tok.cast_column("labels", Value("float32"))  # MSE loss wants float32 targets
        out[split] = tok
    return out
