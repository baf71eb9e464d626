"""One multi-budget search against a search per budget and against peft LoRA, budget by budget: issue 14's curve.

    .venv/bin/python benchmarks/curve_compare.py

Reads the committed copies of `benchmarks/curve.yaml` (`benchmarks/results/curve/runs/`) and prints, per budget:
test accuracy (mean ± std over the seeds each has) and mean PEFT parameters of the multi-budget search's
configuration, of the single-budget search, and of peft LoRA q,v at the matching rank (at the rate the bench chose
on seed 0's validation, read from `benchmarks/results/curve.md`); the multi-budget minus single-budget test metric,
paired by seed; and how alike the two searches' choices are: the Jaccard overlap of their kept (layer, kind) sets,
per seed. Unit sizes differ between them (the single-budget search sizes its units for its own budget), so the
overlap compares where modules went, not their sizes.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

RUNS = Path("benchmarks/results/curve/runs")
TABLE = Path("benchmarks/results/curve.md")
BUDGETS = {"2%": ("single_2pct", "lora_r48"), "1%": ("single_1pct", "lora_r24"),
           "0.5%": ("single_0.5pct", "lora_r12"), "0.25%": ("single_0.25pct", "lora_r6")}  # fmt: skip


def _load(name: str) -> dict | None:
    path = RUNS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _kept(per_layer: dict) -> set[tuple[str, str]]:
    return {(layer, unit.split()[0]) for layer, units in per_layer.items() for unit in units}


def _chosen_rate(method: str) -> str | None:
    """The rate the bench chose for `method` (the `setting` column of its row in curve.md)."""
    if not TABLE.exists():
        return None
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[2] == method and re.fullmatch(r"[0-9.e-]+", cells[3]):
            return cells[3]
    return None


def _summary(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread} ({len(values)})"


def _count(values: list[int]) -> str:
    return f"{round(statistics.mean(values)):,}" if values else "-"


def main() -> None:
    print("| budget | multi-budget search | params | single-budget search | params | multi − single, paired |"
          " kept-set overlap per seed | LoRA q,v (rate) | params |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for budget, (single, lora) in BUDGETS.items():
        multi_t, multi_p, single_t, single_p, diffs, overlaps = [], [], [], [], [], []
        for seed in (0, 1, 2):
            run = _load(f"rotten_tomatoes__prunepeft__s{seed}")
            entry = next((b for b in run["budgets"] if b["budget"] == budget), None) if run else None
            alone = _load(f"rotten_tomatoes__{single}__s{seed}")
            if entry and entry.get("trained"):
                multi_t.append(entry["test"]["test_accuracy"])
                multi_p.append(entry["peft_params"])
            if alone:
                single_t.append(alone["test"]["test_accuracy"])
                single_p.append(alone["params"]["peft"])
            if entry and entry.get("trained") and alone:
                diffs.append(entry["test"]["test_accuracy"] - alone["test"]["test_accuracy"])
                a, b = _kept(entry["per_layer"]), _kept(alone["per_layer"])
                overlaps.append(f"{len(a & b) / len(a | b):.2f}")
        rate = _chosen_rate(lora)
        lora_t = [r["test"]["test_accuracy"] for s in (0, 1, 2)
                  if rate and (r := _load(f"rotten_tomatoes__{lora}__lr{rate}-s{s}"))]  # fmt: skip
        lora_p = [r["params"]["peft"] for s in (0, 1, 2)
                  if rate and (r := _load(f"rotten_tomatoes__{lora}__lr{rate}-s{s}"))]  # fmt: skip
        diff = (f"{100 * statistics.mean(diffs):+.1f} ± {100 * statistics.stdev(diffs):.1f} points"
                if len(diffs) > 1 else "-")  # fmt: skip
        print(
            f"| {budget} | {_summary(multi_t)} | {_count(multi_p)} | {_summary(single_t)} | {_count(single_p)} "
            f"| {diff} | {', '.join(overlaps) or '-'} | {_summary(lora_t)} ({rate or '-'}) | {_count(lora_p)} |"
        )


if __name__ == "__main__":
    main()
