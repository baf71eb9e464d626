"""Two processes on CPU (gloo), launched by torchrun and by `accelerate launch`: statistics are reduced, both take
the same decisions, only the main process writes, and the run ends without hanging."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_search import csv_task  # noqa: F401  (fixture)

LAUNCHERS = {
    "torchrun": ["torchrun", "--nproc_per_node", "2", "--master_port", "29731"],
    # --multi_gpu is accelerate's torch.distributed launcher; without a GPU it runs the processes on CPU (gloo).
    # (accelerate's --cpu mode with several processes needs MPI, which these machines lack.)
    "accelerate": [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29732",
    ],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_search_agrees_and_completes(launcher, tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    out = tmp_path / "ddp"
    program, *options = LAUNCHERS[launcher]
    args = [str(Path(sys.executable).with_name(program)), *options, "-m", "prunepeft", "search",
            "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), "--epochs", "1",
            "--batch-size", "8", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
            "--round-epochs", "0.5", "--budget", "2000", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    beliefs = dict(re.findall(r"prunepeft rank (\d): kept (\[[^\]]*\])", done.stdout))  # lines may run together
    assert set(beliefs) == {"0", "1"} and beliefs["0"] == beliefs["1"]
    recipe = json.loads((out / "recipe.json").read_text())
    kept = sorted({re.sub(r"\.s\d+$", "", name) for name in ast.literal_eval(beliefs["0"])})  # slices to locations
    assert sorted(c["name"] for c in recipe["candidates"]) == kept
    assert recipe["peft_params"] <= 2000
    assert (out / "results.json").exists() and done.stdout.count("== PrunePEFT search") == 1  # one process reports
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert sum(r["phase"] == "start" for r in log) == 1  # written once, not once per process
