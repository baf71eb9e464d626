"""The iterative hybrid pruning search (paper Algorithm 1): warm-up votes, then rounds of
train -> score -> remove until the trainable PEFT parameters fit the budget.

Everything here works on a live supernet and plain data; files are written by the caller through
``log`` (one dict per warm-up turn or round).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from prunepeft.common.config import require
from prunepeft.method import hybrid
from prunepeft.method.callback import NonFiniteLossError, StatsRecorder
from prunepeft.method.candidates import Candidate, detach
from prunepeft.method.criteria import CRITERIA, UnitStats, evaluate_all, standard_errors, steps_of, weight_error

METHODS = ("hybrid", "random", *CRITERIA)


@dataclass
class SearchSettings:
    budget: str = "0.01"  # fraction of the base model's parameters ("0.01", "1%") or a count ("200000")
    criterion: str = "hybrid"  # "hybrid", "random", or one criterion alone
    blocks: bool = True  # hybrid: spindle depth blocks x kinds (False: partitions by kind only)
    prune_per_round: int = 0  # k; 0 = ceil(candidates / 8)
    round_epochs: float = 0.15  # training per round, in epochs of the search data
    # at most this many steps per round (0 = no cap): past about 6,800 rows (at batch 32) more data no longer
    # lengthens the search (docs/method.md, "Rounds")
    round_max_steps: int = 32
    warmup_fraction: float = 0.1  # share of the search data the warm-up trains on
    warmup_turns: int = 3
    search_fraction: float = 1.0  # < 1: low-fidelity search on a stratified share of the training data
    eval_samples: int = 0  # validation rows scored after each round, for the log only (0 = none)
    reinit_survivors: bool = False  # paper step 3: re-initialise the survivors after each removal
    train_budgets: str = ""  # a search over several budgets ("2%,1%"): those to final-train ("" = all)
    checkpoint_every: float = 60.0  # seconds of rounds between resumable checkpoints (0 = after every round)

    def __post_init__(self):
        require(self.criterion in METHODS, f"--criterion {self.criterion!r}: choose from {', '.join(METHODS)}.")
        require(
            self.prune_per_round >= 0, f"--prune-per-round must be 0 (automatic) or more, got {self.prune_per_round}."
        )
        require(self.round_epochs > 0, f"--round-epochs must be positive, got {self.round_epochs}.")
        require(self.round_max_steps >= 0, f"--round-max-steps must be 0 (no cap) or more, got {self.round_max_steps}.")
        require(0 < self.warmup_fraction <= 1, f"--warmup-fraction must be in (0, 1], got {self.warmup_fraction}.")
        require(self.warmup_turns >= 1, f"--warmup-turns must be at least 1, got {self.warmup_turns}.")
        require(
            0 < self.search_fraction <= 1,
            f"--low-fidelity takes a fraction of the training data in (0, 1], got {self.search_fraction}.",
        )
        require(
            self.checkpoint_every >= 0, f"--checkpoint-every takes seconds (0 or more), got {self.checkpoint_every}."
        )
        require(self.eval_samples >= 0, f"--search-eval-samples must be 0 (none) or more, got {self.eval_samples}.")


class BudgetError(ValueError):
    """The budget is not a usable number or cannot be met."""


def parse_budget(budget: str | float | int, base_params: int) -> int:
    """Budget in parameters: a fraction of the base model (0 < x < 1, or "x%") or an absolute count."""
    text = str(budget).strip()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)", text)
    if not match:
        raise BudgetError(
            f"budget {budget!r} is not a number. Give a fraction of the base model ('0.01'), "
            "a percentage ('1%') or a parameter count ('200000')."
        )
    value = float(match.group(1))
    if value <= 0:
        raise BudgetError(f"budget {budget!r} must be positive, e.g. '0.01' (1% of the base model).")
    if match.group(2):  # a percentage is always a fraction of the base model
        if value > 100:
            raise BudgetError(f"budget {budget!r} is over 100% of the base model; give a share of it, e.g. '1%'.")
        return int(value / 100 * base_params)
    if value < 1:
        return int(value * base_params)
    if value != int(value):
        raise BudgetError(f"budget {budget!r}: a count of parameters must be whole; a fraction must be < 1.")
    return int(value)


def check_budget(budget: str | float | int, budget_params: int, sizes: dict[str, int]) -> None:
    """Refuse a budget the search cannot meet with something kept, or one that leaves nothing to prune."""
    largest, total = max(sizes.values()), sum(sizes.values())
    if budget_params < largest:  # below it, the search could end with nothing kept
        raise BudgetError(
            f"budget {budget!r} = {budget_params:,} parameters is below the largest candidate "
            f"({largest:,}), so the search could end with nothing kept. Raise --budget or lower --lora-rank / "
            "--bottleneck-size."
        )
    if budget_params >= total:
        raise BudgetError(
            f"budget {budget!r} = {budget_params:,} parameters holds the whole supernet ({total:,}), so there "
            "is nothing to prune. Lower --budget, or use a larger space (--space extended, --lora-rank)."
        )


def raw_scores(candidates: dict[str, Candidate], stats: dict[str, UnitStats]) -> dict[str, dict[str, float]]:
    return {name: evaluate_all(c.parameters(), stats[name]) for name, c in candidates.items()}


def evidence(
    candidates: dict[str, Candidate], stats: dict[str, UnitStats]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(scores, standard errors) of every candidate for one round."""
    scores = raw_scores(candidates, stats)
    errors = {
        name: {**standard_errors(stats[name], c.n_params), "weight": weight_error(c.parameters())}
        for name, c in candidates.items()
    }
    return scores, errors


def check_finite(scores: dict[str, dict[str, float]], where: str) -> None:
    if not all(math.isfinite(v) for s in scores.values() for v in s.values()):
        raise NonFiniteLossError(
            f"{where}: the candidates' statistics are NaN or infinite (training diverged). Lower --learning-rate; "
            "finished rounds are kept and `--resume` continues from the last good one."
        )


def drop_from_optimizer(optimizer, params: list[nn.Parameter]) -> None:
    """Remove parameters (and their Adam moments) from an optimizer, so later steps skip them."""
    if optimizer is None:
        return
    ids = {id(p) for p in params}
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) not in ids]
    for p in params:
        optimizer.state.pop(p, None)


class WarmupVoter:
    """Warm-up: after each turn every criterion alone nominates the k candidates it would prune;
    nominations are counted per partition. Nothing is removed.

    With ``fresh_turns`` every turn after the first starts the candidates from a new initialisation (and
    without their optimizer moments), so that each turn is independent evidence trained on its own share of
    the data, not the same model seen again a few steps later."""

    def __init__(
        self,
        candidates: dict[str, Candidate],
        partition: dict[str, str],
        k: int,
        turns: int,
        log,
        seed: int = 0,
        fresh_turns: bool = True,
    ):
        self.candidates = candidates
        self.partition = partition
        self.k = k
        self.turns = turns
        self.log = log
        self.fresh_turns = fresh_turns
        self.rng = random.Random(seed)
        self.counts = {c: dict.fromkeys(sorted(set(partition.values())), 0) for c in CRITERIA}
        self.turn = 0
        self.recorder = StatsRecorder(candidates)

    def end_round(self, step: int, metrics: dict, optimizer) -> bool:
        stats = self.recorder.take()
        scores, errors = evidence(self.candidates, stats)
        check_finite(scores, f"warm-up turn {self.turn + 1}")
        steps = steps_of(stats)
        votes = {c: hybrid.nominate(scores, c, self.k, errors, self.rng, steps) for c in CRITERIA}
        for c, names in votes.items():
            for name in names:
                self.counts[c][self.partition[name]] += 1
        self.turn += 1
        abstained = [c for c, names in votes.items() if not names]
        self.log(
            {"phase": "warmup", "turn": self.turn, "step": step, "steps": steps, "scores": scores, "errors": errors,
             "nominated": votes, "abstained": abstained}
        )  # fmt: skip
        finished = self.turn >= self.turns
        if self.fresh_turns and not finished:
            reinitialise(self.candidates.values(), optimizer)
        return finished

    def assignment(self) -> dict[str, list[str]]:
        sizes: dict[str, int] = {}
        for p in self.partition.values():
            sizes[p] = sizes.get(p, 0) + 1
        return hybrid.assign_criteria(self.counts, sizes)


def reinitialise(candidates, optimizer) -> None:
    """Fresh parameters for the candidates, and no optimizer moments left from the old ones."""
    for cand in candidates:
        for wrapper in cand.wrappers:
            wrapper.reset_parameters()
        if optimizer is not None:
            for p in cand.parameters():
                optimizer.state.pop(p, None)


class Pruner:
    """Ends each round: score the survivors, remove the top-k (never more than needed to meet the budget).

    ``budgets`` (parameter counts, optional) are the budgets of a multi-budget search: the survivors are
    recorded in ``fits`` the moment they first fit each one; the search goes on down to the smallest,
    which is ``budget_params``."""

    def __init__(
        self,
        model: nn.Module,
        candidates: dict[str, Candidate],
        *,
        budget_params: int,
        k: int,
        criterion: str,
        assignment: dict[str, list[str]],
        partition: dict[str, str],
        seed: int,
        metric: str,
        reinit_survivors: bool = False,
        log: Callable[[dict], None] = lambda record: None,
        budgets: list[int] | None = None,
    ):
        if criterion not in METHODS:
            raise ValueError(f"unknown criterion {criterion!r}; choose from {', '.join(METHODS)}")
        self.model = model
        self.alive = dict(candidates)
        self.budgets = sorted(set(budgets or []) | {budget_params}, reverse=True)
        self.budget_params = min(self.budgets)
        self.k = k
        self.criterion = criterion
        self.assignment = assignment
        self.partition = partition
        self.metric = metric
        self.reinit_survivors = reinit_survivors
        self.log = log
        self.rng = random.Random(seed)
        self.round = 0
        self.removed: dict[str, int] = {}  # candidate -> round in which it was removed
        self.fits: dict[int, dict] = {}  # budget -> the survivors when they first fit it
        self._note_fits()
        self.recorder = StatsRecorder(candidates)
        self._clock = time.perf_counter()

    @property
    def peft_params(self) -> int:
        return sum(c.n_params for c in self.alive.values())

    @property
    def done(self) -> bool:
        return self.peft_params <= self.budget_params

    def rank(self, scores, errors, steps=None) -> tuple[dict[str, float], dict[str, float], dict[str, list[str]]]:
        """(Θ, p, voting criteria per partition): higher Θ = prune first; p = the eq. 1 probability (Θ
        normalised for random pruning)."""
        if self.criterion == "random":
            theta = {m: self.rng.random() for m in sorted(scores)}
            total = sum(theta.values()) or 1.0
            return theta, {m: t / total for m, t in theta.items()}, {}
        fallback = CRITERIA if self.criterion == "hybrid" else ()
        voting = hybrid.voting_criteria(scores, self.assignment, self.partition, errors, fallback, steps)
        theta, prob = hybrid.combined_scores(scores, self.assignment, self.partition, errors, voting, steps, self.rng)
        return theta, prob, voting

    def state(self) -> dict:
        """What a resumed search needs beyond the Trainer's checkpoint (JSON-ready)."""
        version, internal, gauss = self.rng.getstate()
        return {
            "round": self.round,
            "removed": dict(self.removed),
            "rng": [version, list(internal), gauss],
            "fits": {str(b): fit for b, fit in self.fits.items()},
        }

    def restore(self, state: dict) -> None:
        """Replay a checkpointed state: remove the same candidates, continue the same random stream."""
        for name, round_ in sorted(state["removed"].items(), key=lambda item: (item[1], item[0])):
            self.round = round_
            self._remove(name, None)
        self.round = state["round"]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.fits = {int(b): fit for b, fit in state.get("fits", {}).items()}

    def end_round(self, step: int, metrics: dict, optimizer) -> bool:
        self.round += 1
        stats = self.recorder.take()
        scores, errors = evidence(self.alive, stats)
        check_finite(scores, f"round {self.round}")
        steps = steps_of(stats)
        theta, prob, voting = self.rank(scores, errors, steps)
        params_before = self.peft_params
        order = hybrid.draw_order(theta, theta, self.rng)
        removed = []
        for name in order:
            if len(removed) >= self.k or self.done:
                break
            removed.append(name)
            self._remove(name, optimizer)
            self._note_fits()
        if self.reinit_survivors and removed:
            reinitialise(self.alive.values(), optimizer)
        now = time.perf_counter()
        abstained = {p: [c for c in self.assignment[p] if c not in crit] for p, crit in voting.items()}
        fell_back = {p: crit for p, crit in voting.items() if crit and not set(crit) & set(self.assignment[p])}
        self.log(
            {
                "phase": "round",
                "round": self.round,
                "step": step,
                "steps": steps,
                "scores": scores,
                "errors": errors,
                "theta": theta,
                "p": prob,
                "abstained": {p: crit for p, crit in abstained.items() if crit},
                "fell_back": fell_back,
                "tied_at_cut": hybrid.tied_at_cut(order, theta, len(removed)),
                "removed": removed,
                "peft_params_before": params_before,
                "peft_params": self.peft_params,
                "budget_params": self.budget_params,
                "val_metric": metrics.get(f"eval_{self.metric}"),
                "val_loss": metrics.get("eval_loss"),
                "wall_s": round(now - self._clock, 3),
            }
        )
        self._clock = now
        return self.done

    def _note_fits(self) -> None:
        for budget in self.budgets:
            if budget not in self.fits and self.peft_params <= budget:
                self.fits[budget] = {"round": self.round, "alive": sorted(self.alive), "peft_params": self.peft_params}

    def _remove(self, name: str, optimizer) -> None:
        cand = self.alive.pop(name)
        self.recorder.forget(name)
        params = cand.parameters()
        detach(self.model, cand)
        drop_from_optimizer(optimizer, params)
        for p in params:
            p.grad = None
            p.requires_grad_(False)
        self.removed[name] = self.round


def default_k(n_candidates: int) -> int:
    return max(1, math.ceil(n_candidates / 8))
