"""Ctrl-C (SIGINT) and SIGTERM: one line saying where the run stopped, the resume command, exit 130 / 143, no
traceback, and nothing finished is lost (the run resumes). Real signals sent to a real search subprocess."""

import json
import os
import signal
import subprocess
import sys
import time

from test_search import csv_task  # noqa: F401  (fixture)

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


def test_sigint_during_the_final_training(tiny_bert_dir, csv_task, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    proc = _start(tiny_bert_dir, csv_task, out, "--epochs", "20000")  # far longer than the wait, however fast
    _wait_for(lambda: (out / "recipe.json").exists(), proc)  # the search is over; final training has begun
    time.sleep(1.0)
    code, where = _stopped(proc, signal.SIGINT, out)
    assert code == 130
    assert "final training" in where, where
    assert (out / "recipe.json").exists() and (out / "search_log.jsonl").exists()  # the search's results stay


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
