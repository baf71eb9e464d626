"""Recording the statistics of the criteria during ordinary training steps, and the TrainerCallback that
ends a round every ``round_steps`` optimizer steps.

No extra forward or backward pass is made: activations are read by the candidates' observers during the
normal forward pass, gradients in ``on_pre_optimizer_step`` (after gradient clipping, before the update;
by ``on_step_end`` the Trainer has zeroed them).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from transformers import TrainerCallback

from prunepeft.criteria import UnitStats
from prunepeft.distributed import all_reduce_sum
from prunepeft.space import Candidate


class StatsRecorder:
    """Per-candidate sums for the activation, gradient and sensitivity criteria."""

    def __init__(self, candidates: dict[str, Candidate]):
        self.candidates = dict(candidates)
        self._zero()
        for name, cand in self.candidates.items():
            for wrapper in cand.wrappers:
                wrapper.observer = self._observer(name)

    def _zero(self) -> None:
        zero = lambda: torch.zeros((), dtype=torch.float64)  # noqa: E731
        self._act = {n: zero() for n in self.candidates}
        self._calls = dict.fromkeys(self.candidates, 0)
        self._grad = {n: zero() for n in self.candidates}
        self._sens = {n: zero() for n in self.candidates}
        self._steps = 0

    def _observer(self, name: str) -> Callable[[torch.Tensor], None]:
        def observe(delta: torch.Tensor) -> None:
            if not torch.is_grad_enabled():  # evaluation passes do not count
                return
            acc = self._act[name]
            # reduce in the tensor's own dtype (no float64 copy of the activations), accumulate in float64
            self._act[name] = acc.to(delta.device) + delta.detach().abs().mean().double()
            self._calls[name] += 1

        return observe

    def after_backward(self) -> None:
        """Accumulate |G| and |W*G| of every surviving candidate (call when gradients are final)."""
        self._steps += 1
        with torch.no_grad():
            for name, cand in self.candidates.items():
                for p in cand.parameters():
                    if p.grad is None:
                        continue
                    g = p.grad.detach()  # sums stay on the device: no host sync per step
                    self._grad[name] = self._grad[name].to(g.device) + g.abs().sum().double()
                    self._sens[name] = self._sens[name].to(g.device) + (p * g).abs().sum().double()

    def take(self) -> dict[str, UnitStats]:
        """The round's statistics as plain numbers, summed over all processes (so that every process takes
        the same decision); the sums start again from zero."""
        names = list(self.candidates)
        flat = [float(self._act[n]) for n in names] + [float(self._calls[n]) for n in names]
        flat += [float(self._grad[n]) for n in names] + [float(self._sens[n]) for n in names] + [float(self._steps)]
        flat = all_reduce_sum(flat)
        k = len(names)
        out = {
            n: UnitStats(
                activation_sum=flat[i],
                activation_calls=int(flat[k + i]),
                grad_abs_sum=flat[2 * k + i],
                sensitivity_sum=flat[3 * k + i],
                grad_steps=int(flat[-1]),
            )
            for i, n in enumerate(names)
        }
        self._zero()
        return out

    def forget(self, name: str) -> None:
        """Stop recording a removed candidate."""
        cand = self.candidates.pop(name)
        for wrapper in cand.wrappers:
            wrapper.observer = None
        for table in (self._act, self._calls, self._grad, self._sens):
            table.pop(name, None)

    def close(self) -> None:
        for name in list(self.candidates):
            self.forget(name)


class PrunePEFTCallback(TrainerCallback):
    """Ends a round every ``round_steps`` optimizer steps and hands the round to ``rounds``.

    ``rounds`` is any object with ``recorder`` (a StatsRecorder) and
    ``end_round(step, metrics, optimizer) -> bool`` returning True when the search is finished.
    With ``evaluate=True`` the Trainer evaluates on its eval set first and the metrics reach the round.
    """

    def __init__(
        self, rounds, round_steps: int, evaluate: bool = True, save_state: Callable[[str], None] | None = None
    ):
        if round_steps < 1:
            raise ValueError("round_steps must be at least 1")
        self.rounds = rounds
        self.round_steps = round_steps
        self.evaluate = evaluate
        self.save_state = save_state  # writes the search state into each Trainer checkpoint folder
        self._pending = False

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.rounds.recorder.after_backward()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.round_steps:
            return control
        if self.evaluate:
            self._pending = True
            control.should_evaluate = True
            return control
        return self._finish(state, control, {}, kwargs.get("optimizer"))

    def on_save(self, args, state, control, **kwargs):
        if self.save_state is not None:
            self.save_state(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not self._pending:
            return control
        self._pending = False
        return self._finish(state, control, dict(metrics or {}), kwargs.get("optimizer"))

    def _finish(self, state, control, metrics, optimizer):
        if self.rounds.end_round(state.global_step, metrics, optimizer):
            control.should_training_stop = True
        return control


class NonFiniteLossError(RuntimeError):
    """Training diverged."""


class FiniteLossCallback(TrainerCallback):
    """Stops the run with a clear message when the logged training loss is NaN or infinite."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"the training loss became {loss} at step {state.global_step}. Lower --learning-rate (now "
                f"{args.learning_rate:g}) or check the data; finished rounds are kept and `--resume` continues "
                "from the last good checkpoint."
            )
