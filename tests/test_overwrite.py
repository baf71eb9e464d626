"""Output folders: --overwrite replaces an earlier run and nothing else; `train --recipe` reuses the search's run
settings; the end of a run says what to do next."""

import json
import random
import shutil

import pytest

from prunepeft.cli.main import main
from prunepeft.runs.run_folder import budget_dir, clear_run, foreign_entries, is_run
from test_cli import _light

FAST = ["--epochs", "1", "--batch-size", "16", "--max-length", "16", "--no-progress"]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory) -> str:
    """A CSV with its own column names and string labels."""
    rng = random.Random(0)
    words = {"good": "great fine lovely superb fun".split(), "bad": "awful dull boring weak poor".split()}
    rows = ["review,stars"]
    for i in range(160):
        stars = "good" if i % 2 else "bad"
        rows.append(f"{' '.join(rng.choices(words[stars], k=4))} film {i},{stars}")
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_bert_dir, reviews):
    """A real finished search with custom columns: the folder as a run leaves it."""
    out = tmp_path_factory.mktemp("search") / "run"
    args = ["search", "--model", tiny_bert_dir, "--task", reviews, "--text-column", "review", "--label-column",
            "stars", "--output-dir", str(out), "--budget", "2000", "--lora-rank", "4", "--round-epochs", "0.5", *FAST]  # fmt: skip
    assert main(args) == 0
    return out


def _search_args(task, out, *extra):
    return ["search", "--task", task, "--text-column", "review", "--label-column", "stars", "--output-dir", str(out),
            *FAST, *extra]  # fmt: skip


def _error(capsys) -> str:
    return capsys.readouterr().err.strip().splitlines()[-1]


# ------------------------------------------------------------------------------- what --overwrite may remove


def test_a_folder_of_user_files_is_refused_truthfully_and_kept(tmp_path, reviews, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        assert main(_search_args(reviews, out, *extra)) == 2
        err = _error(capsys)
        assert "holds no prunepeft run (notes.txt)" in err and "already holds a run" not in err, err
    assert (out / "notes.txt").read_text() == "mine"


def test_a_run_with_a_user_file_in_it_is_refused_and_kept(tmp_path, reviews, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("run_config.json", "results.json", "notes.txt"):
        (out / name).write_text("{}")
    assert main(_search_args(reviews, out, "--overwrite")) == 2
    assert "files prunepeft did not write (notes.txt)" in _error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "results.json", "run_config.json"]


def test_output_dir_dot_beside_the_task_file_keeps_it(tmp_path, reviews, monkeypatch, capsys):
    shutil.copy(reviews, tmp_path / "reviews.csv")
    (tmp_path / "README.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    assert main(_search_args("reviews.csv", ".", "--overwrite")) == 2
    assert "holds the task data 'reviews.csv'" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.txt", "reviews.csv"]


def test_the_task_file_inside_the_output_folder_survives(tmp_path, reviews, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run_config.json").write_text("{}")
    shutil.copy(reviews, out / "reviews.csv")
    assert main(_search_args(str(out / "reviews.csv"), out, "--overwrite")) == 2
    assert "holds the task data" in _error(capsys)
    assert (out / "reviews.csv").exists() and (out / "run_config.json").exists()


def test_a_model_exported_into_the_run_folder_is_not_cleared_while_in_use(tmp_path, reviews, tiny_bert_dir, capsys):
    """merged/ is a name prunepeft writes (export --merge), but not while it is the model of the new run."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "run_config.json").write_text("{}")
    shutil.copytree(tiny_bert_dir, out / "merged")
    assert main(_search_args(reviews, out, "--model", str(out / "merged"), "--overwrite")) == 2
    assert "holds the model folder" in _error(capsys)
    assert (out / "merged" / "config.json").exists()


def test_the_working_folder_is_never_cleared(tmp_path, reviews, monkeypatch, capsys):
    (tmp_path / "results.json").write_text("{}")  # a run, and the folder we work in
    monkeypatch.chdir(tmp_path)
    assert main(_search_args(reviews, ".", "--overwrite")) == 2
    assert "the folder you are working in" in _error(capsys)
    assert (tmp_path / "results.json").exists()


def test_refusals_come_before_torch_loads(tmp_path, reviews):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    done, heavy, _ = _light(*_search_args(reviews, tmp_path / "mine", "--overwrite"))
    assert done.returncode == 2 and "holds no prunepeft run" in done.stderr
    assert "torch" not in heavy, heavy


def test_bad_input_after_the_start_leaves_the_working_folder_in_place(tmp_path, reviews, tiny_bert_dir, monkeypatch):
    """A run refused once started (a budget below any candidate) forgets what it wrote, not the folder."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(_search_args(reviews, ".", "--model", tiny_bert_dir, "--budget", "10")) == 2
    assert work.is_dir() and not list(work.iterdir())


def test_a_finished_search_holds_only_what_prunepeft_writes(searched):
    assert is_run(str(searched)) and foreign_entries(str(searched)) == []
    (searched / "notes.txt").write_text("mine")
    (searched / ".prunepeft-export-x1y2").mkdir()  # the scratch folder of an export killed mid-write
    try:
        assert foreign_entries(str(searched)) == ["notes.txt"]
    finally:
        (searched / "notes.txt").unlink()
        (searched / ".prunepeft-export-x1y2").rmdir()


def test_clearing_a_multi_budget_run_keeps_what_is_not_ours(tmp_path):
    out = tmp_path / "run"
    (out / "_search").mkdir(parents=True)
    (out / "run_config.json").write_text(json.dumps({"search": {"budget": "2%,1%"}}))
    for label in ("2%", "1%"):
        (out / budget_dir(label)).mkdir()
        (out / budget_dir(label) / "recipe.json").write_text("{}")
    (out / "results.json.tmp").write_text("{")
    assert foreign_entries(str(out)) == []
    (out / "0.5pct").mkdir()  # not one of this run's budgets
    (out / "1pct" / "notes.txt").write_text("mine")
    assert foreign_entries(str(out)) == ["0.5pct", "1pct"]
    clear_run(str(out))
    assert sorted(p.name for p in out.iterdir()) == ["0.5pct", "1pct"]
    assert (out / "1pct" / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------- train --recipe


def test_train_recipe_reuses_the_search_settings_and_replaces_a_real_run(searched, tmp_path, capsys):
    """No column or --max-length flags: the recipe's are used. The target folder holds a real earlier run, which
    --overwrite replaces. The recipe was edited down to half its units: the summary counts what was trained."""
    import prunepeft

    recipe = json.loads((searched / "recipe.json").read_text())
    recipe["candidates"] = recipe["candidates"][: max(1, len(recipe["candidates"]) // 2)]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(recipe))
    again = tmp_path / "again"
    shutil.copytree(searched, again)
    capsys.readouterr()
    args = ["train", "--recipe", str(edited), "--output-dir", str(again), "--overwrite", "--epochs", "1",
            "--batch-size", "16", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "as in the recipe: --text-column review, --label-column stars" in printed.err
    header = next(line for line in printed.out.splitlines() if line.startswith("== "))
    assert header.startswith("== recipe") and "search" not in header, header
    saved = json.loads((again / "run_config.json").read_text())
    assert saved["run"]["text_column"] == "review" and saved["train"]["max_length"] == 16
    assert not (again / "search_log.jsonl").exists()  # the earlier run went
    model = prunepeft.load(None, str(again))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad) - recipe["head_params"]
    results = json.loads((again / "results.json").read_text())
    assert results["params"]["peft"] == trained < recipe["peft_params"]
    assert f"trainable PEFT parameters: {trained:,}" in printed.out
    assert f"prunepeft predict {again}" in printed.out


def test_flags_given_on_the_command_line_are_known(tmp_path):
    from prunepeft.cli.parser import parse

    args = parse(["train", "--recipe", "r.json", "--max-length", "128", "--text-column", "t"])
    assert {"recipe", "max_length", "text_column"} <= args.given and "label_column" not in args.given
    config = tmp_path / "c.yaml"
    config.write_text("label_column: y\n")
    assert "label_column" in parse(["train", "--config", str(config)]).given


# ------------------------------------------------------------------------------- the end of a run


def _results(method="prunepeft"):
    return {"metric": "accuracy", "method": method, "task": "t", "model": "m", "validation": {"eval_accuracy": 0.5},
            "params": {"peft": 10, "peft_percent_of_base": 0.1, "base": 100, "head": 2},
            "test": {"test_accuracy": 0.5}, "time_s": {}}  # fmt: skip


@pytest.mark.parametrize(
    "modules,expected,absent",
    [(["lora", "lora"], "prunepeft export", "prunepeft.load"), (["lora", "serial_adapter"], "prunepeft.load(None",
                                                                 "prunepeft export")],
)  # fmt: skip
def test_the_summary_ends_with_the_next_commands(tmp_path, capsys, modules, expected, absent):
    from prunepeft.cli.summary import print_summary

    (tmp_path / "recipe.json").write_text(json.dumps({"candidates": [{"module": m} for m in modules]}))
    print_summary(_results(), str(tmp_path))
    out = capsys.readouterr().out
    assert f"prunepeft predict {tmp_path} --task new.csv" in out and expected in out and absent not in out
    assert "report.html" not in out  # none written
    (tmp_path / "report.html").write_text("")
    print_summary(_results(), str(tmp_path))
    assert f"report:          {tmp_path}/report.html" in capsys.readouterr().out


def test_a_peft_lora_baseline_is_offered_for_export(tmp_path, capsys):
    from prunepeft.cli.summary import print_summary

    for method in ("lora", "adalora"):
        print_summary(_results(method), str(tmp_path))
        assert f"prunepeft export {tmp_path}" in capsys.readouterr().out
    print_summary(_results("full"), str(tmp_path))
    assert "prunepeft export" not in capsys.readouterr().out


def test_a_space_with_adapters_says_how_its_result_loads(capsys):
    from prunepeft.cli.main import _adapter_note

    _adapter_note("attention")
    assert "prunepeft.load, not with peft" in capsys.readouterr().err
    _adapter_note("lora")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "where,finished,expected",
    [("warm-up turn 3 of 3 (step 24)", "warm-up turn 3 of 3", "just after warm-up turn 3 of 3 had finished"),
     ("warm-up turn 2 of 3 (step 16)", None, "during warm-up turn 2 of 3 (step 16)"),
     ("round 1 of about 4", "warm-up turn 3 of 3", "during round 1 of about 4")],
)  # fmt: skip
def test_an_interruption_names_the_phase_in_progress(monkeypatch, where, finished, expected):
    import signal
    from types import SimpleNamespace

    from prunepeft.cli.main import _interrupted_message
    from prunepeft.common.progress import PLAN

    monkeypatch.setattr(PLAN, "where", where)
    monkeypatch.setattr(PLAN, "finished", (where, finished) if finished == where.split(" (")[0] else None)
    args = SimpleNamespace(command="search", resume="runs/x")
    assert f"stopped by SIGINT {expected}" in _interrupted_message(args, signal.SIGINT)[0]
