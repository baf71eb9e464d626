"""A Ctrl-C that a library swallows still ends the run: the place found swallowing one (datasets' fingerprinting of
the tokenize function, inside a bare ``except:``) no longer sees it, and a recorded signal is raised again at the
next training step and when the command ends. In process, fast; real signals to a real search: test_signals.py."""

import os
import signal
import time

import datasets
import pytest
from datasets.fingerprint import Hasher
from transformers import AutoTokenizer, TrainerCallback

from conftest import tiny_bert
from prunepeft.cli import main as cli_main
from prunepeft.common.interrupts import Interrupted, check, handle_interrupts, interrupted
from prunepeft.data.task import TaskData
from prunepeft.data.tokenizing import tokenize_task
from prunepeft.runs.training import TrainSettings, make_trainer, timed_train


@pytest.fixture
def task():
    ds = datasets.Dataset.from_dict(
        {"text": [f"good film {i}" for i in range(64)], "label": [i % 2 for i in range(64)]}
    )
    return TaskData(name="toy", train=ds, validation=ds, test=ds, num_labels=2, label_names=None,
                    metric="accuracy", split_note="one table")  # fmt: skip


@pytest.fixture
def handlers():
    """Our handlers for the test, the former ones (pytest's SIGINT handling) back afterwards."""
    restore = handle_interrupts()
    yield
    restore()


def _swallowed_sigint():
    """What a library's bare ``except:`` does to a Ctrl-C that arrives inside it."""
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler raises at the latest when the signal cuts this short
    except KeyboardInterrupt:
        pass


def test_an_interrupt_while_hashing_the_tokenize_function_reaches_the_run(task, tiny_bert_dir, monkeypatch):
    """datasets hashes a map function inside ``except:`` and would go on with a random hash; ours propagates."""
    real = Hasher.hash

    def interrupted_while_hashing(cls, value):
        if callable(value) or (isinstance(value, list) and value[:1] == ["encode"]):  # the function, or its key
            raise KeyboardInterrupt  # (the tokenizer's vocabulary: the slow part)
        return real(value)

    monkeypatch.setattr(Hasher, "hash", classmethod(interrupted_while_hashing))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    with pytest.raises(KeyboardInterrupt):
        tokenize_task(task, tokenizer, max_length=16)


def test_the_tokenized_splits_keep_a_stable_fingerprint(task, tiny_bert_dir):
    """The fingerprint we give datasets is its own kind of hash (cache files are found again across runs)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    first = tokenize_task(task, tokenizer, max_length=16)
    again = tokenize_task(task, tokenizer, max_length=16)
    other = tokenize_task(task, tokenizer, max_length=8)
    assert first["train"]._fingerprint == again["train"]._fingerprint != other["train"]._fingerprint
    assert first["train"]["input_ids"] == again["train"]["input_ids"]


def test_a_swallowed_signal_is_raised_again(handlers):
    assert not interrupted()
    check()  # nothing received: nothing raised
    _swallowed_sigint()
    assert interrupted()
    with pytest.raises(Interrupted) as err:
        check()
    assert err.value.signum == signal.SIGINT


def test_handlers_are_put_back_and_an_ignored_sigint_stays_ignored():
    before = signal.getsignal(signal.SIGTERM)
    restore = handle_interrupts()
    assert signal.getsignal(signal.SIGTERM) is not before
    restore()
    assert signal.getsignal(signal.SIGTERM) is before
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job (`cmd &`) is started so
    try:
        restore = handle_interrupts()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        restore()
    finally:
        signal.signal(signal.SIGINT, previous)


class _SwallowAtStep(TrainerCallback):
    def __init__(self, step):
        self.step, self.steps_seen = step, []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps_seen.append(state.global_step)
        if state.global_step == self.step:
            _swallowed_sigint()


def test_training_stops_at_the_next_step_after_a_swallowed_interrupt(task, tiny_bert_dir, tmp_path, handlers):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    rows = tokenize_task(task, tokenizer, max_length=16)["train"]
    swallow = _SwallowAtStep(2)
    settings = TrainSettings(progress=False, batch_size=8)
    trainer = make_trainer(tiny_bert(), tokenizer, task, settings, str(tmp_path), rows, max_steps=50,
                           callbacks=[swallow])  # fmt: skip
    with pytest.raises(Interrupted):
        timed_train(trainer)
    assert swallow.steps_seen == [1, 2] and trainer.state.global_step == 2  # not one step more


def test_the_command_ends_130_when_nothing_raised_the_swallowed_interrupt_again(monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "run", lambda args: _swallowed_sigint())
    assert cli_main.main(["env"]) == 130
    assert "prunepeft: stopped by SIGINT" in capsys.readouterr().err
    assert not interrupted()  # main puts the handlers back and forgets the signal
