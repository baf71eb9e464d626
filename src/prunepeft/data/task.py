"""One task in the common schema (:class:`TaskData`) and how its splits become Datasets.

Every task's splits hold the columns ``text`` (optionally ``text_pair``) and ``label`` (int class id, or float
for regression), whatever the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import pandas as pd
from datasets import ClassLabel, Features, Value

SPLIT_SEED = 0  # fixed on purpose: every run, whatever its seed, sees the same split
TEST_FRACTION = 0.1
VALIDATION_FRACTION = 0.1


class DataError(ValueError):
    """Bad input data or task name; the message names the problem and how to fix it."""


@dataclass
class TaskData:
    """One task, split three ways, in the common column schema (see the module docstring)."""

    name: str
    train: datasets.Dataset
    validation: datasets.Dataset
    test: datasets.Dataset
    num_labels: int
    label_names: list[str] | None
    metric: str
    split_note: str

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def has_pair(self) -> bool:
        return "text_pair" in self.train.column_names


def _to_dataset(df: pd.DataFrame, label_feature: ClassLabel | Value) -> datasets.Dataset:
    """In-memory Dataset in the common schema (in memory: later .map calls write no cache files)."""
    cols: dict[str, list[Any]] = {"text": df["text"].tolist()}
    feats: dict[str, Any] = {"text": Value("string")}
    if "text_pair" in df.columns:
        cols["text_pair"] = df["text_pair"].tolist()
        feats["text_pair"] = Value("string")
    cols["label"] = df["label"].tolist()
    feats["label"] = label_feature
    return datasets.Dataset.from_dict(cols, features=Features(feats))


def _label_feature(num_labels: int, label_names: Sequence[str] | None) -> ClassLabel | Value:
    if num_labels == 1:
        return Value("float64")
    return ClassLabel(names=list(label_names) if label_names else [str(i) for i in range(num_labels)])


def make_task(
    name: str,
    splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    num_labels: int,
    label_names: Sequence[str] | None,
    metric: str,
    split_note: str,
) -> TaskData:
    feature = _label_feature(num_labels, label_names)
    train, val, test = (_to_dataset(df, feature) for df in splits)
    return TaskData(
        name=name,
        train=train,
        validation=val,
        test=test,
        num_labels=num_labels,
        label_names=list(label_names) if label_names is not None else None,
        metric=metric,
        split_note=split_note,
    )


def split_sizes(splits: tuple[pd.DataFrame, ...]) -> str:
    return "/".join(f"{len(s):,}" for s in splits)
