"""The summary printed at the end of a run: what was trained, how well it did, where it went, and what to do next."""

from __future__ import annotations

import json
import os

from prunepeft.runs.run_folder import PEFT_BASELINES


def print_summary(results: dict, output_dir: str, title: str | None = None) -> None:
    from prunepeft.common.distributed import is_main_process

    if not is_main_process():
        return
    if "budgets" in results:  # several budgets from one search: the curve
        from prunepeft.runs.search import print_curve

        print_curve(results, output_dir)
        _print_next_steps(results, output_dir)
        return
    metric = results["metric"]
    params = results["params"]
    method = results["method"]
    title = title or ("PrunePEFT search" if method == "prunepeft" else f"{method}")
    print(f"\n== {title} on {results['task']} ({results['model']})")
    for layer, kinds in results.get("per_layer", {}).items():
        print(f"  layer {layer:>2}: {', '.join(kinds) if kinds else '-'}")
    print(
        f"  trainable PEFT parameters: {params['peft']:,} ({params['peft_percent_of_base']:.3f}% of the "
        f"{params['base']:,} base parameters; head {params['head']:,} more)"
    )
    val = results["validation"].get(f"eval_{metric}")
    test = results["test"].get(f"test_{metric}")
    print(f"  validation {metric}: {val:.4f}   test {metric}: {test:.4f}")
    per_class = results["test"].get("per_class")
    if per_class:
        worst = min(per_class["classes"].items(), key=lambda item: item[1]["f1"])
        scores = ", ".join(f"{name} {c['f1']:.3f}" for name, c in per_class["classes"].items())
        print(f"  test F1 per class: {scores} (lowest: {worst[0]})")
    times = results["time_s"]
    rate = results.get("learning_rate")
    if rate:
        print(f"  learning rate {rate['rate']:g}: {rate['reason']}")
    if "search_s" in times:
        probes = f" + learning-rate probes {times['rate_choice_s']:.0f}s" if "rate_choice_s" in times else ""
        print(
            f"  search {times['search_s']:.0f}s{probes}, final training {times['final_train_s']:.0f}s "
            f"(ratio {times['search_to_train_ratio']:.2f})"
        )
    print(f"  written to {output_dir}/")
    _print_next_steps(results, output_dir)


def _print_next_steps(results: dict, output_dir: str) -> None:
    """What to do with the run: label new text, hand it over (peft, or prunepeft.load), read the report."""
    if "budgets" in results:  # the smallest trained budget stands for the others
        trained = sorted((p for p in results["budgets"] if p["trained"]), key=lambda p: p["budget_params"])
        run = os.path.join(output_dir, trained[0]["dir"]) if trained else None
    else:
        run = output_dir
    lines = []
    if run is not None:
        lines.append(f"  label new text:  prunepeft predict {run} --task new.csv --output labelled.csv")
        modules = _kept_modules(run)
        if results.get("method") in PEFT_BASELINES or (modules and modules <= {"lora"}):
            lines.append(f"  as a peft LoRA:  prunepeft export {run}   (a folder peft loads without prunepeft)")
        elif modules:
            lines.append(
                f"  in Python:       prunepeft.load(None, {run!r})   (it keeps an adapter, which peft cannot load)"
            )
    report = os.path.join(output_dir, "report.html")
    if os.path.isfile(report):
        lines.append(f"  report:          {report}")
    if lines:
        print("next:")
        print("\n".join(lines))


def _kept_modules(run_dir: str) -> set[str]:
    """The module types of a run's configuration ("lora", "serial_adapter", ...); empty without a recipe."""
    try:
        with open(os.path.join(run_dir, "recipe.json"), encoding="utf-8") as fh:
            return {c["module"] for c in json.load(fh)["candidates"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
