"""What depth costs, from the committed copies of the depth benchmarks (`benchmarks/results/depth/runs/` for mpnet's
12 layers, `benchmarks/results/depth_minilm/runs/` for MiniLM's 6):

    .venv/bin/python benchmarks/depth_cost.py

Seed by seed, the default search's time (warm-up + rounds) against its own final training, and the peak memory of
the search against the LoRA q,k,v,o runs of the same seed. Runs of different sessions may have run on different
machines, so each row names its machine (the kernel build in `machine.platform`): compare seconds within a machine,
and ratios (search / train, and memory) across them."""

from __future__ import annotations

import glob
import json
import os
import re
import sys

GRIDS = {"depth": "mpnet", "depth_minilm": "MiniLM"}


def _copies(folder: str, method: str) -> dict[int, list[dict]]:
    by_seed: dict[int, list[dict]] = {}
    for path in sorted(glob.glob(os.path.join(folder, f"*__{method}__*.json"))):
        with open(path, encoding="utf-8") as fh:
            results = json.load(fh)
        seed = int(re.search(r"s(\d+)\.json$", path).group(1))  # names end in __s0.json or -s0.json
        by_seed.setdefault(seed, []).append(results)
    return by_seed


def _machine(results: dict) -> str:
    return results["machine"]["platform"].split("-")[3]  # e.g. fc-v1300: the machine's kernel build


def rows(root: str = "benchmarks/results") -> list[str]:
    out = [
        "| model | seed | machine | search s (warm-up + rounds) | final training s | search / train "
        "| peak RSS MiB, search | peak RSS MiB, LoRA q,k,v,o (runs) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for grid, model in GRIDS.items():
        folder = os.path.join(root, grid, "runs")
        searches, loras = _copies(folder, "prunepeft"), _copies(folder, "lora_qkvo")
        for seed, (search,) in sorted(searches.items()):
            t = search["time_s"]
            lora = loras.get(seed, [])
            peaks = ", ".join(f"{r['memory_mib']['peak_rss']:,.0f}" for r in lora) or "-"
            out.append(
                f"| {model} | {seed} | {_machine(search)} | {t['search_s']:,.0f} ({t['warmup_s']:,.0f} + "
                f"{t['rounds_s']:,.0f}) | {t['final_train_s']:,.0f} | {t['search_to_train_ratio']:.2f} | "
                f"{search['memory_mib']['peak_rss']:,.0f} | {peaks} ({len(lora)}) |"
            )
    return out


if __name__ == "__main__":
    print("\n".join(rows(*sys.argv[1:])))
