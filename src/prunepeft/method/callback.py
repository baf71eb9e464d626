"""Recording the statistics of the criteria during ordinary training steps, and the TrainerCallback that
ends a round every ``round_steps`` optimizer steps.

No extra forward or backward pass is made: activations are read by the candidates' observers during the
normal forward pass, gradients in ``on_pre_optimizer_step`` (after gradient clipping, before the update;
by ``on_step_end`` the Trainer has zeroed them).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import torch
from transformers import TrainerCallback

from prunepeft.common.distributed import all_reduce_sum
from prunepeft.method.candidates import Candidate
from prunepeft.method.criteria import UnitStats


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
        self._act_sq = {n: zero() for n in self.candidates}
        self._calls = dict.fromkeys(self.candidates, 0)
        self._grad = {n: zero() for n in self.candidates}
        self._grad_sq = {n: zero() for n in self.candidates}
        self._sens = {n: zero() for n in self.candidates}
        self._sens_sq = {n: zero() for n in self.candidates}
        self._steps = 0

    def _tables(self) -> tuple[dict, ...]:
        """The per-candidate tables, in the order ``take`` reads them."""
        return self._act, self._calls, self._grad, self._sens, self._act_sq, self._grad_sq, self._sens_sq

    def _observer(self, name: str) -> Callable[[torch.Tensor], None]:
        def observe(delta: torch.Tensor) -> None:
            if not torch.is_grad_enabled():  # evaluation passes do not count
                return
            # reduce in the tensor's own dtype (no float64 copy of the activations), accumulate in float64
            value = delta.detach().abs().mean().double()
            self._act[name] = self._act[name].to(value.device) + value
            self._act_sq[name] = self._act_sq[name].to(value.device) + value * value
            self._calls[name] += 1

        return observe

    def after_backward(self) -> None:
        """Accumulate |G| and |W*G| of every surviving candidate (call when gradients are final)."""
        self._steps += 1
        with torch.no_grad():
            for name, cand in self.candidates.items():
                grads = [(p, p.grad.detach()) for p in cand.parameters() if p.grad is not None]
                if not grads:
                    continue
                # one value per candidate and step (its sum and square feed the noise estimate); sums stay on
                # the device: no host sync per step
                grad = sum(g.abs().sum().double() for _, g in grads)
                sens = sum((p * g).abs().sum().double() for p, g in grads)
                self._grad[name] = self._grad[name].to(grad.device) + grad
                self._grad_sq[name] = self._grad_sq[name].to(grad.device) + grad * grad
                self._sens[name] = self._sens[name].to(sens.device) + sens
                self._sens_sq[name] = self._sens_sq[name].to(sens.device) + sens * sens

    def take(self) -> dict[str, UnitStats]:
        """The round's statistics as plain numbers, summed over all processes (so that every process takes
        the same decision); the sums start again from zero."""
        names = list(self.candidates)
        flat = [float(table[n]) for table in self._tables() for n in names] + [float(self._steps)]
        flat = all_reduce_sum(flat)
        k = len(names)
        column = lambda t, i: flat[t * k + i]  # noqa: E731
        out = {
            n: UnitStats(
                activation_sum=column(0, i),
                activation_calls=int(column(1, i)),
                grad_abs_sum=column(2, i),
                sensitivity_sum=column(3, i),
                grad_steps=int(flat[-1]),
                activation_sq=column(4, i),
                grad_abs_sq=column(5, i),
                sensitivity_sq=column(6, i),
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
        for table in self._tables():
            table.pop(name, None)

    def close(self) -> None:
        for name in list(self.candidates):
            self.forget(name)


class PrunePEFTCallback(TrainerCallback):
    """Ends a round every ``round_steps`` optimizer steps and hands the round to ``rounds``.

    ``rounds`` is any object with ``recorder`` (a StatsRecorder) and
    ``end_round(step, metrics, optimizer) -> bool`` returning True when the search is finished.
    With ``evaluate=True`` the Trainer evaluates on its eval set first and the metrics reach the round.
    With ``save_state``, a resumable checkpoint (the Trainer's, then ``save_state`` into its folder) follows
    the end of a round once ``checkpoint_every`` seconds have passed since the last one (0: after every
    round); never after the last round, whose result the caller writes itself. The Trainer's own save
    strategy should then be "no".
    """

    def __init__(
        self,
        rounds,
        round_steps: int,
        evaluate: bool = True,
        save_state: Callable[[str], None] | None = None,
        checkpoint_every: float = 0.0,
    ):
        if round_steps < 1:
            raise ValueError("round_steps must be at least 1")
        self.rounds = rounds
        self.round_steps = round_steps
        self.evaluate = evaluate
        self.save_state = save_state  # writes the search state into each Trainer checkpoint folder
        self.checkpoint_every = checkpoint_every
        self._pending = False
        self._saved_at = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self._saved_at = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.rounds.recorder.after_backward()

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.round_steps:
            return control
        if self.save_state is not None and time.perf_counter() - self._saved_at >= self.checkpoint_every:
            control.should_save = True  # after the round's end (below, or after the evaluation)
        if self.evaluate:
            self._pending = True
            control.should_evaluate = True
            return control
        return self._finish(state, control, {}, kwargs.get("optimizer"))

    def on_save(self, args, state, control, **kwargs):
        if self.save_state is not None:
            self.save_state(os.path.join(args.output_dir, f"checkpoint-{state.global_step}"))
            self._saved_at = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not self._pending:
            return control
        self._pending = False
        return self._finish(state, control, dict(metrics or {}), kwargs.get("optimizer"))

    def _finish(self, state, control, metrics, optimizer):
        if self.rounds.end_round(state.global_step, metrics, optimizer):
            control.should_training_stop = True
            if self.save_state is not None:  # the search is over: its result is written next, not a checkpoint
                control.should_save = False
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
