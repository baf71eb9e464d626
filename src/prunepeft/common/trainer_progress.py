"""The Trainer's side of a run's progress lines (``common.progress``): which unit of work a step belongs to (warm-up
turn, round, epoch, learning-rate probe), its line when done, the unit in progress redrawn on a terminal or kept
for the heartbeat in a log, and the time left for the whole run.

transformers is imported only when a Trainer asks for the callback.
"""

from __future__ import annotations

import math
import os
import time

from prunepeft.common.progress import PLAN, clock, estimate_rounds, redrawn, start_heartbeat, write_line


def budget_params(budget: str | None, base: int) -> int | None:
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
    probe = phase == "_probe"  # a learning-rate probe: runs.rate_choice writes its lines, with the rate and result
    pruning = next((c for c in callbacks if hasattr(c, "round_steps") and hasattr(c, "rounds")), None)

    class PhaseProgress(TrainerCallback):
        def __init__(self):
            self.tty = redrawn()
            self.pending: str | None = None
            self.drawn = 0.0
            self.epochs = 1.0
            self.started, self.first_step = time.perf_counter(), 0
            self.label = ""  # a probe's unit: PLAN.where as runs.rate_choice set it before the probe
            self.training = False
            self.batches = 0  # evaluation batches so far
            self.before_evaluation: str | None = None  # what was in progress: back once the evaluation ends

        # ---------------------------------------------------------------- what the current unit is
        def _unit(self, state) -> tuple[str, int, int]:
            """(description, steps done in the unit, steps of the unit)."""
            step = state.global_step
            if probe:
                return self.label, step, max(1, state.max_steps)
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
            return f" · about {clock(left)} left"

        def _line(self, text: str) -> str:
            return f"[{clock(time.perf_counter() - PLAN.start)}] {text}"

        def _show(self, text: str, final: bool) -> None:
            if probe:
                return
            if self.tty:
                write_line("\r\033[K" + self._line(text) + ("\n" if final else ""), line=final)
            elif final:
                write_line(self._line(text) + "\n")

        def _in_progress(self, text: str) -> None:
            """The unit in progress: redrawn on a terminal, kept for the heartbeat in a log (at most every 0.5 s)."""
            if time.perf_counter() - self.drawn > 0.5:
                self.drawn = time.perf_counter()
                PLAN.doing = text
                if self.tty:
                    self._show(text, final=False)

        # ---------------------------------------------------------------- Trainer events
        def on_train_begin(self, args, state, control, **kwargs):
            self.started, self.first_step = time.perf_counter(), state.global_step
            self.epochs = float(args.num_train_epochs)
            if pruning is not None and phase == "_warmup" and PLAN.budget is not None:
                self._plan_rounds(pruning.rounds, kwargs.get("model"))
            self.label, self.training = PLAN.where, True
            PLAN.where = PLAN.doing = self._unit(state)[0]
            PLAN.doing_since = None
            start_heartbeat()

        def _plan_rounds(self, voter, model) -> None:
            """Before the rounds start, estimate how many there will be from the candidates and the budget."""
            candidates = getattr(voter, "candidates", None)
            if not candidates or model is None:
                return
            sizes = [c.n_params for c in candidates.values()]
            base = sum(p.numel() for p in model.parameters()) - sum(sizes)
            budget = budget_params(PLAN.budget, base)
            if budget is not None:
                PLAN.rounds_estimate = estimate_rounds(sum(sizes), sizes, getattr(voter, "k", 1), budget)

        def on_step_end(self, args, state, control, **kwargs):
            text, done, total = self._unit(state)
            PLAN.where = f"{text} (step {state.global_step})"
            unit_over = done >= total if pruning is not None else False
            if unit_over:
                self._finish(text, f"done ({total} step{'s' if total > 1 else ''})", control, state)
            else:
                self._in_progress(f"{text}: step {done} of {total}{self._left(state)}")

        def on_prediction_step(self, args, state, control, **kwargs):
            if not self.batches:
                self.before_evaluation = PLAN.doing
            self.batches += 1
            loader = kwargs.get("eval_dataloader")
            of = f" of {len(loader)}" if loader is not None and hasattr(loader, "__len__") else ""
            what = f"validation, {PLAN.where}" if self.training else PLAN.where  # else: a phase's own (the test)
            self._in_progress(f"{what}: batch {self.batches}{of}")

        def on_epoch_end(self, args, state, control, **kwargs):
            if pruning is None and not probe:
                per_epoch = max(1, math.ceil(state.max_steps / max(self.epochs, 1e-9)))
                epoch = max(1, math.ceil(state.global_step / per_epoch))
                name = "final training epoch" if phase == "_final" else "training epoch"
                self._finish(f"{name} {epoch} of {_epochs(self.epochs)}", "done", control, state)

        def _finish(self, text: str, note: str, control, state) -> None:
            PLAN.finished, PLAN.doing = (PLAN.where, text), f"just after {text}"
            if control.should_evaluate:  # show the validation metric with it, once it is known
                self.pending = f"{text} {note}"
                return
            self._show(f"{text} {note}{self._left(state)}", final=True)

        def _evaluated(self) -> None:
            if self.batches:
                self.batches, PLAN.doing = 0, self.before_evaluation

        def on_predict(self, args, state, control, metrics=None, **kwargs):
            self._evaluated()

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self._evaluated()
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
            self.training, PLAN.doing = False, None
            if self.tty:
                write_line("\r\033[K", line=False)

    return PhaseProgress()


def _epochs(epochs: float) -> str:
    return str(int(epochs)) if float(epochs).is_integer() else f"{epochs:g}"
