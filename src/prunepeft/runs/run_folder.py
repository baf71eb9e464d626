"""What a run folder holds, read without torch (the command line checks it before any model loads): the names
prunepeft writes there, whether a folder is a run, clearing one for ``--overwrite``, and the settings a
``--resume`` continues with.

``--overwrite`` clears a folder only when everything in it was written by prunepeft; a folder holding anything
else, the current folder, or a folder holding the task data or the model is refused instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil

RUN_CONFIG = "run_config.json"

# A folder holding one of these is a run (of any kind: search, train --recipe, baseline, one budget of several).
MARKERS = ("run_config.json", "recipe.json", "results.json", "search_log.jsonl", "budgets.json")
# Everything else a run writes at the top of its folder: weights, the report and its plots, the copy of other
# methods' points that `prunepeft bench` puts beside a run.
RUN_FILES = (
    *MARKERS, "adapter_model.safetensors", "report.html", "module_map.png", "trajectory.png", "assignment.png",
    "scores.png", "curve.png", "runs.png", "reference.json",
)  # fmt: skip
# The Trainer's working folders of each phase, and where `prunepeft export` writes by default.
RUN_DIRS = ("_warmup", "_search", "_probe", "_final", "peft", "merged")
EXPORT_SCRATCH = ".prunepeft-export-"  # handover.peft_export's scratch folder (left by a killed export)
# A baseline saves its model with save_pretrained: peft's adapter folder (with the model card peft writes), or,
# for full fine-tuning, the whole model (sharded when large).
BASELINE_FILES = {
    "peft": ("adapter_config.json", "README.md"),
    "full": ("config.json", "model.safetensors", "model.safetensors.index.json", "generation_config.json"),
}
_SHARD = re.compile(r"model-\d+-of-\d+\.safetensors")
PEFT_BASELINES = ("lora", "dora", "adalora")


class RunError(RuntimeError):
    """A job cannot start as asked."""


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def budget_dir(label: str) -> str:
    """The sub-folder of one budget of a multi-budget search: its text with '%' spelled out ("0.5%" -> "0.5pct")."""
    return label.replace("%", "pct").replace("/", "_")


def _kinds(config: dict | None) -> tuple[set[str], set[str]]:
    """The file names and the budget sub-folder names a run with these saved settings writes."""
    config = config or {}
    method = config.get("method")
    files = set(RUN_FILES) | set(BASELINE_FILES["peft"] if method in PEFT_BASELINES else BASELINE_FILES.get(method, ()))
    budgets = str((config.get("search") or {}).get("budget", ""))
    folders = {budget_dir(b.strip()) for b in budgets.split(",") if b.strip()} if "," in budgets else set()
    return files, folders


def _is_ours(folder: str, name: str, files: set[str], budget_folders: set[str]) -> bool:
    path = os.path.join(folder, name)
    if not os.path.isdir(path) or os.path.islink(path):
        stem = name.removesuffix(".tmp")  # a file caught mid-write (written under a temporary name, then renamed)
        return stem in files or ("model.safetensors" in files and bool(_SHARD.fullmatch(stem)))
    if name in RUN_DIRS or name.startswith(EXPORT_SCRATCH):
        return True
    return name in budget_folders and not foreign_entries(path)


def foreign_entries(folder: str) -> list[str]:
    """The entries of a run folder that prunepeft did not write (a budget's sub-folder is looked into too)."""
    files, budget_folders = _kinds(read_json(os.path.join(folder, RUN_CONFIG)))
    return [name for name in sorted(os.listdir(folder)) if not _is_ours(folder, name, files, budget_folders)]


def is_run(folder: str) -> bool:
    return any(os.path.isfile(os.path.join(folder, name)) for name in MARKERS)


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (after resolving links)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def run_inputs(model: str | None, task: str | None, data_dir: str | None) -> dict[str, str | None]:
    """What an output folder must not be or hold: the run's own inputs (by what they are, for the message)."""
    return {"model folder": model, "task data": task, "--data-dir folder": data_dir}


def check_output(out: str, *, overwrite: bool, keep: dict[str, str | None], resume: bool = False) -> bool:
    """Refuse an output folder a new run may not use; True when it holds an earlier run that must be cleared.

    ``keep`` names what must survive, e.g. ``{"model folder": path, "task file": path}``: an output folder
    that is one of them or holds one is refused (paths that do not exist, like 'minilm', are ignored).
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunError(f"--output-dir {out!r} is a file, not a folder; choose a folder for the run.")
    if not os.path.isdir(out) or not os.listdir(out):
        return False  # a new or empty folder
    for what, path in keep.items():
        if path and os.path.exists(path) and _inside(path, out):
            itself = os.path.realpath(path) == os.path.realpath(out)
            where = "is the " + what + " itself" if itself else f"holds the {what} {path!r}"
            raise RunError(f"--output-dir {out!r} {where}; choose another folder for the run.")
    if not is_run(out):
        names = _listed(sorted(os.listdir(out)))
        raise RunError(
            f"output directory {out!r} is not empty and holds no prunepeft run ({names}); choose a new or empty "
            "--output-dir (--overwrite only replaces an earlier run)."
        )
    foreign = foreign_entries(out)
    if foreign:
        raise RunError(
            f"output directory {out!r} holds a run and files prunepeft did not write ({_listed(foreign)}); "
            "--overwrite would not remove them. Choose another --output-dir, or move those files out."
        )
    if not overwrite:
        again = f" (or --resume {out} to continue it)" if resume else ""
        raise RunError(
            f"output directory {out!r} already holds a run. Choose another --output-dir, or pass --overwrite "
            f"to replace it{again}."
        )
    if _inside(os.getcwd(), out):
        raise RunError(
            f"--overwrite would clear {out!r}, the folder you are working in (or one above it); run from "
            "another folder, or choose another --output-dir."
        )
    return True


def _listed(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def clear_run(out: str) -> None:
    """Remove what prunepeft wrote in ``out`` (and only that); the folder itself stays."""
    files, budget_folders = _kinds(read_json(os.path.join(out, RUN_CONFIG)))
    for name in os.listdir(out):
        if not _is_ours(out, name, files, budget_folders):
            continue
        path = os.path.join(out, name)
        if name in budget_folders and os.path.isdir(path) and not os.path.islink(path):
            clear_run(path)
            os.rmdir(path)
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def resumable_config(out: str) -> dict:
    """The saved settings of the search in ``out``, or one clear error saying why it cannot be resumed."""
    if not os.path.isdir(out):
        raise RunError(f"--resume {out!r}: no such directory. Give the --output-dir of the run to continue.")
    config = read_json(os.path.join(out, RUN_CONFIG))
    if config is None:
        raise RunError(
            f"--resume {out!r}: {RUN_CONFIG} is missing or unreadable, so this is not a prunepeft search "
            "folder (or it was damaged). Start a new run in another --output-dir."
        )
    if not {"run", "space", "search", "train"} <= set(config):
        raise RunError(f"{out!r} holds a `prunepeft train` run, not a search; only searches resume.")
    if os.path.exists(os.path.join(out, "results.json")):
        raise RunError(f"the run in {out!r} has finished (results.json exists); nothing to resume.")
    return config
