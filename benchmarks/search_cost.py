"""The search against its own final training, end to end, seed by seed: issue 14's cost targets.

    .venv/bin/python benchmarks/search_cost.py [TASK]

Reads the committed copies of `benchmarks/default_vs_lora.yaml` (`benchmarks/results/default_vs_lora/runs/`;
`before_fallback/`: the runs of commit f05c924, before the hybrid's fallback, with the uncapped and low-fidelity
searches; `former_default/`: the runs made while rounds were capped at 16 by default) for TASK (default
rotten_tomatoes) and prints one row per search run: its round cap, seed, search and final-training seconds (one
process each, so the ratio is measured under one load), the ratio, PEFT parameters kept, and validation / test
accuracy; then the mean test accuracy per setting over the seeds it has.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path("benchmarks/results/default_vs_lora")


def _flag(args: list[str], name: str, default: str) -> str:
    return args[args.index(name) + 1] if name in args else default


def _setting(run: dict, folder: str) -> str:
    args = run["bench"]["args"]
    cap = _flag(args, "--round-max-steps", "16 (the former default)" if folder == "former_default" else "32")
    cap = "none" if cap == "0" else cap
    lowfi = ", low fidelity 0.1" if "--low-fidelity" in args else ""
    space = f", space {_flag(args, '--space', 'paper')}"  # copies without --space ran before 0.2.0
    return f"round cap {cap}{space}{lowfi}" + (", before the fallback" if folder == "before_fallback" else "")


def main(task: str = "rotten_tomatoes") -> None:
    rows, tests = [], {}
    for folder in ("runs", "before_fallback", "former_default"):
        for path in sorted((RESULTS / folder).glob(f"{task}__prunepeft*.json")):
            run = json.loads(path.read_text())
            t, setting = run["time_s"], _setting(run, folder)
            test, val = run["test"]["test_accuracy"], run["validation"]["eval_accuracy"]
            tests.setdefault(setting, []).append(test)
            rows.append(
                f"| {setting} | {run['bench']['seed']} | {t['search_s']:.0f} | {t['final_train_s']:.0f} | "
                f"{t['search_to_train_ratio']:.3f} | {run['params']['peft']:,} | {val:.4f} | {test:.4f} | "
                f"{folder}/{path.name} |"
            )
    print("| search | seed | search s | final training s | search / final | PEFT params | validation | test | copy |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| search | seeds | mean test accuracy |\n|---|---|---|")
    for setting, values in tests.items():
        print(f"| {setting} | {len(values)} | {statistics.mean(values):.4f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
