"""Bad input: each case exits with status 2 and one paragraph naming the problem and the fix, no traceback."""

import pytest
from transformers import GPT2Config, GPT2ForSequenceClassification

from prunepeft.cli.main import main
from test_search import csv_task  # noqa: F401  (fixture)

FAST = ["--epochs", "1", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--no-progress"]  # fmt: skip


def _fails(capsys, args, *expected):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # progress bars may come before
    assert "Traceback" not in err and err.startswith("prunepeft: error: ")
    for text in expected:
        assert text in err, err
    return err


def _search(model, task, out, *extra):
    return ["search", "--model", model, "--task", task, "--output-dir", str(out), *FAST, *extra]


def test_model_path_missing_or_not_a_model(capsys, tmp_path, csv_task):  # noqa: F811
    _fails(capsys, _search(str(tmp_path / "nope"), csv_task, tmp_path / "o1"), "does not exist", "'minilm'")
    (tmp_path / "empty").mkdir()
    _fails(capsys, _search(str(tmp_path / "empty"), csv_task, tmp_path / "o2"), "not a model directory")


def test_architecture_without_places_for_candidates(capsys, tmp_path, csv_task, tiny_bert_dir):  # noqa: F811
    gpt2 = GPT2ForSequenceClassification(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=30522))
    gpt2.save_pretrained(tmp_path / "gpt2")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / "gpt2" / name).write_bytes((__import__("pathlib").Path(tiny_bert_dir) / name).read_bytes())
    _fails(capsys, _search(str(tmp_path / "gpt2"), csv_task, tmp_path / "o"), "Conv1D", "--layers-path")


def test_unknown_task_suggests_the_nearest(capsys, tmp_path, tiny_bert_dir):
    _fails(capsys, _search(tiny_bert_dir, "rotten_tomato", tmp_path / "o"), "rotten_tomatoes")


@pytest.mark.parametrize(
    "content,expected",
    [
        ("", "empty"),
        ("review,label\nnice,1\nbad,0\n", "--text-column"),
        ("text,label\n" + "nice film,1\nbad film,\n" * 20, "label"),
        ("text,label\n" + "nice film,1\n" * 40, "class"),
        ("text,label\n" + ",1\n,0\n" * 20, "empty"),
    ],
    ids=["empty-file", "missing-column", "missing-labels", "single-class", "empty-texts"],
)
def test_bad_data_files(capsys, tmp_path, tiny_bert_dir, content, expected):
    path = tmp_path / "data.csv"
    path.write_text(content)
    _fails(capsys, _search(tiny_bert_dir, str(path), tmp_path / "o"), expected)


def test_missing_data_file(capsys, tmp_path, tiny_bert_dir):
    _fails(capsys, _search(tiny_bert_dir, str(tmp_path / "absent.csv"), tmp_path / "o"), "absent.csv")


@pytest.mark.parametrize(
    "budget,expected",
    [("0", "positive"), ("-0.01", "not a number"), ("0.9", "whole supernet"), ("10", "below the largest"),
     ("ten", "not a number")],
)  # fmt: skip
def test_bad_budgets(capsys, tmp_path, tiny_bert_dir, csv_task, budget, expected):  # noqa: F811
    _fails(capsys, _search(tiny_bert_dir, csv_task, tmp_path / "o", "--budget", budget), expected, "budget")
    assert not (tmp_path / "o").exists()  # nothing left behind to block the corrected command


@pytest.mark.parametrize(
    "flags,expected",
    [(["--low-fidelity", "1.5"], "--low-fidelity"), (["--low-fidelity", "0"], "--low-fidelity"),
     (["--adapter-activation", "swish"], "--adapter-activation"), (["--round-epochs", "0"], "--round-epochs"),
     (["--batch-size", "0"], "--batch-size"), (["--target", "qq=attention.self.query"], "ROLE"),
     (["--lora-rank", "0"], "--lora-rank")],
)  # fmt: skip
def test_bad_settings(capsys, tmp_path, tiny_bert_dir, csv_task, flags, expected):  # noqa: F811
    _fails(capsys, _search(tiny_bert_dir, csv_task, tmp_path / "o", *flags), expected)


def test_conflicting_flags(capsys, tmp_path, tiny_bert_dir, csv_task):  # noqa: F811
    args = ["train", "--recipe", "x.json", "--method", "lora", "--model", tiny_bert_dir, "--task", csv_task,
            "--output-dir", str(tmp_path / "o")]  # fmt: skip
    _fails(capsys, args, "give one of them")
    _fails(capsys, ["search", "--resume", str(tmp_path), "--overwrite"], "give one of them")
    _fails(capsys, ["train", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(tmp_path / "p")],
           "--recipe")  # fmt: skip


def test_yaml_config_unknown_key_suggests_nearest(capsys, tmp_path, tiny_bert_dir, csv_task):  # noqa: F811
    cfg = tmp_path / "run.yaml"
    cfg.write_text("budget: 0.01\nlearning_rat: 0.001\n")
    _fails(capsys, _search(tiny_bert_dir, csv_task, tmp_path / "o", "--config", str(cfg)), "learning_rate")
    cfg.write_text("- just\n- a list\n")
    _fails(capsys, _search(tiny_bert_dir, csv_task, tmp_path / "o", "--config", str(cfg)), "mapping")
    _fails(capsys, _search(tiny_bert_dir, csv_task, tmp_path / "o", "--config", str(tmp_path / "no.yaml")), "--config")


def test_yaml_config_with_flag_override(tmp_path, tiny_bert_dir, csv_task):  # noqa: F811
    import json

    cfg = tmp_path / "run.yaml"
    cfg.write_text("budget: '0.1%'\ncriterion: weight\nepochs: 2\nseed: 3\n")
    out = tmp_path / "o"
    assert main(_search(tiny_bert_dir, csv_task, out, "--config", str(cfg), "--budget", "2000")) == 0
    saved = json.loads((out / "run_config.json").read_text())
    assert saved["search"]["budget"] == "2000" and saved["search"]["criterion"] == "weight"
    assert saved["train"]["seed"] == 3 and saved["train"]["epochs"] == 1  # the flag in FAST wins over the file


def test_nan_loss_stops_with_a_clear_message(capsys, tmp_path, tiny_bert_dir, csv_task):  # noqa: F811
    err = _fails(capsys, _search(tiny_bert_dir, csv_task, tmp_path / "o", "--learning-rate", "1e30", "--budget", "2000"),
                 "--learning-rate")  # fmt: skip
    assert "NaN" in err or "nan" in err or "inf" in err
    assert (tmp_path / "o" / "search_log.jsonl").exists()  # what was logged is kept


def test_gguf_without_the_optional_package_or_the_file(capsys, tmp_path, tiny_bert_dir, csv_task, monkeypatch):  # noqa: F811
    import importlib.util

    _fails(capsys, _search(tiny_bert_dir, csv_task, tmp_path / "o", "--gguf-file", "model.gguf"), "is not a file in")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.gguf").write_bytes(b"")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else find_spec(name, *a))
    _fails(
        capsys, _search(str(tmp_path / "m"), csv_task, tmp_path / "o", "--gguf-file", "model.gguf"), "pip install gguf"
    )


def test_output_dir_that_is_the_model_folder_is_refused(capsys, tmp_path, tiny_bert_dir, csv_task):  # noqa: F811
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, model)
    _fails(capsys, _search(str(model), csv_task, model, "--overwrite"), "model folder itself")
    assert (model / "config.json").exists()  # --overwrite did not delete the model
