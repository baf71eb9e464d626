"""Stratified splits and subsets, the same for every run so that seeds and methods are comparable.

* Built-in tasks and users' files without given splits: stratified by label with the fixed split seed 0
  (``SPLIT_SEED``), independent of the run seed: test = 10% of all rows, validation = 10% of the rest, train = the
  remainder. (``convention`` is split by speaker instead: see ``data.convention``.)
* GLUE: the GLUE test labels are hidden, so our test split is the GLUE validation split (``validation_matched`` for
  MNLI), our validation split a stratified 10% (at most 2,000 rows) hold-out of GLUE train, and train the rest.
* Users' data with given splits: used as given; a missing validation split is carved from train as for GLUE, and a
  given validation split without a test split becomes the test split.
"""

from __future__ import annotations

import math
import numbers

import datasets
import numpy as np
import pandas as pd
from datasets import Value

from prunepeft.data.task import SPLIT_SEED, TEST_FRACTION, VALIDATION_FRACTION, DataError

# --------------------------------------------------------------------------------------------- splitting


def _take_counts(counts: np.ndarray, k: int, keep_one: bool) -> np.ndarray:
    """How many rows to take from each class so that k rows keep the class proportions.

    Largest-remainder allocation, then every class gets at least one row if k allows it.
    With keep_one, one row of every class is left behind where k allows (so train keeps every class).
    """
    total = int(counts.sum())
    cap = counts - 1 if keep_one else counts.copy()
    cap = np.maximum(cap, 0)
    exact = k * counts / total
    take = np.minimum(np.floor(exact).astype(int), cap)
    if k >= len(counts):
        take = np.where((take == 0) & (cap > 0), 1, take)
    order = np.argsort(-(exact - take), kind="stable")  # biggest shortfall first
    # tiny data: if leaving one row per class behind cannot fill k, fill k anyway (a split must not be empty)
    for limit in (cap, counts):
        while take.sum() < k and (take < limit).any():
            for c in order:
                if take.sum() >= k:
                    break
                if take[c] < limit[c]:
                    take[c] += 1
    surplus_order = np.argsort(-(take - exact), kind="stable")  # biggest excess first
    while take.sum() > k:
        for c in surplus_order:
            if take.sum() <= k:
                break
            if take[c] > 1:
                take[c] -= 1
    return take


def pick_stratified(labels: np.ndarray, k: int, seed: int, keep_one: bool = False) -> np.ndarray:
    """Sorted indices of k rows: stratified on int labels, uniform for float (regression) labels."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    if k >= n:
        return np.arange(n)
    if labels.dtype.kind == "f":
        return np.sort(rng.permutation(n)[:k])
    classes, counts = np.unique(labels, return_counts=True)
    take = _take_counts(counts, k, keep_one)
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(chosen))


def _count(n: int, fraction: float) -> int:
    return max(1, math.floor(n * fraction + 0.5))


def _split_off(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held_out) indices: a stratified hold-out of k rows that leaves every class in rest."""
    held = pick_stratified(labels, k, SPLIT_SEED, keep_one=labels.dtype.kind != "f")
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), held


def three_way_split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """test = 10% of all rows, validation = 10% of the rest, train = remainder; stratified, seed 0."""
    if len(df) < 3:
        raise DataError(
            f"Only {len(df)} usable row(s) left, too few to make train/validation/test splits. Provide more "
            "labelled rows (hundreds at least for meaningful results)."
        )
    labels = df["label"].to_numpy()
    rest, test = _split_off(labels, _count(len(df), TEST_FRACTION))
    rest_df = df.iloc[rest].reset_index(drop=True)
    train, val = _split_off(rest_df["label"].to_numpy(), _count(len(rest_df), VALIDATION_FRACTION))
    return (
        rest_df.iloc[train].reset_index(drop=True),
        rest_df.iloc[val].reset_index(drop=True),
        df.iloc[test].reset_index(drop=True),
    )


def holdout(df: pd.DataFrame, max_rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation): a stratified 10% (capped at max_rows) hold-out of df, seed 0."""
    k = _count(len(df), VALIDATION_FRACTION)
    if max_rows is not None:
        k = min(k, max_rows)
    if len(df) < 2:
        raise DataError(f"The train split has only {len(df)} usable row(s); add more labelled rows.")
    rest, held = _split_off(df["label"].to_numpy(), k)
    return df.iloc[rest].reset_index(drop=True), df.iloc[held].reset_index(drop=True)


def stratified_subset(ds: datasets.Dataset, n: int | float, seed: int) -> datasets.Dataset:
    """A deterministic subset of n rows (int) or of a fraction n in (0, 1] (float) of ds.

    Stratified on "label" for classification (class proportions kept, every class present if n
    allows), uniform for regression (float labels). Returns ds itself when n covers all rows.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Real):
        raise DataError(f"Subset size must be an int count or a float fraction in (0, 1], got {n!r}.")
    if not isinstance(n, numbers.Integral):
        if not 0.0 < n <= 1.0:
            raise DataError(f"Subset fraction must be in (0, 1], got {n}; pass an int for a row count.")
        k = max(1, math.floor(n * len(ds) + 0.5))
    else:
        if n < 1:
            raise DataError(f"Subset size must be at least 1 row, got {n}.")
        k = int(n)
    if k >= len(ds):
        return ds
    # "labels" too, so tokenized splits (see ``data.tokenizing.tokenize_task``) can be subset the same way
    column = next((c for c in ("label", "labels") if c in ds.column_names), None)
    if column is None:  # unlabelled rows (instruction tuning): a uniform subset
        rng = np.random.default_rng(seed)
        return ds.select(sorted(rng.choice(len(ds), size=k, replace=False).tolist()))
    feature = ds.features[column]
    is_float = isinstance(feature, Value) and feature.dtype.startswith("float")
    labels = np.asarray(ds[column], dtype=np.float64 if is_float else np.int64)
    return ds.select(pick_stratified(labels, k, seed).tolist())
