"""What the search spends: round length, the rows it scores for the log, the rows it tokenises, checkpoints."""

from types import SimpleNamespace

import datasets

from prunepeft.data.task import TaskData
from prunepeft.method.callback import PrunePEFTCallback
from prunepeft.method.pruner import SearchSettings
from prunepeft.runs.find_recipe import _round_steps, _search_data
from prunepeft.runs.training import TrainSettings


def test_rounds_follow_the_data_up_to_the_cap():
    plain, capped = SearchSettings(round_max_steps=0), SearchSettings()
    assert _round_steps(plain, 10_329, 32) == 48 and _round_steps(capped, 10_329, 32) == 32
    assert _round_steps(plain, 2_000, 32) == _round_steps(capped, 2_000, 32) == 9  # the benches' slice: unchanged


def test_a_low_fidelity_round_is_that_fraction_of_a_default_round_but_never_under_the_minimum():
    from prunepeft.method.criteria import MIN_STEPS

    assert MIN_STEPS == 8
    low = SearchSettings(search_fraction=0.1)
    assert _round_steps(low, 1_033, 32) == 8  # Rotten Tomatoes' whole split at 0.1: a tenth of 32 steps, raised to 8
    assert _round_steps(low, 200, 32) == 8  # a 2,000-row slice at 0.1: a tenth of 9 steps, raised to 8
    assert _round_steps(SearchSettings(search_fraction=0.5), 5_165, 32) == 16  # half the cap
    assert _round_steps(SearchSettings(search_fraction=0.5, round_max_steps=0), 5_165, 32) == 24  # uncapped


def _task(n):
    rows = lambda k: datasets.Dataset.from_dict({"text": ["x"] * k, "label": [i % 2 for i in range(k)]})  # noqa: E731
    return TaskData("toy", rows(n), rows(300), rows(300), 2, None, "accuracy", "")


def test_the_search_scores_no_validation_rows_unless_asked_and_never_the_test_split():
    train = TrainSettings()
    quiet = _search_data(_task(1000), SearchSettings(), train)
    assert len(quiet.train) == 1000 and len(quiet.validation) == 0 and len(quiet.test) == 0
    logged = _search_data(_task(1000), SearchSettings(eval_samples=256), train)
    assert len(logged.validation) == 256 and len(logged.test) == 0  # at most what a round trains on (8 x 32)
    fewer = _search_data(_task(1000), SearchSettings(eval_samples=256, round_max_steps=0), TrainSettings(batch_size=16))
    assert len(fewer.validation) == 9 * 16  # a round of 0.15 x 63 steps at batch 16: 144 rows, under the 256 asked


class _Rounds:
    def __init__(self):
        self.recorder = SimpleNamespace(after_backward=lambda: None)
        self.ended = 0

    def end_round(self, step, metrics, optimizer):
        self.ended += 1
        return self.ended == 3


def _control():
    return SimpleNamespace(should_save=False, should_evaluate=False, should_training_stop=False)


def test_checkpoints_come_after_rounds_once_the_interval_has_passed_never_after_the_last(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr("prunepeft.method.callback.time.perf_counter", lambda: clock["now"])
    saved = []
    cb = PrunePEFTCallback(_Rounds(), 2, evaluate=False, save_state=saved.append, checkpoint_every=60)
    args = SimpleNamespace(output_dir="out")
    cb.on_train_begin(args, None, _control())
    decisions = []
    for step, now in ((2, 30.0), (4, 70.0), (6, 200.0)):
        clock["now"] = now
        control = cb.on_step_end(args, SimpleNamespace(global_step=step), _control())
        decisions.append(control.should_save)
        if control.should_save:
            cb.on_save(args, SimpleNamespace(global_step=step), control)
    assert decisions == [False, True, False]  # 30 s: not yet; 70 s: due; round 3 ends the search: no checkpoint
    assert saved == ["out/checkpoint-4"]
    every = PrunePEFTCallback(_Rounds(), 2, evaluate=False, save_state=saved.append, checkpoint_every=0)
    assert every.on_step_end(args, SimpleNamespace(global_step=2), _control()).should_save
    plain = PrunePEFTCallback(_Rounds(), 2, evaluate=False)  # a user's Trainer: its own save strategy rules
    assert not plain.on_step_end(args, SimpleNamespace(global_step=2), _control()).should_save
