"""Kill -9 a search mid-round and mid-final-training; resuming must give the uninterrupted run's answer."""

import json
import os
import subprocess
import sys

import pytest
from safetensors import safe_open

from test_search import csv_task  # noqa: F401  (fixture)

ARGS = ["--epochs", "2", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--round-epochs", "0.3", "--budget", "2000", "--no-progress"]  # fmt: skip


def _run(*args, kill_at=None):
    env = {**os.environ, "PRUNEPEFT_KILL_AT": kill_at or ""}
    return subprocess.run([sys.executable, "-m", "prunepeft", *args], env=env, capture_output=True, text=True)


def _comparable(out):
    recipe = json.loads((out / "recipe.json").read_text())
    results = json.loads((out / "results.json").read_text())
    log = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    for record in log:
        record.pop("wall_s", None)
    for key in ("settings",):
        recipe.pop(key)
    metrics = {k: v for k, v in results["test"].items() if "runtime" not in k and "per_second" not in k}
    return recipe, metrics, log


@pytest.fixture(scope="module")
def reference(tiny_bert_dir, csv_task, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ref") / "run"
    done = _run("search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), *ARGS)
    assert done.returncode == 0, done.stderr[-2000:]
    return _comparable(out)


@pytest.mark.parametrize(
    "kill_at,every,saved", [("_search:12", "0", True), ("_search:12", "60", False), ("_final:17", "0", True)]
)
def test_kill_and_resume_gives_the_same_answer(tiny_bert_dir, csv_task, tmp_path, reference, kill_at, every, saved):  # noqa: F811
    """Killed mid-round with a checkpoint after every round (the replay starts from the last round), and with
    checkpoints every 60 s (none yet: the replay starts from the beginning); killed mid-final-training."""
    out = tmp_path / "run"
    killed = _run("search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), *ARGS,
                  "--checkpoint-every", every, kill_at=kill_at)  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "results.json").exists()
    if kill_at.startswith("_search"):
        assert bool(list((out / "_search").glob("checkpoint-*/search_state.json"))) == saved
    resumed = _run("search", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    recipe, metrics, log = _comparable(out)
    ref_recipe, ref_metrics, ref_log = reference
    assert recipe == ref_recipe
    assert log == ref_log
    assert metrics == ref_metrics
    assert json.loads((out / "results.json").read_text())["resumed"] is True
    assert not (out / "_final").exists() and not (out / "_search").exists()


def test_resume_refuses_what_it_cannot_continue(tmp_path):
    missing = _run("search", "--resume", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run_config.json").write_text("{ truncated")
    junk = _run("search", "--resume", str(tmp_path / "junk"))
    assert junk.returncode == 2 and "unreadable" in junk.stderr
    both = _run("search", "--resume", str(tmp_path / "junk"), "--overwrite")
    assert both.returncode == 2 and "give one of them" in both.stderr


def test_damaged_checkpoint_is_refused_clearly(tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    killed = _run("search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), *ARGS,
                  "--checkpoint-every", "0", kill_at="_search:10")  # fmt: skip
    assert killed.returncode == -9
    checkpoints = sorted((out / "_search").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    weights = checkpoints[-1] / "model.safetensors"
    with safe_open(str(weights), "pt") as saved:  # slim: the trained tensors only, never the frozen base
        keys = set(saved.keys())
    assert keys and all("classifier" in k or ".lora_" in k or "adapter" in k for k in keys), sorted(keys)[:5]
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    resumed = _run("search", "--resume", str(out))
    assert resumed.returncode == 2
    assert "is damaged" in resumed.stderr and "Traceback" not in resumed.stderr


def test_same_seed_same_answer(tiny_bert_dir, csv_task, tmp_path, reference):  # noqa: F811
    out = tmp_path / "again"
    done = _run("search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), *ARGS)
    assert done.returncode == 0
    assert _comparable(out) == reference
