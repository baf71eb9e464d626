"""Wiring transformers' Trainer for our runs: arguments, collator, metrics, and the timed train + evaluate."""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass

import torch
from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from transformers import __version__ as _transformers_version
from transformers.trainer_callback import PrinterCallback

from prunepeft.common.config import require
from prunepeft.common.interrupts import check as check_interrupted
from prunepeft.common.progress import PLAN
from prunepeft.common.trainer_progress import phase_callback
from prunepeft.data.metrics import metric_fn
from prunepeft.data.task import TaskData
from prunepeft.method.callback import FiniteLossCallback

_TRANSFORMERS_5 = int(_transformers_version.split(".")[0]) >= 5


@dataclass
class TrainSettings:
    epochs: float = 3.0
    learning_rate: float | None = 1e-3  # None: chosen on validation (choose_rate) or a recipe's own rate
    choose_rate: bool = False  # --learning-rate auto: probes on validation choose it (runs.rate_choice)
    batch_size: int = 32
    max_length: int = 128
    warmup: float = 0.06  # fraction of the steps with linear warm-up
    weight_decay: float = 0.0
    seed: int = 0
    report_to: str = "none"
    progress: bool = True

    def __post_init__(self):
        require(self.epochs > 0, f"--epochs must be positive, got {self.epochs}.")
        require(
            self.learning_rate is None or self.learning_rate > 0,
            f"--learning-rate must be positive, got {self.learning_rate}.",
        )
        require(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}.")
        require(self.max_length >= 2, f"--max-length must be at least 2 tokens, got {self.max_length}.")
        require(0 <= self.warmup < 1, f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}.")


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_examples / batch_size))


def training_arguments(
    settings: TrainSettings,
    output_dir: str,
    *,
    max_steps: int = -1,
    schedule: str = "linear",
    eval_each_epoch: bool = False,
    save_steps: int = 0,
    save_each_epoch: bool = False,
) -> TrainingArguments:
    """Our settings as TrainingArguments; checkpoints (for ``--resume``) every ``save_steps`` steps or each epoch."""
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=settings.epochs,
        max_steps=max_steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=max(settings.batch_size, 64),
        # --warmup is a fraction of the steps: transformers 5 takes it as a warmup_steps below 1, 4.x as warmup_ratio
        # (its warmup_steps is a step count); both warm up for ceil(fraction * steps) steps
        **({"warmup_steps": settings.warmup} if _TRANSFORMERS_5 else {"warmup_ratio": settings.warmup}),
        weight_decay=settings.weight_decay,
        lr_scheduler_type=schedule,
        seed=settings.seed,
        data_seed=settings.seed,
        eval_strategy="epoch" if eval_each_epoch else "no",
        save_strategy="steps" if save_steps else "epoch" if save_each_epoch else "no",
        save_steps=save_steps or 500,
        save_total_limit=2,  # the newest complete checkpoint survives a kill during the next save
        logging_strategy="steps",
        logging_steps=50,
        logging_nan_inf_filter=False,  # a NaN loss must reach the log (and FiniteLossCallback)
        report_to=settings.report_to,
        # our one line per phase (prunepeft.common.progress) replaces the Trainer's bars and log prints
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # mixed precision where the device has it (no .cuda()/.half() anywhere: the Trainer places the model)
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        fp16=torch.cuda.is_available() and not torch.cuda.is_bf16_supported(),
    )


def make_trainer(
    model,
    tokenizer,
    task: TaskData,
    settings: TrainSettings,
    output_dir: str,
    train_dataset,
    eval_dataset=None,
    *,
    callbacks: list[TrainerCallback] | None = None,
    **schedule,
) -> Trainer:
    """A Trainer for our runs (``schedule``: the keyword arguments of ``training_arguments``)."""
    args = training_arguments(settings, output_dir, **schedule)
    causal = getattr(task, "causal_lm", False)
    trainer = SlimCheckpointTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        # language modelling: pad labels with -100 and report the loss only (no logits kept)
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)
        if causal
        else DataCollatorWithPadding(tokenizer),
        compute_metrics=None if causal else metric_fn(task),
        callbacks=[InterruptCheck(), FiniteLossCallback(), *(callbacks or []), *_fault_injection(output_dir)],
    )
    trainer.sort_eval_by_length = not causal
    trainer.remove_callback(PrinterCallback)  # the Trainer's print of every log dict: the phase lines say it
    trainer.add_callback(phase_callback(output_dir, callbacks or []))
    return trainer


class SlimCheckpointTrainer(Trainer):
    """The Trainer, with checkpoints that hold only the tensors being trained (PEFT modules and head), not the
    frozen base model: a round's checkpoint of an 8 B model is megabytes instead of 16 GB, and on a GPU the search
    no longer spends its rounds writing the base to disk. Resuming loads these tensors over the base model, which
    the run loads from --model as usual (the Trainer's own loader accepts a partial state dict)."""

    sort_eval_by_length = True  # see _get_eval_sampler; make_trainer turns it off for language modelling

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if state_dict is None:
            model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
            state_dict = {name: p for name, p in model.named_parameters() if p.requires_grad}
        from transformers.utils import logging as hf_logging

        shown = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # "Writing model shards" of a few megabytes: no bar needed
        try:
            super()._save(output_dir, state_dict=state_dict)
        finally:
            if shown:
                hf_logging.enable_progress_bar()

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation goes shortest rows first, so that a batch pads only to about its own length: on short
        texts (movie reviews) that halves the tokens evaluated. Predictions and labels come back in the same
        order, so the metrics and the per-example mean loss do not depend on it. Language modelling keeps
        the stored order (its loss is a token mean per batch, which the batching changes)."""
        columns = getattr(eval_dataset, "column_names", None) or []
        if not self.sort_eval_by_length or self.args.world_size > 1 or "input_ids" not in columns:
            return super()._get_eval_sampler(eval_dataset)
        lengths = [len(ids) for ids in eval_dataset["input_ids"]]
        return sorted(range(len(lengths)), key=lengths.__getitem__)

    def _issue_warnings_after_load(self, load_result) -> None:
        """The frozen base is missing from the checkpoint by design; warn only about trained tensors."""
        trained = {name for name, p in self.model.named_parameters() if p.requires_grad}
        missing = [key for key in load_result.missing_keys if key in trained]
        super()._issue_warnings_after_load(load_result._replace(missing_keys=missing))


class InterruptCheck(TrainerCallback):
    """Ends the training on a signal whose KeyboardInterrupt a library swallowed (see common.interrupts): checked
    before and after each step, at each evaluation batch and at each save."""

    def _check(self, args, state, control, **kwargs):
        check_interrupted()

    on_train_begin = on_step_begin = on_step_end = on_prediction_step = on_evaluate = on_save = _check


class _KillAtStep(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _fault_injection(output_dir: str) -> list[TrainerCallback]:
    """For the resume tests: PRUNEPEFT_KILL_AT=_search:7 kills the process (SIGKILL) at step 7 of the phase
    whose Trainer folder is ``_search`` (or ``_final``, ``_warmup``)."""
    target = os.environ.get("PRUNEPEFT_KILL_AT", "")
    phase, _, step = target.partition(":")
    if phase and os.path.basename(os.path.normpath(output_dir)) == phase:
        return [_KillAtStep(int(step))]
    return []


_WARMED: set[str] = set()


def warm_device(device: torch.device) -> None:
    """Start the GPU's context and matrix libraries once per process, untimed, so that whichever phase comes
    first (the search, or a baseline's training) is not charged seconds of one-off start-up."""
    if device.type != "cuda" or str(device) in _WARMED:
        return
    x = torch.ones(256, 256, device=device)
    for dtype in (torch.float32, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16):
        (x.to(dtype) @ x.to(dtype)).sum().item()
    _WARMED.add(str(device))


def timed_train(trainer: Trainer, resume_from: str | None = None) -> tuple[float, list[dict]]:
    """Train (from a checkpoint, if given); return wall seconds and the validation metrics logged."""
    warm_device(trainer.args.device)
    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=resume_from)
    finally:  # ended by an exception too: nothing left in progress for a heartbeat to report
        PLAN.doing = None
    wall = time.perf_counter() - start
    history = [h for h in trainer.state.log_history if any(k.startswith("eval_") for k in h)]
    return wall, history
