"""Ctrl-C (SIGINT) and SIGTERM: one line saying where the run stopped, the resume command, exit 130 / 143 within
seconds of the signal, no traceback, and nothing finished is lost (the run resumes to the same recipe). Real
signals sent to a real search subprocess, at the moments its progress lines announce."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from prunepeft.common.progress import HEARTBEAT_ENV
from test_resume import _comparable
from test_search import BAD, GOOD, csv_task  # noqa: F401  (fixture)

ARGS = ["--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--round-epochs", "0.3", "--budget", "2000", "--no-progress"]  # fmt: skip


def _start(model, task, out, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "prunepeft", "search", "--model", model, "--task", task, "--output-dir", str(out),
         *ARGS, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
    )  # fmt: skip


def _default_sigint():
    """A shell starts background jobs (`cmd &`, as CI may) with SIGINT ignored, and Python keeps it ignored: the
    run under test gets the default, as from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(condition, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the run never reached the point to interrupt")


def _log_phases(out):
    path = out / "search_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["phase"] for line in path.read_text().splitlines() if line.strip()]


def _stopped(proc, sig, out):
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-2].startswith("prunepeft: stopped by " + signal.Signals(sig).name), lines[-3:]
    assert lines[-1] == f"prunepeft: continue with: prunepeft search --resume {out}", lines[-3:]
    return proc.returncode, lines[-2]


# A search whose every unit of work lasts about a second on the tiny model: long enough to be caught in it.
LONG = ["--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--round-epochs", "0.3", "--budget", "4500", "--epochs", "1", "--learning-rate", "1e-3",
        "--checkpoint-every", "0", "--no-progress"]  # fmt: skip

# (the moment, what announces it: a file of the run or a progress line, words the stop message must hold)
MOMENTS = [
    ("start-up", "run_config.json", ("start-up",)),
    ("warm-up", r"warm-up turn \d of 3: step", ("warm-up turn",)),
    ("a round", r"round \d+ of about \d+: step", ("round",)),
    ("between rounds", r"round \d+ of about \d+ done", ("round",)),
    ("final training", r"final training epoch 1 of 1: step", ("final training",)),
    ("test", r"testing on the test split", ("testing", "latency", "report")),
]


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory):
    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(1600):
        words = rng.choices(GOOD if i % 2 else BAD, k=4) + rng.choices(GOOD + BAD, k=2)
        rows.append(f"{' '.join(rng.sample(words, len(words)))} film {i},{i % 2}")
    path = tmp_path_factory.mktemp("long") / "long.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


class _Run:
    """A prunepeft process whose stderr lines are read as they come (a heartbeat every 0.1 s in its log)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prunepeft", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, preexec_fn=_default_sigint, env={**os.environ, HEARTBEAT_ENV: "0.1"},
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def tail(self) -> str:
        return "\n".join(self.lines[-25:])

    def wait_for(self, moment: str, out, timeout=300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if (out / moment).exists() if moment.endswith(".json") else any(re.search(moment, x) for x in self.lines):
                return
            assert self.proc.poll() is None, f"ended before {moment!r}:\n{self.tail()}"
            time.sleep(0.02)
        self.proc.kill()
        raise AssertionError(f"never reached {moment!r}:\n{self.tail()}")

    def interrupt(self) -> tuple[int, float, list[str]]:
        """SIGINT; the exit status, the seconds it took to exit, and the last lines that are not progress lines."""
        sent = time.perf_counter()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)  # generous for a loaded machine: it exits within seconds
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.reader.join(5)
            raise AssertionError(f"still running 30 s after SIGINT:\n{self.tail()}") from None
        seconds = time.perf_counter() - sent
        self.reader.join(5)
        said = [x for x in self.lines if x.strip() and not x.startswith("[")]  # heartbeats may race the message
        return self.proc.returncode, seconds, said[-2:]


@pytest.mark.slow  # seven short runs and a reference: about two minutes on two busy cores
def test_sigint_at_every_moment_of_a_search_then_resume_to_the_same_recipe(tiny_bert_dir, long_csv, tmp_path):
    """Interrupted at start-up, in the warm-up, in a round, between rounds, in the final training and in the test,
    each time resumed: exit 130 each time, and the same recipe, search log and test metrics as a run left alone."""
    ref = tmp_path / "reference"
    alone = subprocess.run([sys.executable, "-m", "prunepeft", "search", "--model", tiny_bert_dir, "--task", long_csv,
                            "--output-dir", str(ref), *LONG], capture_output=True, text=True, timeout=900)  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-3000:]
    out = tmp_path / "run"
    command = ["search", "--model", tiny_bert_dir, "--task", long_csv, "--output-dir", str(out), *LONG]
    for moment, announced, names in MOMENTS:
        run = _Run(*command)
        run.wait_for(announced, out)
        code, seconds, said = run.interrupt()
        assert code == 130 and "Traceback" not in run.tail(), (moment, code, f"{seconds:.1f} s", run.tail())
        assert said[0].startswith("prunepeft: stopped by SIGINT "), (moment, said)
        assert any(name in said[0] for name in names), (moment, said)
        assert said[1] == f"prunepeft: continue with: prunepeft search --resume {out}", (moment, said)
        command = ["search", "--resume", str(out)]
    resumed = subprocess.run([sys.executable, "-m", "prunepeft", *command], capture_output=True, text=True,
                             timeout=900)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _comparable(out) == _comparable(ref)


def test_sigterm_during_the_search_then_resume(tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    proc = _start(tiny_bert_dir, csv_task, out, "--epochs", "1")
    _wait_for(lambda: "round" in _log_phases(out), proc)
    rounds_before = _log_phases(out).count("round")
    code, where = _stopped(proc, signal.SIGTERM, out)
    assert code == 143
    assert "round" in where or "final training" in where, where
    resumed = subprocess.run([sys.executable, "-m", "prunepeft", "search", "--resume", str(out)],
                             capture_output=True, text=True, timeout=600, env={**os.environ})  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _log_phases(out).count("round") >= rounds_before
    assert (out / "results.json").exists()
