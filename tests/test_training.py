"""The Trainer wiring: evaluation in length order gives the same metrics as the stored order."""

import random

import datasets
import pytest
from transformers import AutoTokenizer

from conftest import tiny_bert
from prunepeft.data.task import TaskData
from prunepeft.data.tokenizing import tokenize_task
from prunepeft.runs.training import TrainSettings, make_trainer


@pytest.fixture
def mixed_lengths():
    rng = random.Random(0)
    words = "good bad fine dull great awful plot cast film scene".split()
    rows = [" ".join(rng.choices(words, k=rng.randint(1, 30))) for _ in range(150)]
    labels = [i % 2 for i in range(150)]
    ds = datasets.Dataset.from_dict({"text": rows, "label": labels})
    return TaskData(
        name="mixed",
        train=ds,
        validation=ds,
        test=ds,
        num_labels=2,
        label_names=None,
        metric="accuracy",
        split_note="one table for all splits",
    )


def test_length_ordered_evaluation_matches_stored_order(mixed_lengths, tiny_bert_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rows = tokenize_task(mixed_lengths, tokenizer, max_length=48)["validation"]
    trainer = make_trainer(
        tiny_bert(), tokenizer, mixed_lengths, TrainSettings(progress=False), str(tmp_path), rows, rows
    )

    order = list(trainer._get_eval_sampler(rows))
    lengths = [len(rows[i]["input_ids"]) for i in order]
    assert sorted(order) == list(range(len(rows))) and lengths == sorted(lengths)
    by_length = trainer.evaluate()

    trainer.sort_eval_by_length = False
    stored = trainer.evaluate()
    assert by_length["eval_accuracy"] == stored["eval_accuracy"]
    assert by_length["eval_loss"] == pytest.approx(stored["eval_loss"], rel=1e-5)


def test_learning_rate_warm_up_is_a_fraction_of_the_steps(mixed_lengths, tiny_bert_dir, tmp_path):
    """--warmup 0.06 of 100 steps warms up over 6 steps, whichever transformers reads the argument."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rows = tokenize_task(mixed_lengths, tokenizer, max_length=16)["train"]
    settings = TrainSettings(progress=False, warmup=0.06, learning_rate=1e-3)
    trainer = make_trainer(tiny_bert(), tokenizer, mixed_lengths, settings, str(tmp_path), rows, max_steps=100)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    rates = []
    for _ in range(8):
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert rates[0] == 0.0 and all(a < b for a, b in zip(rates[:6], rates[1:7], strict=True))
    assert rates[6] == pytest.approx(1e-3) and rates[7] < rates[6]
