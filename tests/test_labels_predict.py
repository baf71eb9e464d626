"""String labels keep their names everywhere (model config, recipe, results, report), the test split is reported
per class, `prunepeft.load` prints no misleading load report, and `prunepeft predict` labels new text."""

import io
import json
import logging
import random

import pandas as pd
import pytest

import prunepeft
from prunepeft.cli.main import main

GOOD = "good great fine lovely superb fun moving".split()
BAD = "bad awful dull boring weak poor messy".split()
NAMES = ["sports", "weather"]  # sorted: the ids are 0 and 1 in this order


@pytest.fixture(scope="module")
def string_task(tmp_path_factory) -> str:
    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(240):
        label = i % 3 == 0  # imbalanced: a third are "sports"
        words = rng.choices(GOOD if label else BAD, k=4) + rng.choices(GOOD + BAD, k=2)
        rng.shuffle(words)
        rows.append(f"{' '.join(words)} film {i},{NAMES[0] if label else NAMES[1]}")
    path = tmp_path_factory.mktemp("strings") / "topics.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def run_dir(tiny_bert_dir, string_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("labels") / "run"
    args = ["search", "--model", tiny_bert_dir, "--task", string_task, "--output-dir", str(out), "--epochs", "1",
            "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
            "--round-epochs", "0.5", "--budget", "2000", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return out


def test_label_names_in_recipe_and_results(run_dir):
    recipe = json.loads((run_dir / "recipe.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    for doc in (recipe, results):
        assert doc["id2label"] == {"0": "sports", "1": "weather"}
        assert doc["label2id"] == {"sports": 0, "weather": 1}


def test_per_class_figures_on_the_test_split(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    per_class = results["test"]["per_class"]
    assert per_class["labels"] == NAMES
    matrix = per_class["confusion_matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert sum(map(sum, matrix)) == results["sizes"]["test"]
    for name in NAMES:
        scores = per_class["classes"][name]
        assert set(scores) == {"precision", "recall", "f1", "support"}
        assert scores["support"] == sum(matrix[NAMES.index(name)])
    page = (run_dir / "report.html").read_text()
    assert "Test split per class" in page and "Confusion matrix" in page and "weather" in page


def test_load_restores_names_and_prints_no_load_report(run_dir, capfd, caplog):
    with caplog.at_level(logging.WARNING):
        model = prunepeft.load(None, str(run_dir))
    captured = capfd.readouterr()
    noise = captured.out + captured.err + caplog.text
    assert "MISSING" not in noise and "newly initialized" not in noise and "LOAD REPORT" not in noise, noise
    assert model.config.id2label == {0: "sports", 1: "weather"}
    assert model.config.label2id == {"sports": 0, "weather": 1}


def test_load_still_warns_about_tensors_it_does_not_restore(run_dir, tiny_bert_dir, tmp_path, caplog):
    """A real warning stays: a base checkpoint holding a tensor that the model has no place for."""
    import shutil
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    base = tmp_path / "base"
    shutil.copytree(tiny_bert_dir, base)
    state = load_file(str(Path(tiny_bert_dir) / "model.safetensors"))
    state["bert.stray.weight"] = state["bert.pooler.dense.weight"].clone()
    save_file(state, str(base / "model.safetensors"), metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING, logger="prunepeft"):
        prunepeft.load(str(base), str(run_dir))
    assert "bert.stray.weight" in caplog.text and "classifier" not in caplog.text, caplog.text


def test_merged_model_keeps_the_label_names(run_dir, tmp_path):
    from transformers import AutoConfig

    from prunepeft.handover.peft_export import merge_lora

    merge_lora(prunepeft.load(None, str(run_dir))).save_pretrained(tmp_path / "merged")
    assert AutoConfig.from_pretrained(tmp_path / "merged").id2label == {0: "sports", 1: "weather"}


def test_predict_a_csv_file(run_dir, string_task, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("id,text\n7,great fun film\n8,dull boring film\n9,lovely superb moving\n")
    out = tmp_path / "labelled.csv"
    assert main(["predict", str(run_dir), "--task", str(new), "--output", str(out), "--batch-size", "2"]) == 0
    table = pd.read_csv(out)
    assert list(table["id"]) == [7, 8, 9]  # the input's columns travel along, in input order
    assert set(table["label"]) <= set(NAMES)
    probs = table[[f"p_{n}" for n in NAMES]].to_numpy()
    assert abs(probs.sum(axis=1) - 1).max() < 1e-4
    assert (abs(table["probability"] - probs.max(axis=1)) < 1e-6).all()


def test_predict_stdin_to_jsonl(run_dir, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("great fun film\n\ndull boring film\n"))
    assert main(["predict", str(run_dir), "--format", "jsonl", "--no-progress"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["great fun film", "dull boring film"]
    for record in records:
        assert record["label"] in NAMES and set(record["probabilities"]) == set(NAMES)


def test_predict_refuses_what_it_cannot_use(run_dir, tmp_path, capsys):
    assert main(["predict", str(tmp_path)]) == 2
    assert "no finished run" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("review\nnice\n")
    assert main(["predict", str(run_dir), "--task", str(bad)]) == 2
    assert "--text-column" in capsys.readouterr().err
