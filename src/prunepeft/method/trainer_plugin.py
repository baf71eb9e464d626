"""PrunePEFT inside your own Trainer script.

    search = PrunePEFT(model, budget="1%")               # attaches every candidate, freezes the rest
    trainer = Trainer(model=model, ..., callbacks=[search.callback(round_steps=50)])
    trainer.train()                                       # stops by itself once the budget is met
    search.save("out")                                    # recipe.json: `prunepeft train --recipe out` retrains it

Difference from ``prunepeft search``: there is no separate warm-up subset; the first ``warmup_turns`` rounds
of your training are the warm-up (criteria vote, nothing is removed), later rounds prune.
"""

from __future__ import annotations

import os

from torch import nn

from prunepeft.method import hybrid
from prunepeft.method.backbone import HEAD_NAMES, count_params, freeze_for_peft, trainable_summary
from prunepeft.method.callback import PrunePEFTCallback
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space, map_model, spec_params, unit_sizes
from prunepeft.method.pruner import Pruner, WarmupVoter, check_budget, default_k, parse_budget
from prunepeft.method.recipe import Recipe


class PrunePEFT:
    """A supernet on ``model`` and the rounds that prune it; hand ``callback()`` to a Trainer."""

    def __init__(
        self,
        model: nn.Module,
        budget: str | float | int = "0.01",
        *,
        space: SpaceSettings | None = None,
        criterion: str = "hybrid",
        blocks: bool = True,
        prune_per_round: int = 0,
        warmup_turns: int = 3,
        metric: str = "accuracy",
        head_names: tuple[str, ...] | None = None,
        seed: int = 0,
        log=None,
    ):
        self.model = model
        self.space = space or SpaceSettings()
        self.head_names = head_names or tuple(n for n, _ in model.named_children() if n in HEAD_NAMES)
        freeze_for_peft(model, self.head_names)
        self.base_params, self.head_params = count_params(model, self.head_names)
        self.budget_params = parse_budget(budget, self.base_params)
        self.model_map = map_model(model)
        specs = build_space(
            self.model_map, self.space, unit_sizes(model, self.model_map, self.space, self.budget_params)
        )
        check_budget(budget, self.budget_params, {s.name: spec_params(model, s) for s in specs})
        candidates = {c.spec.name: c for c in attach_all(model, specs)}
        self.k = prune_per_round or default_k(len(candidates))
        blocks_of = hybrid.spindle_blocks(self.model_map.num_layers, 4 if blocks else 1)
        partition = {n: hybrid.partition_of(c.spec.layer, c.spec.kind, blocks_of) for n, c in candidates.items()}
        self.log = log or (lambda record: None)
        assignment = {p: [criterion] for p in set(partition.values())}
        self.pruner = Pruner(
            model, candidates, budget_params=self.budget_params, k=self.k, criterion=criterion,
            assignment=assignment, partition=partition, seed=seed, metric=metric, log=self.log,
        )  # fmt: skip
        self._voter = None
        if criterion == "hybrid":  # the voter records during the warm-up rounds; its observers replace the pruner's
            self.pruner.recorder.close()
            self._voter = WarmupVoter(candidates, partition, self.k, warmup_turns, self.log, seed=seed)
        self.criterion = criterion

    @property
    def recorder(self):
        return self._voter.recorder if self._voter is not None else self.pruner.recorder

    def end_round(self, step: int, metrics: dict, optimizer) -> bool:
        if self._voter is None:
            return self.pruner.end_round(step, metrics, optimizer)
        if self._voter.end_round(step, metrics, optimizer):
            self._voter.recorder.close()
            self.pruner.assignment = self._voter.assignment()
            self.pruner.recorder = type(self._voter.recorder)(self.pruner.alive)
            self._voter = None
        return False

    def callback(self, round_steps: int, evaluate: bool = False) -> PrunePEFTCallback:
        """The TrainerCallback: a round every ``round_steps`` optimizer steps (``evaluate`` logs eval metrics)."""
        return PrunePEFTCallback(self, round_steps, evaluate=evaluate)

    @property
    def done(self) -> bool:
        return self.pruner.done

    def recipe(self, model_name: str = "", task: str = "") -> Recipe:
        return Recipe(
            model=model_name or getattr(getattr(self.model, "config", None), "_name_or_path", ""),
            task=task,
            num_labels=getattr(getattr(self.model, "config", None), "num_labels", 0),
            layers_path=self.model_map.layers_path,
            num_layers=self.model_map.num_layers,
            candidates=[c.spec for c in self.pruner.alive.values()],
            peft_params=self.pruner.peft_params,
            budget_params=self.budget_params,
            base_params=self.base_params,
            head_params=self.head_params,
            removed=self.pruner.removed,
            assignment=self.pruner.assignment,
            settings={"space": self.space.__dict__, "criterion": self.criterion, "prune_per_round": self.k},
        )

    def save(self, out_dir: str, model_name: str = "", task: str = "") -> str:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "recipe.json")
        self.recipe(model_name, task).save(path)
        return path

    def summary(self) -> str:
        return trainable_summary(self.model)
