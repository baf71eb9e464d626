"""One multi-budget search against a search per budget and against peft LoRA, budget by budget: issue 14's curve.

    .venv/bin/python benchmarks/curve_compare.py

Reads the committed copies of `benchmarks/curve.yaml` through the bench's own grid (the same runs, and the same
rate choice, as `prunepeft bench`) and prints, per budget: test accuracy (mean ± std over the seeds each has) and
mean PEFT parameters of the multi-budget search's configuration, of the single-budget search, and of peft LoRA q,v
at the matching rank (at the rate the bench chose on validation); the multi-budget minus single-budget test metric,
paired by seed; and how alike the two searches' choices are: the Jaccard overlap of their kept (layer, kind) sets,
per seed. Unit sizes differ between them (the single-budget search sizes its units for its own budget), so the
overlap compares where modules went, not their sizes. Then, per seed, the search seconds of the multi-budget
search against the four single-budget searches together (`time_s.search_s`).
"""

from __future__ import annotations

import statistics

import yaml

from prunepeft.bench.grid import Grid, finished

BUDGETS = {"2%": ("single_2pct", "lora_r48"), "1%": ("single_1pct", "lora_r24"),
           "0.5%": ("single_0.5pct", "lora_r12"), "0.25%": ("single_0.25pct", "lora_r6")}  # fmt: skip


def _kept(per_layer: dict) -> set[tuple[str, str]]:
    return {(layer, unit.split()[0]) for layer, units in per_layer.items() for unit in units}


def _summary(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread} ({len(values)})"


def _count(values: list[int]) -> str:
    return f"{round(statistics.mean(values)):,}" if values else "-"


def main() -> None:
    with open("benchmarks/curve.yaml", encoding="utf-8") as fh:
        grid = Grid(yaml.safe_load(fh), "curve", "benchmarks/runs/curve", "benchmarks/results/curve")
    (task,) = grid.config["tasks"]

    def result(method: str, seed: int, lr: float | None = None) -> dict | None:
        return finished(grid.run(task, method, seed, lr))

    multi = {s: result("prunepeft", s) for s in grid.seeds}
    print("| budget | multi-budget search | params | single-budget search | params | multi − single, paired |"
          " kept-set overlap per seed | LoRA q,v (rate) | params |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for budget, (single, lora) in BUDGETS.items():
        multi_t, multi_p, single_t, single_p, diffs, overlaps = [], [], [], [], [], []
        for seed in grid.seeds:
            run = multi[seed]
            entry = next((b for b in run["budgets"] if b["budget"] == budget), None) if run else None
            alone = result(single, seed)
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
        chosen = grid.chosen(task, lora)
        rate = chosen[1] if chosen else None
        loras = [r for s in grid.seeds if rate and (r := result(lora, s, rate))]
        lora_t, lora_p = [r["test"]["test_accuracy"] for r in loras], [r["params"]["peft"] for r in loras]
        diff = (f"{100 * statistics.mean(diffs):+.1f} ± {100 * statistics.stdev(diffs):.1f} points"
                if len(diffs) > 1 else "-")  # fmt: skip
        print(
            f"| {budget} | {_summary(multi_t)} | {_count(multi_p)} | {_summary(single_t)} | {_count(single_p)} "
            f"| {diff} | {', '.join(overlaps) or '-'} | {_summary(lora_t)} ({rate or '-'}) | {_count(lora_p)} |"
        )
    print("\nsearch seconds per seed: multi-budget / the four single-budget searches together = ratio")
    for seed in grid.seeds:
        singles = [result(single, seed) for single, _ in BUDGETS.values()]
        if multi[seed] and all(singles):
            one, four = multi[seed]["time_s"]["search_s"], sum(r["time_s"]["search_s"] for r in singles)
            print(f"seed {seed}: {one:.0f} s / {four:.0f} s = {one / four:.2f}")


if __name__ == "__main__":
    main()
