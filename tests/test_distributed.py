"""Two processes on CPU (gloo) through torchrun: statistics are reduced, both take the same decisions, only the
main process writes, and the run ends without hanging."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from test_search import csv_task  # noqa: F401  (fixture)


def test_two_process_search_agrees_and_completes(tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29731", "-m", "prunepeft", "search",
            "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), "--epochs", "1",
            "--batch-size", "8", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
            "--round-epochs", "0.5", "--budget", "2000", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    beliefs = dict(re.findall(r"prunepeft rank (\d): kept (\[.*\])", done.stdout))
    assert set(beliefs) == {"0", "1"} and beliefs["0"] == beliefs["1"]
    recipe = json.loads((out / "recipe.json").read_text())
    assert str(sorted(c["name"] for c in recipe["candidates"])) == beliefs["0"]
    assert recipe["peft_params"] <= 2000
    assert (out / "results.json").exists() and done.stdout.count("== prunepeft") == 1  # one process reports
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert sum(r["phase"] == "start" for r in log) == 1  # written once, not once per process
