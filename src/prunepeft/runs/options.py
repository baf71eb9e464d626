"""What every job starts from: its options, its output folder, its data, its model, its records."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field

import torch
from transformers import set_seed

from prunepeft.common.distributed import is_main_process
from prunepeft.common.progress import PLAN, progress_shown
from prunepeft.common.version import VERSION
from prunepeft.data.load import load_task
from prunepeft.data.splits import stratified_subset
from prunepeft.data.task import TaskData
from prunepeft.method.backbone import LoadedModel, freeze_for_peft, load_model
from prunepeft.runs.run_folder import RunError, check_output, clear_run, run_inputs  # noqa: F401  (RunError: the jobs raise it)


@dataclass
class RunOptions:
    model: str = "minilm"
    task: str = "rotten_tomatoes"
    output_dir: str = "runs/rotten_tomatoes"
    data_dir: str | None = None  # a saved GLUE-schema copy, for GLUE tasks without hub access
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    max_train_samples: int | None = None
    layers_path: str | None = None
    targets: dict[str, list[str]] = field(default_factory=dict)
    prompt_column: str | None = None  # instruction tuning (a JSON Lines file of prompt/response pairs)
    response_column: str | None = None
    answer_column: str | None = None
    trust_remote_code: bool = False
    gguf_file: str | None = None  # a GGUF checkpoint, dequantised for training (needs the gguf package)
    overwrite: bool = False

    def model_map(self, model):
        """Blocks and role targets of ``model``, with --layers-path and --target applied."""
        from prunepeft.method.candidates import map_model

        return map_model(model, self.layers_path, {role: tuple(names) for role, names in self.targets.items()})


def prepare_output(opts: RunOptions) -> None:
    """Refuse a folder a new run may not use (see ``run_folder.check_output``); clear an earlier run in it when
    told to (--overwrite); create it."""
    if not is_main_process():  # the main process checks and prepares the folder
        return
    if check_output(opts.output_dir, overwrite=opts.overwrite, keep=run_inputs(opts.model, opts.task, opts.data_dir)):
        clear_run(opts.output_dir)
    os.makedirs(opts.output_dir, exist_ok=True)


def load_data(opts: RunOptions, seed: int) -> TaskData:
    from prunepeft.data.instruct import is_instruction_file, load_instructions

    if is_instruction_file(opts.task, opts.prompt_column):
        task = load_instructions(opts.task, opts.prompt_column, opts.response_column, opts.answer_column)
    else:
        task = load_task(
            opts.task,
            seed=seed,
            text_column=opts.text_column,
            text_pair_column=opts.text_pair_column,
            label_column=opts.label_column,
            glue_source=opts.data_dir,
        )
    if opts.max_train_samples:
        task.train = stratified_subset(task.train, opts.max_train_samples, seed)
    PLAN.train_rows = len(task.train)  # for the progress lines' estimate of the time left
    return task


def build_model(opts: RunOptions, task: TaskData, seed: int) -> LoadedModel:
    set_seed(seed)
    loaded = load_model(
        opts.model, task.num_labels, trust_remote_code=opts.trust_remote_code, gguf_file=opts.gguf_file,
        label_names=task.label_names, progress=progress_shown(),
    )  # fmt: skip
    freeze_for_peft(loaded.model, loaded.head_names)
    return loaded


def environment() -> dict:
    import accelerate
    import datasets
    import peft
    import transformers

    return {
        "versions": {
            "prunepeft": VERSION,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "datasets": datasets.__version__,
            "accelerate": accelerate.__version__,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }


def peak_memory() -> dict:
    """Peak resident memory of this process (and of the GPU, where there is one), in MiB."""
    import resource

    out = {"peak_rss": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_gpu"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


class JsonlLog:
    """Appends one JSON object per line and flushes, so a crash keeps every finished round."""

    def __init__(self, path: str):
        self.path = path

    def __call__(self, record: dict) -> None:
        if not is_main_process():
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
