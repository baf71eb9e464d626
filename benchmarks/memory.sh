#!/usr/bin/env bash
# Peak memory of a search (supernet with statistics recording) against a plain peft LoRA run of the same model,
# on the same 1,000-example slice (MiniLM, Rotten Tomatoes, 1 epoch). Writes benchmarks/results/memory.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
common=(--max-train-samples 1000 --epochs 1 --seed 0 --overwrite --no-progress)
$BIN/prunepeft search "${common[@]}" --output-dir runs/memory/search > runs/memory-search.log 2>&1
$BIN/prunepeft train --method lora "${common[@]}" --output-dir runs/memory/lora > runs/memory-lora.log 2>&1
$BIN/python - <<'PY' > benchmarks/results/memory.md
import json
print("| phase | peak RSS (MiB) | peak GPU (MiB) | trainable PEFT params | command |")
print("|---|---|---|---|---|")
search = json.load(open("runs/memory/search/results.json"))
lora = json.load(open("runs/memory/lora/results.json"))
for name, r, m in (("PrunePEFT search (supernet + statistics)", search, search["params"]["search_memory_mib"]),
                   ("plain peft LoRA r=32 q,v: whole run", lora, lora["memory_mib"])):
    peft = r["params"]["supernet_params"] if "supernet_params" in r["params"] else r["params"]["peft"]
    print(f"| {name} | {m['peak_rss']} | {m.get('peak_gpu', '-')} | {peft:,} | `{r['command']}` |")
print(f"\nPeak resident memory of the process up to the end of that phase (model, data, Trainer, statistics); "
      f"{r['machine']['platform']}, versions {r['versions']}.")
PY
cat benchmarks/results/memory.md
