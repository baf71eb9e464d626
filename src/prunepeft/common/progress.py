"""What a run shows while it works.

* One line per unit of work of each phase: warm-up turn t of T, round i of about n, final training epoch e of
  E, each with the time since the run started and an estimate of the time left for the whole run. On a
  terminal the line of the unit in progress is redrawn in place (step s of S); in a log file only the finished
  units appear, one line each. This replaces the Trainer's own bar, which a search leaves unfinished (it stops
  as soon as the budget is met) and which knows nothing about the phases before and after it.
* ``set_progress(False)`` (``--no-progress``) hides every progress bar of the libraries as well: tokenizer
  ``map`` bars (datasets), "Loading weights" / "Writing model shards" (transformers), GGUF conversion,
  downloads. The phase lines stay: they are a log, one line per turn, round or epoch.

torch and transformers are imported only when a Trainer asks for the callback.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

_SHOWN = {"progress": True}

PHASES = {"_warmup": "warm-up", "_search": "search", "_final": "final training"}


def progress_shown() -> bool:
    return _SHOWN["progress"]


def set_progress(shown: bool) -> None:
    """Show (the default) or hide the progress bars of every library a run uses."""
    _SHOWN["progress"] = shown
    if not shown and "tqdm" not in sys.modules:
        os.environ["TQDM_DISABLE"] = "1"  # read by tqdm when it is imported: covers bars we cannot reach
    if "datasets" in sys.modules or not shown:
        import datasets

        (datasets.enable_progress_bars if shown else datasets.disable_progress_bars)()
    if "transformers" in sys.modules or not shown:
        from transformers.utils import logging as hf_logging

        (hf_logging.enable_progress_bar if shown else hf_logging.disable_progress_bar)()


def _clock(seconds: float) -> str:
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
    where: str = "before training started"  # the unit in progress, for an interruption message
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


def _budget_params(budget: str | None, base: int) -> int | None:
    if budget is None:
        return None
    text = str(budget).strip()
    try:
        value = float(text.rstrip("%"))
    except ValueError:
        return None
    if text.endswith("%"):
        return int(value / 100 * base)
    return int(value * base) if value < 1 else int(value)


def phase_callback(output_dir: str, callbacks: list):
    """Our progress callback for a Trainer working in ``output_dir`` (its phase is the folder's name)."""
    from transformers import TrainerCallback

    phase = os.path.basename(os.path.normpath(output_dir))
    pruning = next((c for c in callbacks if hasattr(c, "round_steps") and hasattr(c, "rounds")), None)

    class PhaseProgress(TrainerCallback):
        def __init__(self):
            self.tty = sys.stderr.isatty() and progress_shown()
            self.pending: str | None = None
            self.drawn = 0.0
            self.epochs = 1.0
            self.started, self.first_step = time.perf_counter(), 0

        # ---------------------------------------------------------------- what the current unit is
        def _unit(self, state) -> tuple[str, int, int]:
            """(description, steps done in the unit, steps of the unit)."""
            step = state.global_step
            if pruning is not None:
                unit = pruning.round_steps
                index = max(1, math.ceil(step / unit))  # the turn or round this step belongs to
                within = step - (index - 1) * unit
                if phase == "_warmup":
                    turns = max(1, state.max_steps // unit)
                    return f"warm-up turn {index} of {turns}", within, unit
                total = getattr(pruning.rounds, "round", index - 1) + self._rounds_left(pruning.rounds)
                PLAN.rounds_estimate = max(total, index)
                return f"round {index} of about {max(total, index)}", within, unit
            per_epoch = max(1, math.ceil(state.max_steps / max(self.epochs, 1e-9)))
            epoch = min(math.ceil(self.epochs), max(1, math.ceil(step / per_epoch)))
            name = "final training epoch" if phase == "_final" else "training epoch"
            return f"{name} {epoch} of {_epochs(self.epochs)}", step - (epoch - 1) * per_epoch, per_epoch

        def _rounds_left(self, rounds) -> int:
            alive = getattr(rounds, "alive", None)
            if not alive:
                return 1
            sizes = [c.n_params for c in alive.values()]
            return estimate_rounds(sum(sizes), sizes, getattr(rounds, "k", 1), getattr(rounds, "budget_params", 0))

        # ---------------------------------------------------------------- time left for the whole run
        def _left(self, state) -> str:
            done = state.global_step - self.first_step
            if done <= 0:
                return ""
            speed = (time.perf_counter() - self.started) / done
            PLAN.seconds_per_step = speed
            if pruning is not None and phase == "_search":
                rounds = pruning.rounds
                total = getattr(rounds, "round", 0) + self._rounds_left(rounds)
                remaining = max(0, total * pruning.round_steps - state.global_step)
            else:
                remaining = max(0, state.max_steps - state.global_step)
            left = (remaining + PLAN.steps_after(phase)) * speed
            return f" · about {_clock(left)} left"

        def _line(self, text: str) -> str:
            return f"[{_clock(time.perf_counter() - PLAN.start)}] {text}"

        def _show(self, text: str, final: bool) -> None:
            from prunepeft.common.distributed import is_main_process

            if not is_main_process():
                return
            if self.tty:
                sys.stderr.write("\r\033[K" + self._line(text) + ("\n" if final else ""))
            elif final:
                sys.stderr.write(self._line(text) + "\n")
            sys.stderr.flush()

        # ---------------------------------------------------------------- Trainer events
        def on_train_begin(self, args, state, control, **kwargs):
            self.started, self.first_step = time.perf_counter(), state.global_step
            self.epochs = float(args.num_train_epochs)
            if pruning is not None and phase == "_warmup" and PLAN.budget is not None:
                self._plan_rounds(pruning.rounds, kwargs.get("model"))
            PLAN.where = self._unit(state)[0]

        def _plan_rounds(self, voter, model) -> None:
            """Before the rounds start, estimate how many there will be from the candidates and the budget."""
            candidates = getattr(voter, "candidates", None)
            if not candidates or model is None:
                return
            sizes = [c.n_params for c in candidates.values()]
            base = sum(p.numel() for p in model.parameters()) - sum(sizes)
            budget = _budget_params(PLAN.budget, base)
            if budget is not None:
                PLAN.rounds_estimate = estimate_rounds(sum(sizes), sizes, getattr(voter, "k", 1), budget)

        def on_step_end(self, args, state, control, **kwargs):
            text, done, total = self._unit(state)
            PLAN.where = f"{text} (step {state.global_step})"
            unit_over = done >= total if pruning is not None else False
            if unit_over:
                self._finish(text, f"done ({total} step{'s' if total > 1 else ''})", control, state)
            elif self.tty and time.perf_counter() - self.drawn > 0.5:
                self.drawn = time.perf_counter()
                self._show(f"{text}: step {done} of {total}{self._left(state)}", final=False)

        def on_epoch_end(self, args, state, control, **kwargs):
            if pruning is None:
                per_epoch = max(1, math.ceil(state.max_steps / max(self.epochs, 1e-9)))
                epoch = max(1, math.ceil(state.global_step / per_epoch))
                name = "final training epoch" if phase == "_final" else "training epoch"
                self._finish(f"{name} {epoch} of {_epochs(self.epochs)}", "done", control, state)

        def _finish(self, text: str, note: str, control, state) -> None:
            if control.should_evaluate:  # show the validation metric with it, once it is known
                self.pending = f"{text} {note}"
                return
            self._show(f"{text} {note}{self._left(state)}", final=True)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if self.pending is None:
                return
            values = {
                k.removeprefix("eval_"): v
                for k, v in (metrics or {}).items()
                if k.startswith("eval_") and isinstance(v, float) and not k.endswith(("_runtime", "per_second"))
                and k != "eval_epoch"
            }  # fmt: skip
            names = [k for k in values if k != "loss"][:1] + (["loss"] if "loss" in values else [])
            shown = [f"validation {k} {values[k]:.4f}" for k in names]
            self._show(f"{self.pending}{', ' + ', '.join(shown) if shown else ''}{self._left(state)}", final=True)
            self.pending = None

        def on_train_end(self, args, state, control, **kwargs):
            PLAN.phases_done.add(phase)
            if self.tty:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()

    return PhaseProgress()


def _epochs(epochs: float) -> str:
    return str(int(epochs)) if float(epochs).is_integer() else f"{epochs:g}"
