"""Today's default search against peft LoRA, paired by seed, from the committed copies of default_vs_lora.yaml
(whatever seeds have finished; `prunepeft bench --config benchmarks/default_vs_lora.yaml` runs the rest and writes
the full table): `.venv/bin/python benchmarks/default_vs_lora_pairs.py [TASK]` (default: convention).

Prints each method's mean ± std test accuracy over the seeds the search has, and the search minus each LoRA
placement per seed, in points, with better / equal / worse (equal: within 0.05 points)."""

import glob
import json
import os
import statistics
import sys

RUNS = os.path.join(os.path.dirname(__file__), "results", "default_vs_lora", "runs")
METHODS = ("prunepeft", "prunepeft_attention", "lora_qkvo", "lora_qv")


def accuracies(task: str, method: str, runs: str = RUNS) -> dict[int, float]:
    """Seed -> test accuracy of the method's runs at its chosen setting (the one rate it ran every seed at)."""
    return {seed: results["test"]["test_accuracy"] for seed, results in copies(task, method, runs).items()}


def by_rate(task: str, method: str, runs: str = RUNS) -> dict[int, dict[str, dict]]:
    """Seed -> rate ("" for a method run at its default, else "lr0.001-") -> the results of every copy of the method."""
    out: dict[int, dict[str, dict]] = {}
    for path in glob.glob(os.path.join(runs, f"{task}__{method}__*.json")):
        with open(path, encoding="utf-8") as fh:
            results = json.load(fh)
        leaf = os.path.basename(path).rsplit("__", 1)[1].removesuffix(".json")  # "s3" or "lr0.001-s3"
        rate, _, seed = leaf.rpartition("s")
        out.setdefault(int(seed), {})[rate] = results
    return out


def copies(task: str, method: str, runs: str = RUNS) -> dict[int, dict]:
    """Seed -> the results of the method's run at its chosen setting (the one rate it ran every seed at)."""
    out = by_rate(task, method, runs)
    rates = {r for rated in out.values() for r in rated}
    if not rates:
        return {}  # not run yet
    chosen = max(rates, key=lambda r: sum(r in rated for rated in out.values()))  # the rate every seed ran at
    return {seed: rated[chosen] for seed, rated in out.items() if chosen in rated}


def tally(diffs: list[float]) -> tuple[int, int, int]:
    """Better / equal / worse of paired differences in points (equal: within 0.05 points)."""
    better, worse = sum(d > 0.05 for d in diffs), sum(d < -0.05 for d in diffs)
    return better, len(diffs) - better - worse, worse


def main(task: str) -> None:
    runs = {m: accuracies(task, m) for m in METHODS}
    seeds = sorted(runs["prunepeft"])
    print(f"{task}: today's default on seeds {seeds}")
    for method, by_seed in runs.items():
        values = [by_seed[s] for s in seeds if s in by_seed]
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        print(f"  {method:20} {statistics.mean(values):.4f}{spread} ({len(values)} seeds)")
    for lora in ("lora_qkvo", "lora_qv"):
        diffs = [100 * (runs["prunepeft"][s] - runs[lora][s]) for s in seeds]
        better, equal, worse = tally(diffs)
        spread = f" ± {statistics.stdev(diffs):.1f}" if len(diffs) > 1 else ""
        print(
            f"  prunepeft - {lora}: {', '.join(f'{d:+.1f}' for d in diffs)}; mean {statistics.mean(diffs):+.2f}"
            f"{spread} points; {better} better / {equal} equal / {worse} worse"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "convention")
