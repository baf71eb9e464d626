#!/usr/bin/env bash
# The end-to-end check of the default search against plain LoRA (rank 32 on query,value) under the same
# training settings (MiniLM, Rotten Tomatoes full training split, 3 epochs, lr 1e-3, batch 32, seed 0).
# Writes runs under runs/e2e/ and the table benchmarks/results/e2e_minilm.md.
# Usage: bash benchmarks/e2e_minilm.sh            (both runs one after the other, ~35 min on 2 cores)
#        PARALLEL=1 bash benchmarks/e2e_minilm.sh (both at once, one thread each)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SEED=${SEED:-0}
search=(search --budget 0.01 --seed "$SEED" --output-dir "runs/e2e/prunepeft-s$SEED" --overwrite --no-progress)
lora=(train --method lora --lora-rank 32 --lora-targets query,value --seed "$SEED"
      --output-dir "runs/e2e/lora-s$SEED" --overwrite --no-progress)
if [[ "${PARALLEL:-0}" == 1 ]]; then
  OMP_NUM_THREADS=1 $BIN/prunepeft "${search[@]}" > "runs/e2e-prunepeft-s$SEED.log" 2>&1 &
  OMP_NUM_THREADS=1 $BIN/prunepeft "${lora[@]}" > "runs/e2e-lora-s$SEED.log" 2>&1 &
  wait
else
  mkdir -p runs
  $BIN/prunepeft "${search[@]}" > "runs/e2e-prunepeft-s$SEED.log" 2>&1
  $BIN/prunepeft "${lora[@]}" > "runs/e2e-lora-s$SEED.log" 2>&1
fi
$BIN/python benchmarks/table.py runs/e2e > benchmarks/results/e2e_minilm.md
cat benchmarks/results/e2e_minilm.md
