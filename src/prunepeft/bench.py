"""`prunepeft bench --config benchmarks/NAME.yaml`: a grid of methods x tasks x seeds (x learning rates),
one run per folder (skipped when its results.json exists, so a benchmark resumes across sessions), then a
Markdown table and plots in benchmarks/results/.

Config keys: name, model, tasks, seeds, common (flags for every run), methods: a mapping
method name -> {command: search|train, flags: {...}, learning_rates: [...]}. The learning rate of each
method is chosen per task by the mean validation metric over seeds, never on test.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

from prunepeft.config import ConfigError, load_yaml, require

KEYS = {"name", "model", "tasks", "seeds", "common", "methods", "output"}


def _flags(mapping: dict) -> list[str]:
    out = []
    for key, value in mapping.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            out.append(flag)
        elif value not in (False, None):
            out += [flag, str(value)]
    return out


def plan(config: dict, root: str) -> list[dict]:
    """Every run of the grid: its folder and its command line."""
    unknown = set(config) - KEYS
    require(not unknown, f"bench config: unknown keys {sorted(unknown)}; known: {sorted(KEYS)}.")
    require(bool(config.get("methods")), "bench config: 'methods' is empty.")
    runs = []
    for task in config.get("tasks", ["rotten_tomatoes"]):
        for method, spec in config["methods"].items():
            spec = spec or {}
            command = spec.get("command", "train")
            require(command in ("search", "train"), f"bench config: {method}.command must be search or train.")
            for lr in spec.get("learning_rates", [None]):
                for seed in config.get("seeds", [0]):
                    label = os.path.splitext(os.path.basename(task))[0]  # a file path becomes its name
                    folder = os.path.join(root, label, method, f"lr{lr}-s{seed}" if lr else f"s{seed}")
                    flags = {**config.get("common", {}), **spec.get("flags", {}), "seed": seed}
                    if lr:
                        flags["learning_rate"] = lr
                    args = [command, "--model", config.get("model", "minilm"), "--task", task, "--output-dir", folder,
                            "--overwrite", "--no-progress", *_flags(flags)]  # fmt: skip
                    runs.append({"task": label, "method": method, "lr": lr, "seed": seed, "dir": folder, "args": args})
    return runs


def run_grid(config_path: str) -> str:
    config = load_yaml(config_path)
    name = config.get("name") or os.path.splitext(os.path.basename(config_path))[0]
    root = config.get("output", os.path.join("benchmarks", "runs", name))
    runs = plan(config, root)
    for i, run in enumerate(runs, 1):
        done = os.path.join(run["dir"], "results.json")
        if os.path.exists(done):
            print(f"[{i}/{len(runs)}] {run['dir']}: done earlier, skipped")
            continue
        print(f"[{i}/{len(runs)}] {run['dir']}: prunepeft {' '.join(run['args'])}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "prunepeft", *run["args"]], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError(f"run {run['dir']} failed:\n{proc.stderr[-3000:]}")
        # peak resident memory of the largest finished child so far (Linux: KiB)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        with open(done, encoding="utf-8") as fh:
            results = json.load(fh)
        results["bench"] = {**{k: run[k] for k in ("task", "method", "lr", "seed")}, "peak_rss_mib_upper": peak_mib,
                            "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip
        with open(done, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return aggregate(name, root, runs)


def aggregate(name: str, root: str, runs: list[dict]) -> str:
    """benchmarks/results/NAME.md: per task, the best learning rate of each method on validation, then
    test mean and spread over seeds, parameters and search cost."""
    rows: dict[tuple, list[dict]] = {}
    for run in runs:
        path = os.path.join(run["dir"], "results.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                rows.setdefault((run["task"], run["method"], run["lr"]), []).append(json.load(fh))
    lines = [
        f"# Benchmark `{name}`",
        "",
        "Learning rates chosen on validation (mean over seeds); test evaluated once per run.",
        "",
    ]
    lines.append(
        "| task | method | lr | seeds | test (mean ± std) | validation | PEFT params | % of base | search / train |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for task in sorted({k[0] for k in rows}):
        for method in sorted({k[1] for k in rows if k[0] == task}):
            options = {k[2]: v for k, v in rows.items() if k[0] == task and k[1] == method}
            lr, results = max(options.items(), key=lambda item: _mean(item[1], "validation"))
            test = [_metric(r, "test") for r in results]
            spread = statistics.stdev(test) if len(test) > 1 else 0.0
            ratio = [r["time_s"].get("search_to_train_ratio") for r in results]
            ratio_text = f"{statistics.mean(ratio):.2f}" if all(x is not None for x in ratio) else "-"
            p = results[0]["params"]
            lines.append(
                f"| {task} | {method} | {lr or '-'} | {len(results)} | {statistics.mean(test):.4f} ± {spread:.4f} | "
                f"{_mean(results, 'validation'):.4f} | {p['peft']:,} | {p['peft_percent_of_base']:.3f}% | "
                f"{ratio_text} |"
            )
    os.makedirs(os.path.join("benchmarks", "results"), exist_ok=True)
    path = os.path.join("benchmarks", "results", f"{name}.md")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _metric(results: dict, split: str) -> float:
    key = ("eval_" if split == "validation" else "test_") + results["metric"]
    return float(results[split].get(key, float("nan")))


def _mean(results: list[dict], split: str) -> float:
    return statistics.mean(_metric(r, split) for r in results)
