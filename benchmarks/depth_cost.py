"""What depth costs, from the committed copies of the depth benchmarks (`benchmarks/results/depth/runs/` for mpnet's
12 layers, `benchmarks/results/depth_minilm/runs/` for MiniLM's 6):

    .venv/bin/python benchmarks/depth_cost.py

Seed by seed, the default search's time (warm-up + rounds) against its own final training, and the peak memory of
the search against the LoRA q,k,v,o runs of the same seed; then, for the searches with `--learning-rate auto`, what
the rate probes added. Runs of different sessions may have run on different
machines, so each row names its machine (the kernel build in `machine.platform`): compare seconds within a machine,
and ratios (search / train, and memory) across them."""

from __future__ import annotations

import os
import sys

from default_vs_lora_pairs import by_rate

GRIDS = {"depth": "mpnet", "depth_minilm": "MiniLM"}
ROOT = os.path.join(os.path.dirname(__file__), "results")


def _machine(results: dict) -> str:
    return results["machine"]["platform"].split("-")[3]  # e.g. fc-v1300: the machine's kernel build


def rows(root: str = ROOT) -> list[str]:
    out = [
        "| model | seed | machine | search s (warm-up + rounds) | final training s | search / train "
        "| peak RSS MiB, search | peak RSS MiB, LoRA q,k,v,o (runs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for grid, model in GRIDS.items():
        folder = os.path.join(root, grid, "runs")
        searches, loras = by_rate("convention", "prunepeft", folder), by_rate("convention", "lora_qkvo", folder)
        for seed, rated in sorted(searches.items()):
            (search,) = rated.values()
            t = search["time_s"]
            lora = [r for _, r in sorted(loras.get(seed, {}).items())]  # by rate
            peaks = ", ".join(f"{r['memory_mib']['peak_rss']:,.0f}" for r in lora) or "-"
            out.append(
                f"| {model} | {seed} | {_machine(search)} | {t['search_s']:,.0f} ({t['warmup_s']:,.0f} + "
                f"{t['rounds_s']:,.0f}) | {t['final_train_s']:,.0f} | {t['search_to_train_ratio']:.2f} | "
                f"{search['memory_mib']['peak_rss']:,.0f} | {peaks} ({len(lora)}) |"
            )
    return out


def probe_rows(root: str = ROOT) -> list[str]:
    """The searches with ``--learning-rate auto``: the probes' time against the final training, and the whole."""
    out = [
        "| model | seed | machine | rate chosen | probes s | final training s | probes / train "
        "| (search + probes) / train |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for grid, model in GRIDS.items():
        for seed, rated in sorted(by_rate("convention", "prunepeft_auto", os.path.join(root, grid, "runs")).items()):
            (run,) = rated.values()
            t = run["time_s"]
            probes, train = t["rate_choice_s"], t["final_train_s"]
            out.append(
                f"| {model} | {seed} | {_machine(run)} | {run['learning_rate']['rate']:g} | {probes:,.0f} | "
                f"{train:,.0f} | {probes / train:.2f} | {t['search_to_train_ratio']:.2f} |"
            )
    return out if len(out) > 2 else []


if __name__ == "__main__":
    print("\n".join(rows(*sys.argv[1:])))
    probes = probe_rows(*sys.argv[1:])
    if probes:
        print("\n" + "\n".join(probes))
