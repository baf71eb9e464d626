#!/bin/bash
# Pilot for the default unit sizes (issue 13): on `convention`, seed 0, whole training split, 3 epochs, length 64,
# the search with the paper's units (rank 32 / width 64), with units of an equal share of twice the budget (the
# rule now default: rank 25 / width 49 on MiniLM at 1%; rank 24 / width 48 here), and the extended space at that
# rule, against peft LoRA at the same budget. One seed on one task: a pilot, not a result; the paired, 3-seed
# comparison is benchmarks/default_vs_lora.yaml. Results: benchmarks/results/pilot_unit_sizes.md.
#   bash benchmarks/pilot_unit_sizes.sh   (runs in runs/pilot/; resumes: finished runs are skipped)
set -u
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
P=.venv/bin/prunepeft
C="--task convention --epochs 3 --max-length 64 --seed 0 --no-progress --overwrite --learning-rate 1e-3"
run() { name=$1; shift; [ -f runs/pilot/$name/results.json ] && return; $P "$@" $C --output-dir runs/pilot/$name > runs/pilot/$name.log 2>&1; echo "$name rc=$?"; }
mkdir -p runs/pilot
run lora_qkvo12 train --method lora --lora-rank 12 --lora-alpha 24 --lora-targets query,key,value,attention.output.dense
run paper_r32 search --lora-rank 32 --lora-alpha 32 --bottleneck-size 64
run paper_r24 search --lora-rank 24 --lora-alpha 48 --bottleneck-size 48
run ext_r11 search --space extended --lora-rank 11 --lora-alpha 22 --bottleneck-size 11
run lora_qv24 train --method lora --lora-rank 24 --lora-alpha 48
