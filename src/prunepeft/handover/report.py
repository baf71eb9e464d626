"""``report.html`` with PNG plots for a search run (or a folder of runs), and the inference-latency probe."""

from __future__ import annotations

import html
import json
import os
import re
import statistics
import time

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from prunepeft.common.distributed import is_main_process  # noqa: E402
from prunepeft.handover.load import read_json  # noqa: E402
from prunepeft.method.criteria import CRITERIA  # noqa: E402


def _read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def plot_module_map(log: list[dict], recipe: dict, path: str) -> None:
    """Layers x candidate kinds: kept, or the round in which the candidate was removed. A LoRA location held as
    slices shows the share of its slices kept (``2/4``), or the round its last slice was removed."""
    start = next(r for r in log if r["phase"] == "start")
    slices: dict[tuple[int, str], list[str]] = {}  # (layer, kind) -> its candidates
    for name in start["candidates"]:
        layer, _, rest = name.partition(".")
        kind = re.sub(r"\.s\d+$", "", rest)
        slices.setdefault((int(layer[1:]), kind), []).append(name)
    kinds = list(dict.fromkeys(kind for _, kind in slices))
    layers = sorted({layer for layer, _ in slices})
    removed = recipe.get("removed", {})
    rounds = max(removed.values(), default=1)
    grid = [[float("nan")] * len(layers) for _ in kinds]
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(layers), 0.9 + 0.6 * len(kinds)))
    for (layer, kind), names in slices.items():
        row, col = kinds.index(kind), layers.index(layer)
        kept = [n for n in names if n not in removed]
        grid[row][col] = rounds + 1 if kept else max(removed[n] for n in names)
        share = "kept" if len(kept) == len(names) else f"{len(kept)}/{len(names)}"
        text = share if kept else f"r{int(grid[row][col])}"
        ax.text(col, row, text, ha="center", va="center", fontsize=8)
    image = ax.imshow(grid, cmap="viridis", vmin=1, vmax=rounds + 1, aspect="auto")
    ax.set_xticks(range(len(layers)), [str(x) for x in layers])
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_xlabel("layer")
    ax.set_title("Module map: kept, or removed in round rN")
    fig.colorbar(image, ax=ax, label="round removed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_trajectory(log: list[dict], path: str) -> None:
    """Trainable PEFT parameters and the validation metric after each round."""
    start = next(r for r in log if r["phase"] == "start")
    rounds = [r for r in log if r["phase"] == "round"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    xs = [0] + [r["round"] for r in rounds]
    ax.plot(xs, [start["supernet_params"]] + [r["peft_params"] for r in rounds], "o-", label="PEFT parameters")
    ax.axhline(start["budget_params"], color="grey", linestyle="--", label="budget")
    ax.set_xlabel("round")
    ax.set_ylabel("trainable PEFT parameters")
    metric = [(r["round"], r["val_metric"]) for r in rounds if r.get("val_metric") is not None]
    if metric:
        twin = ax.twinx()
        twin.plot(*zip(*metric, strict=True), "s-", color="tab:orange", label="validation metric (before removal)")
        twin.set_ylabel("validation metric")
        twin.legend(loc="upper right", fontsize=8)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Trajectory over rounds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_assignment(recipe: dict, path: str) -> None:
    """Which criteria each partition (depth block x kind) was assigned by the warm-up."""
    assignment = recipe.get("assignment", {})
    parts = sorted(assignment)
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.35 * max(len(parts), 1)))
    grid = [[1.0 if c in assignment[p] else 0.0 for c in CRITERIA] for p in parts] or [[0.0] * len(CRITERIA)]
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=1.3, aspect="auto")
    ax.set_xticks(range(len(CRITERIA)), CRITERIA, rotation=30, ha="right")
    ax.set_yticks(range(len(parts)), parts)
    ax.set_title("Criteria assigned to each partition")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scores(log: list[dict], path: str) -> None:
    """Distribution of each criterion over the candidates in the first round, by kind (log scale)."""
    rounds = [r for r in log if r["phase"] == "round"]
    if not rounds:
        return
    scores = rounds[0]["scores"]
    kinds = sorted({n.split(".", 1)[1] for n in scores})
    fig, axes = plt.subplots(1, len(CRITERIA), figsize=(2.1 * len(CRITERIA), 3.2))
    for ax, criterion in zip(axes, CRITERIA, strict=True):
        for i, kind in enumerate(kinds):
            values = [s[criterion] for n, s in scores.items() if n.endswith("." + kind)]
            ax.scatter([i] * len(values), values, s=14, alpha=0.8)
        ax.set_xticks(range(len(kinds)), kinds, rotation=45, ha="right", fontsize=7)
        ax.set_title(criterion, fontsize=9)
        if all(v > 0 for s in scores.values() for v in [s[criterion]]):
            ax.set_yscale("log")
    fig.suptitle("Criterion values in round 1, by candidate kind")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_runs(runs: list[dict], path: str) -> None:
    """Test metric against trainable PEFT parameters, one point per run, labelled by method."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for r in runs:
        metric = r["test"].get("test_" + r["metric"])
        ax.scatter(r["params"]["peft"], metric, s=30)
        ax.annotate(r["method"], (r["params"]["peft"], metric), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("trainable PEFT parameters (head excluded)")
    ax.set_ylabel("test metric")
    ax.set_title("Test metric vs trainable parameters")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


REFERENCE = "reference.json"  # other methods' points for the curve plot, written beside a run by `prunepeft bench`


def curve_path(run_dir: str) -> str:
    return os.path.join(run_dir, "curve.png")


def plot_curve(results: dict, reference: list[dict], path: str) -> None:
    """A multi-budget search: test metric against trainable PEFT parameters, one point per trained budget and
    a line through them; ``reference`` points (``{"label", "params", "test", "group"}``, e.g. peft LoRA at
    matching ranks) are drawn as one line per group."""
    metric = results["metric"]
    points = [p for p in results["budgets"] if p["trained"]]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    xs = [p["peft_params"] for p in points]
    ys = [p["test"].get("test_" + metric) for p in points]
    ax.plot(xs, ys, "o-", label="PrunePEFT (one search)")
    for p, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(p["budget"], (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
    groups: dict[str, list[dict]] = {}
    for r in reference:
        groups.setdefault(r.get("group", r["label"]), []).append(r)
    for group, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["params"])
        ax.plot([r["params"] for r in rs], [r["test"] for r in rs], "s--", label=group)
        for r in rs:
            ax.annotate(r["label"], (r["params"], r["test"]), fontsize=7, xytext=(4, -9), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("trainable PEFT parameters (head excluded, log)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title("Accuracy against size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curve_facts(results: dict) -> list[str]:
    metric, out = results["metric"], []
    for p in results["budgets"]:
        score = "not trained"
        if p["trained"]:
            score = f"test {metric} <b>{p['test'].get('test_' + metric, float('nan')):.4f}</b>"
        out.append(
            f"budget {html.escape(p['budget'])}: {p['peft_params']:,} PEFT parameters (fit in round {p['fit_round']}), "
            f'{score} (<a href="{p["dir"]}/report.html">{html.escape(p["dir"])}/</a>)'
        )
    t = results.get("time_s", {})
    if "search_to_train_ratio" in t:
        probes = f" + learning-rate probes {t['rate_choice_s_mean']:.0f} s" if "rate_choice_s_mean" in t else ""
        out.append(
            f"one search {t['search_s']:.0f} s{probes}; {t['search_to_train_ratio']:.2f} of a final training (mean)"
        )
    return out


def write_report(run_dir: str) -> str:
    """report.html (and PNGs beside it) for a search run, or for a folder holding several runs."""
    if not is_main_process():
        return os.path.join(run_dir, "report.html")
    log = _read_jsonl(os.path.join(run_dir, "search_log.jsonl"))
    recipe = read_json(os.path.join(run_dir, "recipe.json"))
    results = read_json(os.path.join(run_dir, "results.json"))
    sections = []
    curve = results.get("budgets")  # a search over several budgets: its curve, and the smallest budget's map
    if curve:
        plot_curve(results, read_json(os.path.join(run_dir, REFERENCE)).get("points", []), curve_path(run_dir))
        sections.append('<h2>Test metric against trainable parameters</h2><img src="curve.png" alt="curve">')
        recipe = recipe or read_json(os.path.join(run_dir, curve[-1]["dir"], "recipe.json"))
    if log and recipe:
        for name, title, plot in (
            ("module_map.png", "Module map", lambda p: plot_module_map(log, recipe, p)),
            ("trajectory.png", "Trajectory", lambda p: plot_trajectory(log, p)),
            ("assignment.png", "Criteria per partition", lambda p: plot_assignment(recipe, p)),
            ("scores.png", "Score distributions", lambda p: plot_scores(log, p)),
        ):
            plot(os.path.join(run_dir, name))
            if os.path.exists(os.path.join(run_dir, name)):
                sections.append(f'<h2>{title}</h2><img src="{name}" alt="{title}">')
    runs = [read_json(os.path.join(run_dir, d, "results.json")) for d in sorted(os.listdir(run_dir))]
    runs = [r for r in runs if r]
    if runs and not curve:
        plot_runs(runs, os.path.join(run_dir, "runs.png"))
        sections.append('<h2>Runs</h2><img src="runs.png" alt="test metric vs parameters">')
    if not sections and not results:
        raise FileNotFoundError(f"{run_dir} holds no search log, recipe or results to report on.")
    page = _page(run_dir, recipe, results, sections)
    path = os.path.join(run_dir, "report.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path


def _page(run_dir: str, recipe: dict, results: dict, sections: list[str]) -> str:
    rows = []
    if recipe:
        for layer, kinds in recipe.get("per_layer", {}).items():
            rows.append(f"<tr><td>{layer}</td><td>{html.escape(', '.join(kinds) or '-')}</td></tr>")
    facts = []
    if results.get("budgets"):
        facts += _curve_facts(results)
    elif results:
        m = results["metric"]
        p = results["params"]
        facts.append(f"test {m}: <b>{results['test'].get('test_' + m, float('nan')):.4f}</b>")
        facts.append(f"PEFT parameters: {p['peft']:,} ({p['peft_percent_of_base']:.3f}% of base); head {p['head']:,}")
        t = results.get("time_s", {})
        if "search_to_train_ratio" in t:
            probes = f" + learning-rate probes {t['rate_choice_s']:.0f} s" if "rate_choice_s" in t else ""
            facts.append(
                f"search {t['search_s']:.0f} s{probes} / final training {t['final_train_s']:.0f} s "
                f"= {t['search_to_train_ratio']:.2f}"
            )
        lat = results.get("latency_ms")
        if lat:
            values = ", ".join(f"{k} {v}" for k, v in lat.items() if k != "batch")
            facts.append(f"forward latency per {lat.get('batch', '')} batch (ms): {values}")
    table = f"<table><tr><th>layer</th><th>kept</th></tr>{''.join(rows)}</table>" if rows else ""
    table += per_class_html(results)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>prunepeft report</title><style>"
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}"
        "td,th{border:1px solid #ccc;padding:2px 8px}table{border-collapse:collapse}</style></head><body>"
        f"<h1>prunepeft: {html.escape(os.path.basename(os.path.abspath(run_dir)))}</h1>"
        f"<p>{'<br>'.join(facts)}</p>{table}{''.join(sections)}</body></html>\n"
    )


def measure_latency(model, vocab_size: int, batch_size: int = 32, length: int = 64, repeats: int = 10) -> float:
    """Median milliseconds of one forward pass on a random batch (after two warm-up passes)."""
    model.eval()
    device = next(model.parameters()).device
    ids = torch.randint(0, vocab_size, (batch_size, length), generator=torch.Generator().manual_seed(0)).to(device)
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 2)


def per_class_html(results: dict) -> str:
    """The test split per class: precision, recall, F1 and support, and the confusion matrix (rows: true label,
    columns: predicted), under the task's label names. Empty for regression and language modelling."""
    per_class = (results or {}).get("test", {}).get("per_class")
    if not per_class:
        return ""
    names = [html.escape(str(n)) for n in per_class["labels"]]
    rows = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{c['precision']:.4f}</td><td>{c['recall']:.4f}</td>"
        f"<td>{c['f1']:.4f}</td><td>{c['support']:,}</td></tr>"
        for name, c in per_class["classes"].items()
    )
    matrix = "".join(
        f"<tr><th>{name}</th>{''.join(f'<td>{n:,}</td>' for n in row)}</tr>"
        for name, row in zip(names, per_class["confusion_matrix"], strict=True)
    )
    return (
        "<h2>Test split per class</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th>"
        f"<th>support</th></tr>{rows}</table><h3>Confusion matrix (rows: true label, columns: predicted)</h3>"
        f"<table><tr><th></th>{''.join(f'<th>{n}</th>' for n in names)}</tr>{matrix}</table>"
    )
