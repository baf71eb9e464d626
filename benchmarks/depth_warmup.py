"""What the warm-up decided in each search of the depth benchmarks, from their committed search logs
(`benchmarks/results/depth/logs/` for mpnet's 12 layers, `benchmarks/results/depth_minilm/logs/` for MiniLM's 6):

    .venv/bin/python benchmarks/depth_warmup.py

Per search (method and seed): the criteria that nominated in each warm-up turn (the others abstained: no difference
beyond noise among that partition's candidates), the criteria the warm-up assigned to each partition (depth block x
kind; a partition where nothing nominated gets every criterion), and, over the rounds, how often a partition's
assigned criteria all abstained so that the round fell back to the criteria that did vote. A search with a single
criterion (`--criterion weight`, `random`) has no warm-up and is only named."""

from __future__ import annotations

import glob
import json
import os
import sys

GRIDS = {"depth": "mpnet, 12 layers", "depth_minilm": "MiniLM, 6 layers"}


def read(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _short(criteria: list[str], every: int) -> str:
    return "all" if len(criteria) == every else ", ".join(criteria) or "-"


def describe(records: list[dict]) -> dict:
    """The warm-up's voters per turn, the assignment per partition, and the rounds' fallbacks."""
    start = next(r for r in records if r["phase"] == "start")
    turns = [r for r in records if r["phase"] == "warmup"]
    assignment = next(r for r in records if r["phase"] == "assignment")["assignment"]
    rounds = [r for r in records if r["phase"] == "round"]
    every = max(len(c) for c in assignment.values())
    voted = [sorted(c for c, names in t["nominated"].items() if names) for t in turns]
    partitions = sorted(set(start["partition"].values()))
    fell_back = sum(len(r.get("fell_back", {})) for r in rounds)
    return {
        "layers": len({name.split(".")[0] for name in start["partition"]}),
        "voted": [_short(v, every) for v in voted],
        "assignment": {p: _short(assignment.get(p, []), every) for p in partitions},
        "rounds": len(rounds),
        "fell_back": f"{fell_back} of {len(rounds) * len(partitions)}",
    }


def main(root: str = os.path.join(os.path.dirname(__file__), "results")) -> None:
    for grid, label in GRIDS.items():
        logs = sorted(glob.glob(os.path.join(root, grid, "logs", "*.search_log.jsonl")))
        if not logs:
            continue
        print(f"## {grid} ({label})\n")
        records = {os.path.basename(p).split(".")[0]: read(p) for p in logs}
        single = sorted(run for run, r in records.items() if not any(x["phase"] == "assignment" for x in r))
        described = {run: describe(r) for run, r in records.items() if run not in single}
        partitions = sorted({p for d in described.values() for p in d["assignment"]})
        print("| run | criteria that nominated, turn by turn | " + " | ".join(partitions) + " | rounds fell back |")
        print("|---|---|" + "---|" * len(partitions) + "---|")
        for run, d in described.items():
            turns = "; ".join(d["voted"])
            cells = " | ".join(d["assignment"].get(p, "") for p in partitions)
            print(f"| {run.replace('convention__', '')} | {turns} | {cells} | {d['fell_back']} |")
        if single:  # one criterion: nothing to assign, so no warm-up
            print(f"\nNo warm-up (a single criterion): {', '.join(run.replace('convention__', '') for run in single)}")
        print()


if __name__ == "__main__":
    main(*sys.argv[1:])
