"""What a search shows while it works: one line per warm-up turn, round and final-training epoch with the time
so far and the time left for the whole run; --no-progress hides every library progress bar."""

import re
import subprocess
import sys

import pytest

from prunepeft.common.progress import estimate_rounds
from test_search import csv_task  # noqa: F401  (fixture)

ARGS = ["--epochs", "2", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--round-epochs", "0.3", "--budget", "2000"]  # fmt: skip
BARS = ("Loading weights", "Writing model shards", "tokenize", "it/s]", "examples/s]", "Converting and de-quantizing")
LINE = re.compile(r"^\[\d+:\d\d\] (warm-up turn \d+ of 3|round \d+ of about \d+|final training epoch \d of 2) done")


def _search(model, task, out, *extra):
    done = subprocess.run(
        [sys.executable, "-m", "prunepeft", "search", "--model", model, "--task", task, "--output-dir", str(out),
         *ARGS, *extra],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


@pytest.fixture(scope="module")
def quiet_log(tiny_bert_dir, csv_task, tmp_path_factory):  # noqa: F811
    return _search(tiny_bert_dir, csv_task, tmp_path_factory.mktemp("quiet") / "run", "--no-progress")


def test_one_line_per_phase_with_time_left(quiet_log):
    lines = [line for line in quiet_log.splitlines() if LINE.match(line)]
    kinds = [LINE.match(line).group(1).split(" ")[0] for line in lines]
    assert kinds[:3] == ["warm-up"] * 3 and "round" in kinds and kinds[-2:] == ["final", "final"], lines
    assert all(" left" in line for line in lines), lines
    assert "final training epoch 2 of 2 done, validation accuracy" in lines[-1]
    assert lines[-1].endswith("about 0:00 left")
    assert not re.search(r"\d+/\d+ \(\d+%\)", quiet_log)  # no bar left behind unfinished
    assert "{'loss'" not in quiet_log and "'eval_loss'" not in quiet_log  # no Trainer log dicts either


def test_no_progress_hides_every_library_bar(quiet_log):
    for bar in BARS:
        assert bar not in quiet_log, bar


def test_default_keeps_the_helpful_bars_and_drops_checkpoint_writes(tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    log = _search(tiny_bert_dir, csv_task, tmp_path / "run")
    assert "tokenize" in log  # tokenising a large file takes a while: its bar stays
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
