"""What a search shows while it works: one line per warm-up turn, round and final-training epoch with the time
so far and the time left for the whole run; the test, latency and report phases say what they do; in a log, a
heartbeat line whenever nothing was written for a while; --no-progress hides every library progress bar."""

import os
import re
import subprocess
import sys
import time

import pytest
from transformers import AutoTokenizer

from conftest import tiny_bert
from prunepeft.common import progress
from prunepeft.common.config import ConfigError
from prunepeft.common.progress import PLAN, RunPlan, doing, estimate_rounds
from test_search import csv_task  # noqa: F401  (fixture)

ARGS = ["--epochs", "2", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--round-epochs", "0.3", "--budget", "2000"]  # fmt: skip
BARS = ("Loading weights", "Writing model shards", "tokenize", "it/s]", "examples/s]", "Converting and de-quantizing")
LINE = re.compile(r"^\[\d+:\d\d\] (warm-up turn \d+ of 3|round \d+ of about \d+|final training epoch \d of 2) done")


HEARTBEAT = re.compile(r"^\[\d+:\d\d\] .+: step \d+ of \d+ · about \d+:\d\d left$")


def _search(model, task, out, *extra, heartbeat="60"):
    done = subprocess.run(
        [sys.executable, "-m", "prunepeft", "search", "--model", model, "--task", task, "--output-dir", str(out),
         *ARGS, *extra],
        capture_output=True, text=True, timeout=900, env={**os.environ, progress.HEARTBEAT_ENV: heartbeat},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.fixture(scope="module")
def quiet_log(tiny_bert_dir, csv_task, tmp_path_factory):  # noqa: F811
    """A log (stderr is a pipe) with a heartbeat every 0.05 s: no phase of the tiny run is shorter than that."""
    return _search(tiny_bert_dir, csv_task, tmp_path_factory.mktemp("quiet") / "run", "--no-progress",
                   heartbeat="0.05")  # fmt: skip


def test_one_line_per_phase_with_time_left(quiet_log):
    lines = [line for line in quiet_log.splitlines() if LINE.match(line)]
    kinds = [LINE.match(line).group(1).split(" ")[0] for line in lines]
    assert kinds[:3] == ["warm-up"] * 3 and "round" in kinds and kinds[-2:] == ["final", "final"], lines
    assert all(" left" in line for line in lines), lines
    assert "final training epoch 2 of 2 done, validation accuracy" in lines[-1]
    assert lines[-1].endswith("about 0:00 left")
    assert not re.search(r"\d+/\d+ \(\d+%\)", quiet_log)  # no bar left behind unfinished
    assert "{'loss'" not in quiet_log and "'eval_loss'" not in quiet_log  # no Trainer log dicts either


def test_a_log_gets_heartbeats_and_the_end_says_what_it_does(quiet_log):
    lines = quiet_log.splitlines()
    beats = [line for line in lines if HEARTBEAT.match(line)]
    assert any("warm-up turn" in b for b in beats) and any("final training epoch" in b for b in beats), beats
    last_epoch = max(i for i, line in enumerate(lines) if "final training epoch 2 of 2 done" in line)
    said = [re.sub(r"^\[\d+:\d\d\] ", "", line) for line in lines[last_epoch:] if line.startswith("[")]
    phases = ["testing on the test split (24 rows)", "measuring inference latency", "writing the report"]
    assert [s for s in said if s in phases] == phases, said
    assert any(re.fullmatch(r"(measuring inference latency|writing the report) \(\d+:\d\d so far\)", s) for s in said)


def test_no_progress_hides_every_library_bar(quiet_log):
    for bar in BARS:
        assert bar not in quiet_log, bar


def test_default_keeps_the_helpful_bars_and_drops_checkpoint_writes(tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    log = _search(tiny_bert_dir, csv_task, tmp_path / "run")
    assert "tokenize" in log  # tokenising a large file takes a while: its bar stays
    assert not any(HEARTBEAT.match(line) for line in log.splitlines())  # a minute between heartbeats by default
    assert "Writing model shards" not in log  # a checkpoint of a few megabytes: no bar
    assert any(LINE.match(line) for line in log.splitlines())


def test_quiet_loading_silences_the_gguf_bar_and_restores_it():
    import importlib

    from prunepeft.method.backbone import quiet_loading

    gguf = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    original = gguf.tqdm
    with quiet_loading(progress=False):
        assert gguf.tqdm([1, 2]).disable
    assert gguf.tqdm is original


@pytest.mark.parametrize(
    "peft,sizes,k,budget,expected",
    [(8000, [1000] * 8, 1, 2000, 6), (8000, [1000] * 8, 2, 2000, 3), (1500, [500] * 3, 1, 2000, 0)],
)
def test_round_estimate(peft, sizes, k, budget, expected):
    assert estimate_rounds(peft, sizes, k, budget) == expected


def test_heartbeat_of_a_phase_without_steps(monkeypatch, capsys):
    monkeypatch.setenv(progress.HEARTBEAT_ENV, "0.1")
    monkeypatch.setitem(progress._SHOWN, "heartbeat_s", None)  # read again from the environment
    with doing("measuring inference latency"):
        time.sleep(1.0)
    time.sleep(0.3)  # nothing in progress any more: no heartbeat after the phase
    said = [line.split("] ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert said[0] == "measuring inference latency"
    assert 3 <= len(said) <= 12, said  # every 0.1 s at most, and not after the phase
    assert all(re.fullmatch(r"measuring inference latency \(0:0[01] so far\)", s) for s in said[1:]), said


@pytest.mark.parametrize("value", ["soon", "-1", "inf"])
def test_a_malformed_heartbeat_interval_is_refused(monkeypatch, value):
    monkeypatch.setenv(progress.HEARTBEAT_ENV, value)
    monkeypatch.setitem(progress._SHOWN, "heartbeat_s", None)
    with pytest.raises(ConfigError, match=f"{progress.HEARTBEAT_ENV}=.*number of seconds"):
        progress.heartbeat_seconds()


def test_an_interruption_names_the_unit_in_progress_or_the_one_just_done():
    plan = RunPlan()
    assert plan.stopped_when() == "during start-up (before training)"
    plan.where = "warm-up turn 3 of 3 (step 24)"
    assert plan.stopped_when() == "during warm-up turn 3 of 3 (step 24)"
    plan.finished = (plan.where, "warm-up turn 3 of 3")  # its "done" line
    assert plan.stopped_when() == "just after warm-up turn 3 of 3 had finished"
    plan.where = "round 1 of about 6"  # the next unit has begun
    assert plan.stopped_when() == "during round 1 of about 6"


def test_the_trainer_marks_an_epoch_done(tiny_bert_dir, tmp_path):
    """After the last epoch (its validation included) a Ctrl-C is "just after" it, not "during" it."""
    import datasets

    from prunepeft.data.task import TaskData
    from prunepeft.data.tokenizing import tokenize_task
    from prunepeft.runs.training import TrainSettings, make_trainer

    ds = datasets.Dataset.from_dict({"text": [f"film {i}" for i in range(32)], "label": [i % 2 for i in range(32)]})
    task = TaskData(name="toy", train=ds, validation=ds, test=ds, num_labels=2, label_names=None,
                    metric="accuracy", split_note="one table")  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rows = tokenize_task(task, tokenizer, max_length=8)
    settings = TrainSettings(progress=False, batch_size=8, epochs=1)
    trainer = make_trainer(tiny_bert(), tokenizer, task, settings, str(tmp_path / "_final"), rows["train"],
                           rows["validation"], eval_each_epoch=True)  # fmt: skip
    trainer.train()
    assert PLAN.stopped_when() == "just after final training epoch 1 of 1 had finished"
    assert PLAN.doing is None  # the Trainer is done: nothing for a heartbeat to report
