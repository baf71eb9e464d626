"""Users' own data: a .csv/.tsv/.jsonl/.json file, a folder of them per split, or a saved ``DatasetDict``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
from datasets import ClassLabel

from prunepeft.data.splits import holdout, three_way_split
from prunepeft.data.task import DataError, TaskData, make_task, split_sizes

_FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json")
_SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}


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
        splits = three_way_split(frames["all"])
        split_how = (
            f"{stratified}split with fixed split seed 0: test = 10% of all rows, validation = 10% of the "
            "rest, train = the remainder"
        )
    elif "validation" in frames and "test" in frames:
        splits = (frames["train"], frames["validation"], frames["test"])
        split_how = "train/validation/test splits as given"
    else:
        given = "test" if "test" in frames else "validation"
        train, val = holdout(frames["train"])
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
    note = f"{task}: {kind_note}; {split_how} (train/validation/test = {split_sizes(splits)}){drop_note}"
    metric = "pearson" if label_names is None else "accuracy"
    return make_task(f"{kind}:{path.name}", splits, num_labels, label_names, metric, note)


# --------------------------------------------------------------------------------------------- entry point


def looks_like_path(task: str) -> bool:
    return task.lower().endswith(_FILE_SUFFIXES) or any(s in task for s in ("/", "\\")) or task.startswith(("~", "."))


_USER_TASKS: dict[tuple, TaskData] = {}


def load_user_file(
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
