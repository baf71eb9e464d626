"""Finding usable checkpoints and the run's saved configuration, for ``--resume``.

A Trainer checkpoint counts as complete once its ``trainer_state.json`` (written after the model,
optimizer and RNG files) parses; a search checkpoint also needs our ``search_state.json``, written last.
A kill at any moment therefore leaves either a complete checkpoint or one that is skipped.
"""

from __future__ import annotations

import os
import re
import shutil

from prunepeft.common.distributed import is_main_process
from prunepeft.method.recipe import write_json_atomic
from prunepeft.runs.run_folder import RUN_CONFIG, read_json

SEARCH_STATE = "search_state.json"


class ResumeError(RuntimeError):
    """The run cannot be resumed as it is on disk."""


def latest_checkpoint(folder: str, need: str | None = None) -> str | None:
    """The newest complete ``checkpoint-N`` in folder (with the file ``need`` too, if given)."""
    if not os.path.isdir(folder):
        return None
    steps = sorted(
        (int(m.group(1)), name) for name in os.listdir(folder) if (m := re.fullmatch(r"checkpoint-(\d+)", name))
    )
    for _, name in reversed(steps):
        path = os.path.join(folder, name)
        if read_json(os.path.join(path, "trainer_state.json")) is None:
            continue
        if need and read_json(os.path.join(path, need)) is None:
            continue
        return path
    return None


def save_run_config(out: str, config: dict) -> None:
    write_json_atomic(os.path.join(out, RUN_CONFIG), config)


def read_state(checkpoint: str) -> dict:
    state = read_json(os.path.join(checkpoint, SEARCH_STATE))
    if state is None:
        raise ResumeError(f"{checkpoint}: {SEARCH_STATE} is unreadable; delete this checkpoint folder to resume.")
    return state


def truncate_lines(path: str, keep: int) -> None:
    """Keep the first ``keep`` lines (drop what a killed round logged after its checkpoint)."""
    if not os.path.exists(path) or not is_main_process():
        return
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()[:keep]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    os.replace(tmp, path)


def count_lines(path: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def verify_checkpoint(checkpoint: str) -> None:
    """Read every tensor file of a checkpoint before resuming from it; a damaged one gets a clear error."""
    import torch
    from safetensors.torch import load_file

    try:  # the allowlist the Trainer itself loads RNG files with
        from transformers.trainer_pt_utils import safe_globals
    except ImportError:  # transformers 4.x
        from transformers.trainer import safe_globals

    for name in sorted(os.listdir(checkpoint)):
        path = os.path.join(checkpoint, name)
        try:
            if name.endswith(".safetensors"):
                load_file(path)
            elif name.endswith((".pt", ".pth")):  # what the Trainer loads (training_args.bin it never reads)
                with safe_globals():
                    torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # safetensors, pickle and zip errors have no common base class
            raise ResumeError(
                f"checkpoint {checkpoint} is damaged ({name}: {type(err).__name__}). Delete that folder to resume "
                "from the checkpoint before it, or start again with --overwrite."
            ) from err


def remove_tree(path: str) -> None:
    """Delete a folder of ours (main process only: the others may still be reading it)."""
    if is_main_process():
        shutil.rmtree(path, ignore_errors=True)
