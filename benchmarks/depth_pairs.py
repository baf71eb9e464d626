"""The rows of the depth benchmarks on 6 and 12 layers side by side, paired by seed, from their committed copies
(`benchmarks/results/depth_minilm/runs/` for MiniLM, `benchmarks/results/depth/runs/` for mpnet; whatever seeds
have finished):

    .venv/bin/python benchmarks/depth_pairs.py

Per model and method: test accuracy, mean ± std (seeds); the default search minus the method on each seed both
have, in points, mean ± std, with better / equal / worse for the default (equal: within 0.05 points); and, for the
searches, on how many of those seeds the method kept the default's configuration layer for layer. Then each search
(default, `--learning-rate auto`, and at LoRA's chosen rate) minus LoRA q,k,v,o seed by seed, and their and
LoRA's test accuracy on each seed; on seed 0, LoRA at each rate it was tried at beside the search (at its default
rate); and the rate `--learning-rate auto` chose on each seed, with each probe's validation metric."""

from __future__ import annotations

import os
import statistics

from default_vs_lora_pairs import by_rate, copies, tally

GRIDS = {"MiniLM, 6 layers": "depth_minilm", "mpnet, 12 layers": "depth"}
METHODS = (
    "prunepeft",
    "prunepeft_auto",
    "prunepeft_lora_rate",
    "lora_qkvo",
    "no_blocks",
    "only_weight",
    "random",
    "supernet",
)
SEARCHES = ("prunepeft_auto", "prunepeft_lora_rate", "no_blocks", "only_weight", "random")
ROOT = os.path.join(os.path.dirname(__file__), "results")


def _mean(values: list[float], spec: str = ".4f", sign: str = "", count: bool = True) -> str:
    if not values:
        return "-"
    spread = f" ± {statistics.stdev(values):{spec}}" if len(values) > 1 else ""
    return f"{statistics.mean(values):{sign}{spec}}{spread}" + (f" ({len(values)})" if count else "")


def paired(first: dict[int, dict], second: dict[int, dict]) -> tuple[list[int], str]:
    """First minus second on each seed both have, in test-accuracy points: mean ± std; better / equal / worse for
    the first (equal: within 0.05 points)."""
    seeds = sorted(set(first) & set(second))
    diffs = [100 * (first[s]["test"]["test_accuracy"] - second[s]["test"]["test_accuracy"]) for s in seeds]
    return seeds, f"{_mean(diffs, '.1f', '+', count=False)}; " + " / ".join(map(str, tally(diffs)))


def cell(default: dict[int, dict], runs: dict[int, dict], method: str) -> tuple[str, str]:
    """The method's mean, and the default minus it seed by seed (with how often the same configuration was kept)."""
    mean = _mean([r["test"]["test_accuracy"] for r in runs.values()])
    seeds, diff = paired(default, runs)
    if method == "prunepeft" or not seeds:
        return mean, ""
    if method in SEARCHES:
        same = sum(default[s]["per_layer"] == runs[s]["per_layer"] for s in seeds)
        diff += f"; same kept on {same} of {len(seeds)}"
    return mean, diff


def main() -> None:
    header = "| method | " + " | ".join(f"{m}: test | {m}: default − it, b / e / w" for m in GRIDS) + " |"
    print(header + "\n|---|" + "---|---|" * len(GRIDS))
    runs = {g: {m: copies("convention", m, os.path.join(ROOT, g, "runs")) for m in METHODS} for g in GRIDS.values()}
    for method in METHODS:
        cells = [c for g in GRIDS.values() for c in cell(runs[g]["prunepeft"], runs[g][method], method)]
        print(f"| {method} | " + " | ".join(cells) + " |")
    print(
        "\nEach search minus LoRA q,k,v,o (at the rate chosen on validation), seed by seed, b / e / w for the search:"
    )
    for method in ("prunepeft", "prunepeft_auto", "prunepeft_lora_rate"):
        diffs = [f"{model} {paired(runs[g][method], runs[g]['lora_qkvo'])[1]}" for model, g in GRIDS.items()]
        print(f"- {method}: " + "; ".join(diffs))
    print("\nTest accuracy by seed, in %:")
    for method in ("prunepeft", "prunepeft_auto", "prunepeft_lora_rate", "lora_qkvo"):
        by_seed = [
            f"{model} "
            + ", ".join(f"s{s} {100 * r['test']['test_accuracy']:.2f}" for s, r in sorted(runs[g][method].items()))
            for model, g in GRIDS.items()
        ]
        print(f"- {method}: " + "; ".join(by_seed))
    print(
        "\nSeed 0, test accuracy of LoRA q,k,v,o at each rate it was tried at, and of the default search (rate 1e-3):"
    )
    for model, grid in GRIDS.items():
        folder = os.path.join(ROOT, grid, "runs")
        rates = by_rate("convention", "lora_qkvo", folder).get(0, {})
        tried = ", ".join(
            f"{rate.removeprefix('lr').removesuffix('-')} {r['test']['test_accuracy']:.4f}"
            for rate, r in sorted(rates.items())
        )
        search = copies("convention", "prunepeft", folder).get(0)
        print(
            f"- {model}: LoRA {tried or '-'}; search {search['test']['test_accuracy']:.4f}"
            if search
            else f"- {model}: -"
        )
    print(
        "\nThe rate `--learning-rate auto` chose, by seed (each probe's validation metric; *: the probe lost, by "
        "predicting one class or by a loss that is not finite):"
    )
    for model, grid in GRIDS.items():
        chosen = copies("convention", "prunepeft_auto", os.path.join(ROOT, grid, "runs"))
        print(f"- {model}:" + ("" if chosen else " -"))
        for seed, r in sorted(chosen.items()):
            probes = ", ".join(
                f"{p['learning_rate']:g} {p['metric']:.4f}{'*' if p['lost'] else ''}"
                for p in r["learning_rate"]["probes"]
            )
            print(f"  - seed {seed}: {r['learning_rate']['rate']:g} (probes {probes})")


if __name__ == "__main__":
    main()
