"""Are the search's warm-up turns independent evidence? Written to benchmarks/results/warmup_turns.md.

    .venv/bin/python benchmarks/warmup_turns.py [--task rotten_tomatoes] [--seeds 0 1 2]

For each seed the warm-up of a default search (MiniLM, budget 1%, the default warm-up share of the training data,
3 turns) runs twice: with *continued* turns (one model trained on, criteria read three times) and with *fresh*
turns (the candidates start again from a new initialisation each turn, on the turn's own share of the data:
the default). For each criterion it reports how much the k nominations of consecutive turns overlap (Jaccard),
and how often the criterion abstains. Continued turns that nominate the same set three times count one
observation three times; fresh turns that still agree show a criterion that sees something stable.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile

from prunepeft.data.tokenizing import tokenize_task
from prunepeft.method import hybrid
from prunepeft.method.backbone import count_params
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space, map_model, unit_sizes
from prunepeft.method.criteria import CRITERIA
from prunepeft.method.pruner import SearchSettings, WarmupVoter, default_k, parse_budget
from prunepeft.runs import find_recipe
from prunepeft.runs.options import JsonlLog, RunOptions, build_model, load_data
from prunepeft.runs.training import TrainSettings

OUT = os.path.join(os.path.dirname(__file__), "results", "warmup_turns.md")


def warmup_log(task_name: str, seed: int, fresh: bool, max_train: int | None) -> list[dict]:
    folder = tempfile.mkdtemp(prefix="warmup-")
    opts = RunOptions(task=task_name, output_dir=folder, max_train_samples=max_train)
    train = TrainSettings(seed=seed, max_length=64)
    settings, space = SearchSettings(), SpaceSettings(space="paper")  # the space of the committed results
    task = load_data(opts, seed)
    loaded = build_model(opts, task, seed)
    base, _ = count_params(loaded.model, loaded.head_names)
    budget = parse_budget(settings.budget, base)
    model_map = map_model(loaded.model)
    specs = build_space(model_map, space, unit_sizes(loaded.model, model_map, space, budget))
    candidates = {c.spec.name: c for c in attach_all(loaded.model, specs)}
    blocks = hybrid.spindle_blocks(model_map.num_layers)
    partition = {n: hybrid.partition_of(c.spec.layer, c.spec.kind, blocks) for n, c in candidates.items()}
    log = JsonlLog(os.path.join(folder, "log.jsonl"))
    voter = functools.partial(WarmupVoter, fresh_turns=fresh)
    original, find_recipe.WarmupVoter = find_recipe.WarmupVoter, voter
    try:
        tokenized = tokenize_task(task, loaded.tokenizer, train.max_length)["train"]
        find_recipe._warmup(
            loaded.model, loaded.tokenizer, task, task, tokenized, settings, train, candidates, partition,
            default_k(len(candidates)), log,
        )  # fmt: skip
    finally:
        find_recipe.WarmupVoter = original
    with open(log.path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def jaccard(a: list[str], b: list[str]) -> float | None:
    if not a and not b:
        return None
    return len(set(a) & set(b)) / len(set(a) | set(b))


def summarise(records: list[dict]) -> dict[str, tuple[list[float], int]]:
    turns = [r for r in records if r["phase"] == "warmup"]
    out = {}
    for c in CRITERIA:
        overlaps = [jaccard(x["nominated"][c], y["nominated"][c]) for x, y in zip(turns, turns[1:], strict=False)]
        out[c] = ([o for o in overlaps if o is not None], sum(not t["nominated"][c] for t in turns))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="rotten_tomatoes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-train-samples", type=int, default=None)
    args = parser.parse_args(argv)
    rows = {}
    for fresh in (False, True):
        per = {c: ([], 0, 0) for c in CRITERIA}
        for seed in args.seeds:
            records = warmup_log(args.task, seed, fresh, args.max_train_samples)
            for c, (overlaps, abstained) in summarise(records).items():
                o, a, n = per[c]
                per[c] = (o + overlaps, a + abstained, n + 3)
        rows[fresh] = per
    lines = [
        "# Warm-up turns: continued against fresh",
        "",
        f"`.venv/bin/python benchmarks/warmup_turns.py --task {args.task} --seeds {' '.join(map(str, args.seeds))}`"
        + (f" `--max-train-samples {args.max_train_samples}`" if args.max_train_samples else ""),
        "",
        f"MiniLM, {args.task}, default search settings (budget 1%, units sized from the budget, 3 turns on the "
        "warm-up share of the training data). Overlap: mean Jaccard index of the k nominations of consecutive "
        "turns (turns where both nominate; 1 = the same set). Abstained: turns in which the criterion could not "
        "tell the candidates apart, of all turns.",
        "",
        "| criterion | overlap, continued turns | overlap, fresh turns | abstained, continued | abstained, fresh |",
        "|---|---|---|---|---|",
    ]
    for c in CRITERIA:
        cells = []
        for fresh in (False, True):
            overlaps, _, _ = rows[fresh][c]
            cells.append(f"{statistics.mean(overlaps):.2f} (n={len(overlaps)})" if overlaps else "–")
        for fresh in (False, True):
            _, abstained, n = rows[fresh][c]
            cells.append(f"{abstained}/{n}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as fh:
        fh.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
