"""GLUE tasks, from the Hub's ``nyu-mll/glue`` or a local copy (``--data-dir``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from prunepeft.data.splits import holdout
from prunepeft.data.task import DataError, TaskData, make_task, split_sizes

GLUE_VALIDATION_MAX = 2000


@dataclass(frozen=True)
class GlueSpec:
    """Columns, labels and metric of one GLUE task in the ``nyu-mll/glue`` schema."""

    text: str
    pair: str | None
    metric: str
    num_labels: int
    label_names: tuple[str, ...] | None
    eval_split: str = "validation"  # the GLUE split that becomes our test split


GLUE_TASKS: dict[str, GlueSpec] = {
    "sst2": GlueSpec("sentence", None, "accuracy", 2, ("negative", "positive")),
    "cola": GlueSpec("sentence", None, "matthews_correlation", 2, ("unacceptable", "acceptable")),
    "mrpc": GlueSpec("sentence1", "sentence2", "f1", 2, ("not_equivalent", "equivalent")),
    "qqp": GlueSpec("question1", "question2", "f1", 2, ("not_duplicate", "duplicate")),
    "stsb": GlueSpec("sentence1", "sentence2", "pearson", 1, None),
    "mnli": GlueSpec(
        "premise",
        "hypothesis",
        "accuracy",
        3,
        ("entailment", "neutral", "contradiction"),
        "validation_matched",
    ),
    "qnli": GlueSpec("question", "sentence", "accuracy", 2, ("entailment", "not_entailment")),
    "rte": GlueSpec("sentence1", "sentence2", "accuracy", 2, ("entailment", "not_entailment")),
}


def _read_glue(task: str, glue_source: str | None) -> tuple[datasets.DatasetDict, str]:
    if glue_source is None:
        try:
            dd = datasets.load_dataset("nyu-mll/glue", task)
        except Exception as e:  # network, auth and hub errors all mean the same thing to the user
            raise DataError(
                f"Could not load GLUE '{task}' from the Hugging Face Hub (nyu-mll/glue): the hub could not "
                f"be reached or refused the request ({type(e).__name__}: {e}). Save a copy where the hub is "
                f"reachable (datasets.load_dataset('nyu-mll/glue', '{task}').save_to_disk(DIR)) and point to "
                "it with --data-dir DIR (glue_source= in Python), or use a built-in task such as "
                "rotten_tomatoes."
            ) from e
        return dd, "hub nyu-mll/glue"
    src = Path(glue_source).expanduser()
    if not src.exists():
        raise DataError(
            f"The GLUE data folder {src} does not exist. Point --data-dir (glue_source=) to a folder written "
            f"by datasets.load_dataset('nyu-mll/glue', '{task}').save_to_disk(...), or to a folder holding "
            f"one such folder per task (e.g. {src / task})."
        )
    folder = src / task if (src / task).is_dir() else src  # accept DIR/<task>/ as well as DIR itself
    try:
        dd = datasets.load_from_disk(str(folder))
    except Exception as e:
        raise DataError(
            f"Could not read a saved GLUE '{task}' DatasetDict from {folder} ({type(e).__name__}: {e}). "
            f"Write it with datasets.load_dataset('nyu-mll/glue', '{task}').save_to_disk('{folder}')."
        ) from e
    if not isinstance(dd, datasets.DatasetDict):
        raise DataError(
            f"{folder} holds a single Dataset, but GLUE '{task}' needs a DatasetDict with train and "
            "validation splits as saved from datasets.load_dataset('nyu-mll/glue', ...)."
        )
    return dd, f"local copy {folder}"


def load_glue(task: str, glue_source: str | None) -> TaskData:
    spec = GLUE_TASKS[task]
    dd, origin = _read_glue(task, glue_source)
    eval_split = spec.eval_split if spec.eval_split in dd else "validation"
    missing = [s for s in ("train", eval_split) if s not in dd]
    if missing:
        raise DataError(
            f"GLUE '{task}' data from {origin} lacks the split(s) {missing}; it has {list(dd.keys())}. Save "
            f"the full DatasetDict of datasets.load_dataset('nyu-mll/glue', '{task}')."
        )
    cols = [spec.text] + ([spec.pair] if spec.pair else []) + ["label"]
    frames = []
    for split in ("train", eval_split):
        ds = dd[split]
        absent = [c for c in cols if c not in ds.column_names]
        if absent:
            raise DataError(
                f"GLUE '{task}' split '{split}' from {origin} lacks the column(s) {absent}; it has "
                f"{ds.column_names}. GLUE '{task}' needs the hub schema {cols}."
            )
        df = ds.select_columns(cols).to_pandas()
        df = df.rename(columns={spec.text: "text", **({spec.pair: "text_pair"} if spec.pair else {})})
        if spec.num_labels == 1:
            df["label"] = df["label"].astype(np.float64)
        else:
            df = df[df["label"] >= 0]  # -1 marks a hidden label
            df["label"] = df["label"].astype(np.int64)
        for c in ("text", "text_pair"):
            if c in df.columns:
                df[c] = df[c].fillna("").astype(str)
        frames.append(df.reset_index(drop=True))
    train, val = holdout(frames[0], GLUE_VALIDATION_MAX)
    splits = (train, val, frames[1])
    note = (
        f"GLUE {task} ({origin}): test = GLUE {eval_split} split (GLUE test labels are hidden); validation = "
        f"{'stratified ' if spec.num_labels > 1 else 'random '}10% (at most {GLUE_VALIDATION_MAX:,} rows) "
        "hold-out of GLUE train with fixed split seed 0; train = the rest (train/validation/test = "
        f"{split_sizes(splits)})"
    )
    return make_task(task, splits, spec.num_labels, spec.label_names, spec.metric, note)
