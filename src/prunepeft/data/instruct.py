"""Instruction tuning of causal language models: prompt/response pairs from a JSON Lines file.

The loss counts the response tokens only (prompt positions get label -100). When the tokenizer has a chat
template, the prompt is one user turn rendered with it (generation prompt added); otherwise the prompt is
followed by a newline. Evaluation: validation loss and perplexity; with an answer column, exact match of the
greedy generation (its first line, stripped) against the answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import numpy as np
import pandas as pd
import torch

from prunepeft.common.interrupts import map_fingerprints
from prunepeft.data.task import SPLIT_SEED, DataError


@dataclass
class InstructionTask:
    name: str
    train: datasets.Dataset  # columns: prompt, response (and answer)
    validation: datasets.Dataset
    test: datasets.Dataset
    split_note: str
    metric: str = "loss"
    num_labels: int = 0
    causal_lm: bool = True
    label_names: list[str] | None = None

    @property
    def is_regression(self) -> bool:
        return False

    @property
    def has_answer(self) -> bool:
        return "answer" in self.train.column_names


def is_instruction_file(path: str, prompt_column: str | None) -> bool:
    """A .jsonl task is instruction tuning when --prompt-column is given, or it has prompt and response columns
    and no label column."""
    if prompt_column:
        return True
    if not path.endswith((".jsonl", ".json")):
        return False
    try:
        head = pd.read_json(path, lines=True, nrows=5)
    except ValueError:
        return False
    return {"prompt", "response"} <= set(head.columns) and "label" not in head.columns


def load_instructions(
    path: str, prompt_column: str | None = None, response_column: str | None = None, answer_column: str | None = None
) -> InstructionTask:
    prompt_column, response_column = prompt_column or "prompt", response_column or "response"
    try:
        frame = pd.read_json(path, lines=True)
    except (ValueError, FileNotFoundError) as err:
        raise DataError(f"could not read {path!r} as JSON Lines ({err}); give one JSON object per line.") from err
    missing = [c for c in (prompt_column, response_column, answer_column) if c and c not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: no column {missing} (columns: {list(frame.columns)}). Set --prompt-column, --response-column "
            "or --answer-column."
        )
    columns = {
        prompt_column: "prompt",
        response_column: "response",
        **({answer_column: "answer"} if answer_column else {}),
    }
    frame = frame[list(columns)].rename(columns=columns).dropna()
    frame = frame[(frame["prompt"].astype(str).str.strip() != "") & (frame["response"].astype(str).str.strip() != "")]
    if len(frame) < 10:
        raise DataError(f"{path}: {len(frame)} usable prompt/response pairs; at least 10 are needed to split.")
    frame = frame.astype(str).reset_index(drop=True)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(frame))
    n_test = max(1, round(0.1 * len(frame)))
    n_val = max(1, round(0.1 * (len(frame) - n_test)))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    split = lambda idx: datasets.Dataset.from_pandas(frame.iloc[sorted(idx)], preserve_index=False)  # noqa: E731
    note = (
        f"random split, seed {SPLIT_SEED}: test 10%, validation 10% of the rest ({len(train)}/{len(val)}/{len(test)})"
    )
    return InstructionTask(name=f"jsonl:{path}", train=split(train), validation=split(val), test=split(test),
                           split_note=note)  # fmt: skip


def prompt_text(tokenizer, prompt: str) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)  # fmt: skip
    return prompt + "\n"


def tokenize_instructions(task: InstructionTask, tokenizer, max_length: int) -> dict[str, datasets.Dataset]:
    """input_ids / attention_mask / labels with the prompt masked out (-100)."""
    eos = tokenizer.eos_token or ""

    def encode(row):
        prompt = prompt_text(tokenizer, row["prompt"])
        full = tokenizer(prompt + row["response"] + eos, truncation=True, max_length=max_length)
        n_prompt = len(tokenizer(prompt, truncation=True, max_length=max_length)["input_ids"])
        labels = [-100] * n_prompt + full["input_ids"][n_prompt:]
        # causal LMs take no token_type_ids (a BERT-style tokenizer would add them)
        return {"input_ids": full["input_ids"], "attention_mask": full["attention_mask"], "labels": labels}

    out = {}
    splits = ("train", "validation", "test")
    # computed by us, not by datasets, where a Ctrl-C would be lost (see common.interrupts)
    fingerprints = map_fingerprints(encode, [getattr(task, split) for split in splits])
    for split, fingerprint in zip(splits, fingerprints, strict=True):
        ds = getattr(task, split)
        out[split] = ds.map(encode, remove_columns=ds.column_names, desc=f"tokenize {split}",
                            new_fingerprint=fingerprint)  # fmt: skip
    return out


def exact_match(model, tokenizer, task: InstructionTask, max_new_tokens: int = 32) -> float | None:
    """Greedy generation on the test prompts; the share whose first generated line equals the answer."""
    if not task.has_answer:
        return None
    model.eval()
    device = next(model.parameters()).device
    hits = 0
    with torch.no_grad():
        for row in task.test:
            encoded = tokenizer(prompt_text(tokenizer, row["prompt"]), return_tensors="pt")
            ids = {k: encoded[k].to(device) for k in ("input_ids", "attention_mask")}  # no token_type_ids
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
            lines = text.strip().splitlines()
            hits += int((lines[0].strip() if lines else "") == row["answer"].strip())
    return hits / len(task.test)


def perplexity(loss: float | None) -> float | None:
    return math.exp(loss) if loss is not None and loss < 50 else None
