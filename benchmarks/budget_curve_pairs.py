"""Today's default search against peft LoRA q,k,v,o budget by budget, paired by seed, from the committed copies of
`benchmarks/budget_curve.yaml` (read through the bench's own grid, so the LoRA rate is the one the bench chose on
validation):

    .venv/bin/python benchmarks/budget_curve_pairs.py

Per budget: the multi-budget search's test accuracy (mean ± std over the seeds it has) and mean PEFT parameters,
LoRA q,k,v,o at the matching rank and its chosen rate, the search minus LoRA per seed in points, and the verdict;
then the same for the searches run with that budget alone (`search_0.5pct` etc., "alone" in the budget column),
at the default rate and with `--learning-rate auto`.
The noise rule: LoRA is ahead (or behind) beyond noise when the mean paired difference is more than two standard
errors of the per-seed differences from zero; otherwise the two are level within noise."""

from __future__ import annotations

import math
import statistics

import yaml

from prunepeft.bench.grid import Grid, finished

BUDGETS = {"2%": "lora_r24", "1%": "lora_r12", "0.5%": "lora_r6", "0.25%": "lora_r3", "0.1%": "lora_r1"}


def verdict(diffs: list[float]) -> str:
    """'level', 'search ahead' or 'LoRA ahead' (beyond two standard errors of the paired differences)."""
    if len(diffs) < 2:
        return "too few seeds"
    mean, error = statistics.mean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
    if abs(mean) <= 2 * error:
        return "level within noise"
    return "search ahead" if mean > 0 else "LoRA ahead"


def _summary(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.4f}{spread} ({len(values)})"


def _row(budget: str, lora: str, grid: Grid, task: str, by_seed: dict) -> str:
    """One table line: the search's (test, params) per seed in ``by_seed`` against ``lora`` at its chosen rate."""
    chosen = grid.chosen(task, lora)
    rate = chosen[1] if chosen else None
    scores, base, diffs, sizes, lora_sizes = [], [], [], [], []
    for seed in grid.seeds:
        mine = by_seed.get(seed)
        other = finished(grid.run(task, lora, seed, rate)) if rate else None
        if mine:
            scores.append(mine[0])
            sizes.append(mine[1])
        if other:
            base.append(other["test"]["test_accuracy"])
            lora_sizes.append(other["params"]["peft"])
        if mine and other:
            diffs.append(100 * (mine[0] - other["test"]["test_accuracy"]))
    rank = grid.config["methods"][lora]["flags"]["lora_rank"]
    return (
        f"| {budget} | {_summary(scores)} | {round(statistics.mean(sizes)) if sizes else 0:,} "
        f"| {_summary(base)} (r{rank}, {rate or '-'}) | {lora_sizes[0] if lora_sizes else 0:,} "
        f"| {', '.join(f'{d:+.1f}' for d in diffs) or '-'} | {verdict(diffs)} |"
    )


def main() -> None:
    with open("benchmarks/budget_curve.yaml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    grid = Grid(config, "budget_curve", "benchmarks/runs/budget_curve", "benchmarks/results/budget_curve")
    (task,) = grid.config["tasks"]
    search = {s: finished(grid.run(task, "prunepeft", s, None)) for s in grid.seeds}
    print("| budget | default search | params | LoRA q,k,v,o (rank, rate) | params | search − LoRA per seed "
          "| verdict |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for budget, lora in BUDGETS.items():
        by_seed = {}
        for seed, run in search.items():
            entry = next((b for b in run["budgets"] if b["budget"] == budget), None) if run else None
            if entry and entry.get("trained"):
                by_seed[seed] = (entry["test"]["test_accuracy"], entry["peft_params"])
        print(_row(budget, lora, grid, task, by_seed))
    for suffix, label in (("", "alone"), ("_auto", "alone, rate auto")):
        for budget, lora in BUDGETS.items():
            method = f"search_{budget.rstrip('%')}pct{suffix}"
            if method not in grid.config["methods"]:
                continue
            runs = {s: finished(grid.run(task, method, s, None)) for s in grid.seeds}
            by_seed = {s: (r["test"]["test_accuracy"], r["params"]["peft"]) for s, r in runs.items() if r}
            print(_row(f"{budget} {label}", lora, grid, task, by_seed))


if __name__ == "__main__":
    main()
