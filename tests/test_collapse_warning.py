"""A class the model never predicts on validation or test gets one warning line (stderr and results.json), and
the trainable share printed before training is the one in the summary and in results.json."""

import json
from types import SimpleNamespace

import numpy as np

from prunepeft.cli.main import main
from prunepeft.data.metrics import never_predicted
from prunepeft.runs import final_training
from prunepeft.runs.final_training import collapse_warnings, trainable_line
from test_search import csv_task  # noqa: F401  (fixture)

NAMES = ["bad", "good"]


def test_a_constant_prediction_is_named_with_a_hint():
    line = never_predicted([0] * 200, [0, 1] * 100, NAMES, "test")
    assert line.startswith("prunepeft: warning: the model never predicts class 'good' on the test split")
    assert "all 200 rows are predicted 'bad'" in line and "--epochs" in line and "--learning-rate" in line
    assert "\n" not in line


def test_every_class_predicted_gives_no_warning():
    assert never_predicted([0, 1, 1, 0], [0, 1, 0, 1], NAMES, "test") is None
    assert never_predicted([0, 0], [0, 0], NAMES, "validation") is None  # 'good' is not in this split


def test_several_missing_classes_in_one_line():
    names = ["a", "b", "c", "d", "e"]
    line = never_predicted([0, 0, 2, 2, 2], [0, 1, 2, 3, 1], names, "validation")
    assert "classes 'b', 'd' on the validation split" in line  # 'e' has no row here, so it is not named
    assert "it predicts only 'a', 'c' on its 5 rows" in line


def test_one_line_per_split_on_stderr(capsys):
    task = SimpleNamespace(label_names=NAMES, num_labels=2)
    constant = SimpleNamespace(predictions=np.tile([2.0, -1.0], (10, 1)), label_ids=np.array([0, 1] * 5))
    mixed = SimpleNamespace(predictions=np.array([[1.0, 0.0], [0.0, 1.0]]), label_ids=np.array([0, 1]))
    lines = collapse_warnings(task, {"validation": mixed, "test": constant})
    assert len(lines) == 1 and "'good' on the test split (all 10 rows are predicted 'bad')" in lines[0]
    assert capsys.readouterr().err == lines[0] + "\n"


def test_a_collapsed_run_warns_and_records_it(tiny_bert_dir, csv_task, tmp_path, monkeypatch, capsys):  # noqa: F811
    real = final_training.class_ids
    monkeypatch.setattr(final_training, "class_ids", lambda logits: real(logits) * 0)  # every row: class 0
    args = ["train", "--method", "lora", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir",
            str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(results["warnings"]) == 2
    assert "'1' on the validation split" in results["warnings"][0] and "'1' on the test split" in results["warnings"][1]
    assert all(w in captured.err for w in results["warnings"])
    params = results["params"]
    share = trainable_line(params["peft"], params["base"], params["head"])
    assert captured.out.count(share) == 2  # before training and in the summary: one figure
    assert f"{params['peft_percent_of_base']:.3f}%" in share and "trainable%" not in captured.out
