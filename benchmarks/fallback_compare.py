"""The default search before and after the hybrid's fallback, paired by seed (issue 13).

    .venv/bin/python benchmarks/fallback_compare.py

Before commit f7fe7d3 a partition whose assigned criteria all abstained in a round got Θ = ½ for all its
candidates (so removals among them were seeded draws); since, it is scored by every criterion that does not
abstain there. The copies of the same command lines from both codes are committed: the former in
`benchmarks/results/{default_vs_lora,curve}/before_fallback/`, the current in `.../runs/`. This prints, per copy
present in both, the test metric before and after and what each kept (`per_layer`), then the mean paired
difference per benchmark and task; a multi-budget search gives a row per trained budget.
"""

from __future__ import annotations

import glob
import json
import os
import statistics

from prunepeft.bench.grid import points

BENCHES = ("default_vs_lora", "curve")


def _metric(results: dict) -> float:
    return next(v for k, v in results["test"].items() if k.startswith("test_") and k.endswith(results["metric"]))


def _kept(results: dict, budget: str | None) -> str:
    """Kept units by kind (a multi-budget search's per budget)."""
    entry = next((b for b in results.get("budgets", []) if b["budget"] == budget), results)
    counts: dict[str, int] = {}
    for units in entry.get("per_layer", {}).values():
        for unit in units:
            kind = unit.split()[0]
            counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "-"


def main() -> None:
    diffs: dict[tuple[str, str, str], list[float]] = {}
    print("| bench | run | budget | before | after | after − before | kept before | kept after |")
    print("|---|---|---|---|---|---|---|---|")
    for bench in BENCHES:
        for before_path in sorted(glob.glob(f"benchmarks/results/{bench}/before_fallback/*.json")):
            name = os.path.basename(before_path)[: -len(".json")]
            after_path = f"benchmarks/results/{bench}/runs/{name}.json"
            paper = after_path.replace("__prunepeft__", "__prunepeft_paper__")  # since 0.2.0 the former default's name
            after_path = paper if os.path.exists(paper) else after_path
            if not os.path.exists(after_path):
                continue
            with open(before_path, encoding="utf-8") as fh, open(after_path, encoding="utf-8") as gh:
                before, after = json.load(fh), json.load(gh)
            if before["bench"]["args"][:4] != after["bench"]["args"][:4]:
                raise SystemExit(f"{name}: the two copies are not the same command")
            after_points = dict(points(after))
            for budget, b in points(before):
                a = after_points.get(budget)
                if a is None:
                    continue
                diff = _metric(a) - _metric(b)
                diffs.setdefault((bench, after["task"], budget or "-"), []).append(diff)
                print(f"| {bench} | {name} | {budget or '-'} | {_metric(b):.4f} | {_metric(a):.4f} | "
                      f"{100 * diff:+.1f} | {_kept(before, budget)} | {_kept(after, budget)} |")  # fmt: skip
    print()
    print("| bench | task | budget | runs | after − before, mean ± std (points) |")
    print("|---|---|---|---|---|")
    for (bench, task, budget), values in diffs.items():
        spread = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
        print(f"| {bench} | {task} | {budget} | {len(values)} | {100 * statistics.mean(values):+.1f}{spread} |")


if __name__ == "__main__":
    main()
