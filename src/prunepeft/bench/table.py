"""The tables and plots of a benchmark: benchmarks/results/NAME.md, NAME_params.png and NAME_search_cost.png.

Runs not finished yet are left out (a row shows how many seeds it has), so the table can be written at any time.

A search with one criterion alone whose search_log.jsonl (in the run's folder, where it still exists) shows that the
criterion abstained in every partition of every round kept the seeded draw's configuration, not the criterion's:
its label says so ("only_zeros (draw: abstained in every round)"), so that no table counts it as a criterion.
"""

from __future__ import annotations

import json
import os
import re
import statistics

from prunepeft.bench.grid import Grid, _metric, finished, points
from prunepeft.data.metrics import LOWER_IS_BETTER
from prunepeft.method.criteria import CRITERIA


def rows(grid: Grid) -> list[dict]:
    """One row per task and method: the chosen setting and the finished runs at it."""
    out = []
    for task in grid.config.get("tasks", ["rotten_tomatoes"]):
        for method in grid.methods:
            source, variant, lr = grid.setting_source(method), None, None
            if source is not None:
                setting = grid.chosen(task, source)
                if setting is None:
                    continue  # the setting is not chosen yet
                variant, lr = setting
            runs = [grid.run(task, method, s, lr, variant) for s in grid.seeds]
            results = [x for x in map(finished, runs) if x is not None]
            by_budget: dict[str | None, list[dict]] = {}  # a multi-budget search: a row per budget
            for one in results:
                for budget, result in points(one):
                    by_budget.setdefault(budget, []).append(result)
            curve = grid.methods[method].get("curve")
            note = draw_note([drew_every_round(r) for r in results])
            for budget, rs in by_budget.items():
                out.append({"task": runs[0]["task"], "method": method if budget is None else f"{method}@{budget}",
                            "lr": lr, "variant": variant, "results": rs, "base": method, "note": note,
                            "curve": curve or (method if budget is not None else None)})  # fmt: skip
    return out


def drew_every_round(results: dict) -> bool | None:
    """Whether a one-criterion search's criterion abstained in every partition of every round (so its removals
    were the seeded draw); None when the run is not such a search or its log is gone."""
    args = results.get("bench", {}).get("args", [])
    if "--criterion" not in args or "--output-dir" not in args:
        return None
    criterion = args[args.index("--criterion") + 1]
    path = os.path.join(args[args.index("--output-dir") + 1], "search_log.jsonl")
    if criterion not in CRITERIA or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    partition = next((r["partition"] for r in records if r.get("phase") == "start"), {})
    rounds = [r for r in records if r.get("phase") == "round"]
    return bool(rounds) and all(
        criterion in r["abstained"].get(partition[m], []) for r in rounds for m in r["scores"]
    )  # fmt: skip


def draw_note(drew: list[bool | None]) -> str:
    """The label's note for a method whose seeds drew (see ``drew_every_round``): '' when none did."""
    draws = sum(d is True for d in drew)
    if not draws:
        return ""
    if draws == len(drew):
        return " (draw: abstained in every round)"
    return f" (draw on {draws} of {len(drew)} seeds: abstained in every round)"


def labels(grid: Grid, rows_or_summaries: list[dict]) -> list[str]:
    """The table's method labels in the config's order (a multi-budget search: one per budget, largest first)."""
    return [label for method in grid.methods
            for label in dict.fromkeys(r["method"] for r in rows_or_summaries if r["base"] == method)]  # fmt: skip


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(row: dict) -> dict:
    results = row["results"]
    test_mean, test_std = _stats([_metric(r, "test") for r in results])
    peft = statistics.mean(r["params"]["peft"] for r in results)  # a search may keep a different size per seed
    head = results[0]["params"]["head"]
    with_head = peft if row["method"] == "full" else peft + head  # full fine-tuning's count has the head in it
    percent = statistics.mean(r["params"]["peft_percent_of_base"] for r in results)
    ratios = [r["time_s"].get("search_to_train_ratio") for r in results]
    search = [r["time_s"].get("search_s") for r in results]
    return {
        **{k: row[k] for k in ("task", "method", "lr", "variant", "base", "curve", "note")},
        "seeds": len(results),
        "metric": results[0]["metric"],
        "test": test_mean,
        "test_std": test_std,
        "validation": statistics.mean(_metric(r, "validation") for r in results),
        "peft": peft,
        "with_head": with_head,
        "percent": percent,
        "search_s": statistics.mean(search) if all(x is not None for x in search) else None,
        "train_s": statistics.mean(r["time_s"]["final_train_s"] for r in results),
        "ratio": statistics.mean(ratios) if all(x is not None for x in ratios) else None,
        "peak_rss": max(r.get("memory_mib", {}).get("peak_rss", 0.0) for r in results),
    }


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _setting(summary: dict) -> str:
    rate = _fmt(summary["lr"], "g")
    return f"{summary['variant']}, {rate}" if summary["variant"] else rate


def markdown(grid: Grid, summaries: list[dict]) -> str:
    lines = [
        f"# Benchmark `{grid.name}`",
        "",
        f"Reproduce: `prunepeft bench --config benchmarks/{grid.name}.yaml` (finished runs are read from "
        f"`benchmarks/results/{grid.name}/runs/` and not rerun). Learning rates are chosen per task and method on "
        f"the validation split (mean over seeds {grid.tune_seeds}), with the variant where a method has some; "
        "test is evaluated once per run and never used "
        "to choose anything. Test and validation are mean ± sample std over seeds. PEFT params exclude the "
        "classification head (trained by every method); `with head` includes it; for a search they are the mean "
        "over seeds, since each seed may keep a different configuration. Times are wall seconds; "
        "search / train is the search's time over the final training's time in the same run.",
        "",
        "| task | method | setting | seeds | test | validation | PEFT params | with head | % of base | search s "
        "| train s | search / train | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s['task']} | {s['method']}{s['note']} | {_setting(s)} | {s['seeds']} | "
            f"{s['test']:.4f} ± {s['test_std']:.4f} | {s['validation']:.4f} | {s['peft']:,.0f} | "
            f"{s['with_head']:,.0f} | {s['percent']:.3f}% | {_fmt(s['search_s'], '.0f')} | {s['train_s']:.0f} | "
            f"{_fmt(s['ratio'], '.2f')} | {s['peak_rss']:.0f} |"
        )
    tasks = sorted({s["task"] for s in summaries})
    lines += ["", "## Summary", "",
              f"Test {summaries[0]['metric'] if summaries else 'metric'}, mean ± std over seeds (n seeds); the "
              "average over tasks once a method has them all.", "",
              f"| method | {' | '.join(tasks)} | average | % of base | search / train |",
              "|---|" + "---|" * (len(tasks) + 3)]  # fmt: skip
    for method in labels(grid, summaries):
        mine = {s["task"]: s for s in summaries if s["method"] == method}
        if not mine:
            continue
        cells = [f"{mine[t]['test']:.4f} ± {mine[t]['test_std']:.4f} ({mine[t]['seeds']})" if t in mine else "-"
                 for t in tasks]  # fmt: skip
        average = _fmt(statistics.mean(s["test"] for s in mine.values()) if len(mine) == len(tasks) else None, ".4f")
        ratio = [s["ratio"] for s in mine.values()]
        ratio_text = _fmt(statistics.mean(ratio) if None not in ratio else None, ".2f")
        percent = statistics.mean(s["percent"] for s in mine.values())
        note = next(iter(mine.values()))["note"]
        lines.append(f"| {method}{note} | {' | '.join(cells)} | {average} | {percent:.3f}% | {ratio_text} |")
    lines += ["", f"![test metric vs PEFT parameters]({grid.name}_params.png)", "",
              f"![search cost per method]({grid.name}_search_cost.png)", ""]  # fmt: skip
    return "\n".join(lines)


def plot(grid: Grid, summaries: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({s["task"] for s in summaries})
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        curves: dict[str, list[dict]] = {}  # multi-budget searches and `curve` groups: a line through their points
        for s in (s for s in summaries if s["task"] == task and s["curve"]):
            curves.setdefault(s["curve"], []).append(s)
        for name, group in curves.items():
            group = sorted(group, key=lambda s: s["with_head"])
            ax.plot([s["with_head"] for s in group], [s["test"] for s in group], "-", alpha=0.6, label=name)
        if curves:
            ax.legend(fontsize=7)
        for s in (s for s in summaries if s["task"] == task):
            ax.errorbar(s["with_head"], s["test"], yerr=s["test_std"], fmt="o", capsize=3)
            ax.annotate(s["method"], (s["with_head"], s["test"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters incl. head (log)")
        ax.set_ylabel(f"test {summaries[0]['metric']} (mean ± std over seeds)")
        ax.set_title(task)
    fig.tight_layout()
    fig.savefig(os.path.join("benchmarks", "results", f"{grid.name}_params.png"), dpi=110)
    plt.close(fig)

    searched = [s for s in summaries if s["ratio"] is not None]
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"{s['method']}\n{s['task']}" for s in searched]
    ax.bar(range(len(searched)), [s["ratio"] for s in searched])
    ax.set_xticks(range(len(searched)), labels, rotation=60, ha="right", fontsize=7)
    ax.axhline(0.30, linestyle="--", color="grey", label="paper: 0.30")
    ax.set_ylabel("search time / final training time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join("benchmarks", "results", f"{grid.name}_search_cost.png"), dpi=110)
    plt.close(fig)


def _by_seed(row: dict) -> dict[int, float]:
    sign = -1.0 if row["results"][0]["metric"] in LOWER_IS_BETTER else 1.0  # higher is better below
    return {r["bench"]["seed"]: sign * _metric(r, "test") for r in row["results"]}


def paired(grid: Grid, table: list[dict]) -> list[str]:
    """The config's `headline` method against every other method: per task, the mean and sample std over seeds
    of (headline's test metric - the other's) on the same seed, i.e. the same training slice and initialisation;
    positive means the headline method is better (for losses too). Then the seeds it wins, ties and loses."""
    headline = grid.config.get("headline")
    if headline not in grid.methods and headline not in labels(grid, table):
        return []
    tasks = sorted({row["task"] for row in table})
    mine = {row["task"]: _by_seed(row) for row in table if row["method"] == headline}
    lines = [f"## {headline} against each method, seed by seed", "",
             f"Test metric of {headline} minus the method's, on the same seed (same training slice); mean ± std "
             f"over the seeds both have finished. Positive: {headline} is better.", "",
             f"| method | {' | '.join(tasks)} | {headline} better / equal / worse |",
             "|---|" + "---|" * (len(tasks) + 1)]  # fmt: skip
    for method in labels(grid, table):
        if method == headline:
            continue
        cells, signs = [], [0, 0, 0]
        for task in tasks:
            ours = mine.get(task, {})
            other = next((_by_seed(row) for row in table if row["task"] == task and row["method"] == method), {})
            diffs = [ours[seed] - value for seed, value in other.items() if seed in ours]
            if not diffs:
                cells.append("-")
                continue
            mean, std = _stats(diffs)
            cells.append(f"{mean:+.4f} ± {std:.4f} (n={len(diffs)})")
            for d in diffs:
                signs[0 if d > 0 else 1 if d == 0 else 2] += 1
        note = next((row["note"] for row in table if row["method"] == method), "")
        if any(signs):
            lines.append(f"| {method}{note} | {' | '.join(cells)} | {signs[0]} / {signs[1]} / {signs[2]} |")
    return [*lines, ""]


def _units(kinds: list[str]) -> str:
    """Units as "lora_qkvo (rank 9)", "lora_ffn (rank 4)" -> "lora_qkvo 9, lora_ffn 4"; no unit -> "-"."""
    return ", ".join(re.sub(r" \((?:rank|bottleneck) (\d+)\)$", r" \1", kind) for kind in kinds) or "-"


def kept(table: list[dict]) -> list[str]:
    """Each search's kept configuration, seed by seed: a column per layer with the units it kept there, so that
    where a method puts its budget can be compared across seeds and against the other methods."""
    searches = [row for row in table if all(r["time_s"].get("search_s") is not None for r in row["results"])]
    layers = max((len(r.get("per_layer") or {}) for row in searches for r in row["results"]), default=0)
    if not layers:
        return []
    lines = ["## What each search kept", "",
             "Seed by seed, the units kept on each layer: kind and rank (LoRA) or bottleneck (adapter); "
             "`-`: nothing on that layer.", "",
             "| task | method | seed | " + " | ".join(f"layer {i}" for i in range(layers)) + " |",
             "|---|---|---|" + "---|" * layers]  # fmt: skip
    for row in searches:
        for r in sorted(row["results"], key=lambda r: r["bench"]["seed"]):
            per_layer = r.get("per_layer") or {}
            cells = [_units(per_layer.get(str(i), [])) for i in range(layers)]
            seed = r["bench"]["seed"]
            lines.append(f"| {row['task']} | {row['method']}{row['note']} | {seed} | {' | '.join(cells)} |")
    return [*lines, ""]


def write_table(grid: Grid) -> str:
    table = rows(grid)
    summaries = [summarise(r) for r in table]
    os.makedirs(os.path.join("benchmarks", "results"), exist_ok=True)
    path = os.path.join("benchmarks", "results", f"{grid.name}.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join([markdown(grid, summaries), *paired(grid, table), *kept(table)]))
    plot(grid, summaries)
    return path


def write_references(grid: Grid, table: list[dict] | None = None) -> list[str]:
    """Into each multi-budget search's run folder (where it still exists): reference.json with the points of the
    `curve` methods (e.g. peft LoRA at several ranks) on the same task and seed, and its report redrawn with
    them. Returns the folders written."""
    from prunepeft.handover.report import REFERENCE, write_report
    from prunepeft.method.recipe import write_json_atomic

    table = rows(grid) if table is None else table
    references: dict[tuple[str, int], list[dict]] = {}
    for row in table:
        if grid.methods[row["base"]].get("curve"):
            for r in row["results"]:
                references.setdefault((row["task"], r["bench"]["seed"]), []).append(
                    {"label": row["method"], "group": row["curve"], "params": r["params"]["peft"],
                     "test": _metric(r, "test")}
                )  # fmt: skip
    written = []
    for row in table:
        if row["method"] == row["base"]:
            continue  # not a budget of a multi-budget search
        for r in row["results"]:
            args = r["bench"]["args"]
            folder = args[args.index("--output-dir") + 1]
            if folder in written or not os.path.exists(os.path.join(folder, "results.json")):
                continue
            points = references.get((row["task"], r["bench"]["seed"]), [])
            write_json_atomic(os.path.join(folder, REFERENCE), {"points": points})
            write_report(folder)
            written.append(folder)
    return written
