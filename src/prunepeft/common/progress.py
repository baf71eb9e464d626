"""What a run shows while it works.

* One line per unit of work of each phase: warm-up turn t of T, round i of about n, final training epoch e of
  E, each with the time since the run started and an estimate of the time left for the whole run. On a
  terminal the line of the unit in progress is redrawn in place (step s of S); in a log file only the finished
  units appear, one line each. This replaces the Trainer's own bar, which a search leaves unfinished (it stops
  as soon as the budget is met) and which knows nothing about the phases before and after it.
* ``set_progress(False)`` (``--no-progress``) hides every progress bar of the libraries as well: tokenizer
  ``map`` bars (datasets), "Loading weights" / "Writing model shards" (transformers), GGUF conversion,
  downloads. The phase lines stay: they are a log, one line per turn, round or epoch.
* The phases without steps to count (the test, the latency measurement, the report) say what they do as they
  begin (``doing``). In a log, a heartbeat line says what is in progress whenever nothing was written for a
  minute (``PRUNEPEFT_HEARTBEAT_SECONDS``; 0 turns it off): a long epoch, test or latency measurement is no
  longer minutes of silence.
* ``PLAN.stopped_when()`` names the unit an interruption stopped: the one in progress, or the one that had just
  finished when nothing had started since.

The Trainer's side (which unit a step belongs to) is ``common.trainer_progress``.
"""

from __future__ import annotations

import atexit
import math
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from prunepeft.common.config import ConfigError
from prunepeft.common.interrupts import check as check_interrupted
from prunepeft.common.interrupts import interrupted

_SHOWN: dict = {"progress": True, "heartbeat_s": None}
HEARTBEAT_ENV = "PRUNEPEFT_HEARTBEAT_SECONDS"


def progress_shown() -> bool:
    return _SHOWN["progress"]


def set_progress(shown: bool) -> None:
    """Show (the default) or hide the progress bars of every library a run uses."""
    _SHOWN["progress"], _SHOWN["heartbeat_s"] = shown, None
    heartbeat_seconds()  # read now: a malformed PRUNEPEFT_HEARTBEAT_SECONDS is refused before the run starts
    if not shown and "tqdm" not in sys.modules:
        os.environ["TQDM_DISABLE"] = "1"  # read by tqdm when it is imported: covers bars we cannot reach
    if "datasets" in sys.modules or not shown:
        import datasets

        (datasets.enable_progress_bars if shown else datasets.disable_progress_bars)()
    if "transformers" in sys.modules or not shown:
        from transformers.utils import logging as hf_logging

        (hf_logging.enable_progress_bar if shown else hf_logging.disable_progress_bar)()


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class RunPlan:
    """What the whole run will do, as far as it is known: filled in by the command line and the jobs."""

    start: float = field(default_factory=time.perf_counter)
    search: bool = False  # a search (warm-up, rounds, then final training) rather than a training run
    budget: str | None = None
    train_rows: int | None = None  # final training rows
    search_fraction: float = 1.0
    round_epochs: float = 0.15
    hybrid: bool = True
    epochs: float = 3.0
    batch_size: int = 32
    where: str = "start-up (before training)"  # the unit in progress, for an interruption message
    finished: tuple[str, str] | None = None  # (where, the unit) when a unit's line said "done"
    doing: str | None = None  # what a heartbeat line says is in progress (None: nothing to report)
    doing_since: float | None = None  # when a phase without steps began (its heartbeat says how long so far)
    last_line: float = field(default_factory=time.perf_counter)  # when a line was last written
    phases_done: set = field(default_factory=set)
    seconds_per_step: float | None = None  # measured in the latest phase
    rounds_estimate: int | None = None

    def steps_per_epoch(self, rows: float) -> int:
        return max(1, math.ceil(rows / self.batch_size))

    def final_steps(self) -> int:
        if self.train_rows is None:
            return 0
        return math.ceil(self.epochs * self.steps_per_epoch(self.train_rows))

    def round_steps(self) -> int:
        if self.train_rows is None:
            return 0
        return max(1, round(self.round_epochs * self.steps_per_epoch(self.train_rows * self.search_fraction)))

    def stopped_when(self) -> str:
        """When an interruption stopped the run, for its message: "during round 2 of about 6 (step 40)", or
        "just after warm-up turn 3 of 3 had finished" while nothing has started since that unit's done line."""
        if self.finished is not None and self.finished[0] == self.where:
            return f"just after {self.finished[1]} had finished"
        return f"during {self.where}"

    def steps_after(self, phase: str) -> int:
        """Steps of the phases that follow ``phase`` (estimated)."""
        if not self.search or phase == "_final":
            return 0
        later = self.final_steps()
        if phase == "_warmup":
            later += (self.rounds_estimate or 1) * self.round_steps()
        return later


PLAN = RunPlan()


def new_plan(**settings) -> RunPlan:
    """Start a new run's plan (in place: modules hold on to PLAN)."""
    PLAN.__dict__.update(RunPlan(**settings).__dict__)
    return PLAN


def estimate_rounds(peft_params: int, sizes: list[int], k: int, budget_params: int) -> int:
    """Rounds of k removals of average-size candidates until the PEFT parameters fit the budget."""
    if peft_params <= budget_params or not sizes:
        return 0
    mean = sum(sizes) / len(sizes)
    return max(1, math.ceil((peft_params - budget_params) / (max(k, 1) * mean)))


def show_line(text: str) -> None:
    """One finished line of a phase that writes its own (the learning-rate probes), after the run's clock."""
    write_line(f"[{clock(time.perf_counter() - PLAN.start)}] {text}\n")


_WRITING = threading.Lock()  # the heartbeat writes from its own thread


def write_line(text: str, line: bool = True) -> None:
    """Write to stderr (main process only); ``line``: a whole line, which puts the heartbeat off."""
    from prunepeft.common.distributed import is_main_process

    if not is_main_process():
        return
    with _WRITING:
        sys.stderr.write(text)
        sys.stderr.flush()
    if line:
        PLAN.last_line = time.perf_counter()


def redrawn() -> bool:
    """Whether the unit in progress is redrawn in place (a terminal, bars shown); otherwise stderr is a log."""
    return sys.stderr.isatty() and progress_shown()


@contextmanager
def doing(text: str):
    """A phase without steps to count ("testing on 1,000 rows", "writing the report"): its line as it begins,
    heartbeat lines in a log while it lasts, and the place an interruption names."""
    check_interrupted()
    PLAN.where = text
    show_line(text)
    PLAN.doing, PLAN.doing_since = text, time.perf_counter()
    start_heartbeat()
    try:
        yield
    finally:
        PLAN.finished = (PLAN.where, text)
        PLAN.doing = PLAN.doing_since = None


def heartbeat_seconds() -> float:
    """Seconds without a line after which a log gets a heartbeat line (PRUNEPEFT_HEARTBEAT_SECONDS, 60; 0: none)."""
    if _SHOWN["heartbeat_s"] is None:
        text = os.environ.get(HEARTBEAT_ENV, "60")
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0 or math.isinf(seconds):
            raise ConfigError(f"{HEARTBEAT_ENV}={text!r}: give a number of seconds (60 by default; 0 for none).")
        _SHOWN["heartbeat_s"] = seconds
        _HEARTBEAT["wake"].set()  # a thread waiting out the former interval takes the new one now
    return _SHOWN["heartbeat_s"]


_HEARTBEAT: dict = {"thread": None, "stop": False, "wake": threading.Event()}


def start_heartbeat() -> None:
    """Once per process, in a log: the thread that writes the heartbeat lines."""
    from prunepeft.common.distributed import is_main_process

    if not heartbeat_seconds() or redrawn() or not is_main_process() or _HEARTBEAT["thread"] is not None:
        return
    thread = threading.Thread(target=_beat, name="prunepeft-heartbeat", daemon=True)
    _HEARTBEAT["thread"] = thread
    thread.start()
    atexit.register(_stop_heartbeat)  # before the interpreter shuts stderr down under a daemon thread


def _stop_heartbeat() -> None:
    _HEARTBEAT["stop"] = True
    _HEARTBEAT["wake"].set()
    _HEARTBEAT["thread"].join(timeout=2)


def _beat() -> None:
    """A line saying what is in progress whenever nothing was written for the heartbeat interval; nothing once
    the run has been interrupted (its message is the last word)."""
    while not _HEARTBEAT["stop"]:
        _HEARTBEAT["wake"].wait(min(1.0, (_SHOWN["heartbeat_s"] or 4.0) / 4))
        _HEARTBEAT["wake"].clear()
        every, what, since, now = _SHOWN["heartbeat_s"], PLAN.doing, PLAN.doing_since, time.perf_counter()
        if not every or what is None or interrupted() or now - PLAN.last_line < every:
            continue
        so_far = f" ({clock(now - since)} so far)" if since is not None else ""
        write_line(f"[{clock(now - PLAN.start)}] {what}{so_far}\n")
