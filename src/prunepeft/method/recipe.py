"""The found configuration as a file: ``recipe.json``, readable per layer, with the settings behind it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from prunepeft.common.distributed import is_main_process
from prunepeft.method.candidates import CandidateSpec, merge_slices

FORMAT = "prunepeft-recipe"
VERSION = 1


class RecipeError(ValueError):
    """A recipe file that cannot be used."""


@dataclass
class Recipe:
    model: str
    task: str
    num_labels: int
    layers_path: str
    num_layers: int
    candidates: list[CandidateSpec]
    peft_params: int
    budget_params: int
    base_params: int
    head_params: int
    removed: dict[str, int] = field(default_factory=dict)  # candidate -> round it was removed in
    assignment: dict[str, list[str]] = field(default_factory=dict)  # partition -> criteria
    settings: dict = field(default_factory=dict)  # {"run", "space", "search", "train"}
    label_names: list[str] | None = None  # class names by id (written as id2label / label2id)

    def __post_init__(self):
        # a recipe holds what is trained: the kept slices of a LoRA location are one LoRA of their summed rank
        self.candidates = merge_slices(self.candidates)

    def base_model(self, override: str | None = None) -> tuple[str, str | None]:
        """The base model to rebuild on, and its GGUF file name when the run loaded one (None with an override)."""
        if override:
            return override, None
        return self.model, self.settings.get("run", {}).get("gguf_file")

    def per_layer(self) -> dict[str, list[str]]:
        """Layer -> the kept candidate kinds with their sizes, e.g. {"0": ["lora_qv (rank 32)"]}."""
        table: dict[str, list[str]] = {str(i): [] for i in range(self.num_layers)}
        for spec in self.candidates:
            size = f"rank {spec.size}" if spec.module == "lora" else f"bottleneck {spec.size}"
            table[str(spec.layer)].append(f"{spec.kind} ({size})")
        return table

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "task": self.task,
            "num_labels": self.num_labels,
            **_label_maps(self.label_names),
            "layers_path": self.layers_path,
            "num_layers": self.num_layers,
            "per_layer": self.per_layer(),
            "peft_params": self.peft_params,
            "budget_params": self.budget_params,
            "base_params": self.base_params,
            "head_params": self.head_params,
            "candidates": [s.to_dict() for s in self.candidates],
            "removed": self.removed,
            "assignment": self.assignment,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RecipeError("not a prunepeft recipe (the 'format' field is missing or different).")
        if data.get("version") != VERSION:
            raise RecipeError(f"recipe version {data.get('version')!r}; this prunepeft reads version {VERSION}.")
        try:
            specs = [CandidateSpec.from_dict(s) for s in data["candidates"]]
            return cls(
                model=str(data["model"]),
                task=str(data["task"]),
                num_labels=int(data["num_labels"]),
                layers_path=str(data["layers_path"]),
                num_layers=int(data["num_layers"]),
                candidates=specs,
                peft_params=int(data["peft_params"]),
                budget_params=int(data["budget_params"]),
                base_params=int(data["base_params"]),
                head_params=int(data["head_params"]),
                removed={str(k): int(v) for k, v in data.get("removed", {}).items()},
                assignment={str(k): list(v) for k, v in data.get("assignment", {}).items()},
                settings=dict(data.get("settings", {})),
                label_names=_names(data.get("id2label")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise RecipeError(f"recipe is incomplete or malformed ({type(err).__name__}: {err}).") from err

    def save(self, path: str) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str) -> Recipe:
        if os.path.isdir(path):
            path = os.path.join(path, "recipe.json")
        if not os.path.isfile(path):
            raise RecipeError(f"no recipe at {path!r}; give the recipe.json written by `prunepeft search`.")
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except json.JSONDecodeError as err:
            raise RecipeError(f"{path} is not valid JSON ({err}); was the file truncated?") from err
        return cls.from_dict(data)


def _label_maps(names: list[str] | None) -> dict:
    if not names:
        return {}
    return {"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)}}


def _names(id2label: dict | None) -> list[str] | None:
    """Class names by id from a JSON ``id2label`` (keys are strings there)."""
    if not id2label:
        return None
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def write_json_atomic(path: str, data) -> None:
    """Write to a temporary name, then rename: a crash never leaves half a file. Main process only."""
    if not is_main_process():
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(tmp, path)
