"""Wiring transformers' Trainer for our runs: arguments, collator, metrics, and the timed train + evaluate."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

from prunepeft.data import TaskData, metric_fn


@dataclass
class TrainSettings:
    epochs: float = 3.0
    learning_rate: float = 1e-3
    batch_size: int = 32
    max_length: int = 128
    warmup: float = 0.06  # fraction of the steps with linear warm-up
    weight_decay: float = 0.0
    seed: int = 0
    report_to: str = "none"
    progress: bool = True


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return max(1, math.ceil(n_examples / batch_size))


def make_trainer(
    model,
    tokenizer,
    task: TaskData,
    settings: TrainSettings,
    output_dir: str,
    train_dataset,
    eval_dataset=None,
    *,
    max_steps: int = -1,
    schedule: str = "linear",
    eval_each_epoch: bool = False,
    callbacks: list[TrainerCallback] | None = None,
) -> Trainer:
    """A Trainer that saves no checkpoints of its own (we save what we need) and evaluates on demand."""
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=settings.epochs,
        max_steps=max_steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=max(settings.batch_size, 64),
        warmup_steps=settings.warmup,
        weight_decay=settings.weight_decay,
        lr_scheduler_type=schedule,
        seed=settings.seed,
        data_seed=settings.seed,
        eval_strategy="epoch" if eval_each_epoch else "no",
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=50,
        report_to=settings.report_to,
        disable_tqdm=not settings.progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=metric_fn(task),
        callbacks=callbacks or [],
    )


def timed_train(trainer: Trainer) -> tuple[float, list[dict]]:
    """Train; return wall seconds and the per-epoch validation metrics from the log history."""
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    history = [h for h in trainer.state.log_history if any(k.startswith("eval_") for k in h)]
    return wall, history
