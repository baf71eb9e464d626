"""The `prunepeft` command: flags in, the chosen job run, its summary out; bad input and interruptions as messages.

Only argparse, the settings file reader and light checks are imported at start: torch and transformers load once
the flags and inputs have been checked, so `--help`, `--version` and bad input answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys

from prunepeft.cli.checks import output_dir_of, parse_targets, preflight
from prunepeft.cli.parser import parse
from prunepeft.cli.summary import print_summary
from prunepeft.common.interrupts import Interrupted, handle_interrupts
from prunepeft.common.interrupts import check as check_interrupted


def _fill(cls, args: argparse.Namespace, **computed):
    """A settings dataclass from the flags of the same names, plus the values computed here."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in computed and hasattr(args, f.name)]
    return cls(**{n: getattr(args, n) for n in names}, **computed)


def _options(args):
    from prunepeft.runs.options import RunOptions

    return _fill(RunOptions, args, output_dir=output_dir_of(args), targets=parse_targets(args.target))


def _train_settings(args):
    from prunepeft.runs.training import TrainSettings

    auto = args.learning_rate == "auto"
    rate = None if auto else args.learning_rate
    if rate is None and not (args.command == "train" and args.method == "recipe"):
        rate = None if auto else TrainSettings.learning_rate  # a fixed default, unless chosen on validation
    return _fill(TrainSettings, args, progress=not args.no_progress, learning_rate=rate, choose_rate=auto)


def run(args) -> dict | None:
    if args.command == "env":
        import json

        from prunepeft.runs.options import environment

        print(json.dumps(environment(), indent=2))
        return None
    if args.command == "bench":
        from prunepeft.bench.run import run_grid

        print(f"written to {run_grid(args.config, args.jobs)}")
        return None
    if args.command == "report":
        from prunepeft.common.config import ConfigError

        if not os.path.isdir(args.run_dir):
            raise ConfigError(f"{args.run_dir!r} is not a folder; give the --output-dir of a run.")
        from prunepeft.handover.report import write_report

        print(f"written to {write_report(args.run_dir)}")
        return None
    if args.command == "predict":
        from prunepeft.handover.predict import predict_command

        _progress(args)
        predict_command(args)
        return None
    if args.command == "export":
        from prunepeft.handover.peft_export import export_merged, export_peft

        export = export_merged if args.merge else export_peft
        target = args.output or os.path.join(args.run_dir, "merged" if args.merge else "peft")
        print(f"written to {export(args.run_dir, target, args.model)}/")
        return None
    if args.command == "search" and args.resume:
        from prunepeft.common.config import ConfigError

        if args.overwrite:
            raise ConfigError("--resume continues a run and --overwrite replaces it: give one of them.")
        from prunepeft.runs.run_folder import resumable_config

        resumable_config(args.resume)  # a folder that cannot be resumed is refused before torch loads
        from prunepeft.runs.search import resume

        _progress(args)
        results = resume(args.resume)
        print_summary(results, args.resume)
        return results
    recipe = None
    if args.command == "train":
        if args.recipe and args.method == "recipe" and not os.path.exists(args.recipe):
            from prunepeft.common.config import ConfigError

            raise ConfigError(f"no recipe at {args.recipe!r}; give the recipe.json written by `prunepeft search`.")
        if args.recipe and args.method != "recipe":
            from prunepeft.common.config import ConfigError

            raise ConfigError(
                f"--recipe trains a found configuration and --method {args.method} a baseline: give one of them."
            )
        if args.method == "recipe" and not args.recipe:
            from prunepeft.common.config import ConfigError

            raise ConfigError("`prunepeft train` needs --recipe PATH (the recipe.json of a search), or --method NAME.")
        if args.recipe:
            from prunepeft.method.recipe import Recipe

            recipe = Recipe.load(args.recipe)
            _from_recipe(args, recipe)
        args.model = args.model or (recipe.model if recipe else "minilm")
        args.task = args.task or (recipe.task if recipe else "rotten_tomatoes")
    preflight(args)
    _progress(args)
    opts = _options(args)
    train = _train_settings(args)
    if args.command == "search":
        from prunepeft.method.candidates import SpaceSettings
        from prunepeft.method.pruner import SearchSettings
        from prunepeft.runs.search import search

        space = _fill(SpaceSettings, args)
        fraction = 1.0 if args.low_fidelity is None else args.low_fidelity
        settings = _fill(
            SearchSettings, args, blocks=not args.no_blocks, search_fraction=fraction,
            eval_samples=args.search_eval_samples,
        )  # fmt: skip
        _plan(args, search=True, search_fraction=fraction)
        _adapter_note(args.space)
        results = search(opts, space, settings, train)
    elif args.method != "recipe":
        from prunepeft.method.candidates import SpaceSettings
        from prunepeft.runs.baselines import train_baseline

        _plan(args, search=False)
        targets = [t.strip() for t in (args.lora_targets or "").split(",") if t.strip()]
        results = train_baseline(
            opts, train, args.method, rank=args.lora_rank or 32,
            alpha=32.0 if args.lora_alpha is None else args.lora_alpha, targets=targets,
            space=_fill(SpaceSettings, args),
        )  # fmt: skip
    else:
        from prunepeft.runs.final_training import train_recipe

        _plan(args, search=False)
        results = train_recipe(opts, recipe, train)
        print_summary(results, opts.output_dir, title=f"recipe {args.recipe} retrained")
        return results
    print_summary(results, opts.output_dir)
    return results


# `train --recipe`: the search's settings a retraining keeps unless the command gives them (not
# --trust-remote-code: running a model's own code is asked for by each command).
RECIPE_SETTINGS = (
    "data_dir", "text_column", "text_pair_column", "label_column", "max_train_samples", "layers_path",
    "prompt_column", "response_column", "answer_column", "gguf_file",
)  # fmt: skip


MODEL_SETTINGS = ("layers_path", "gguf_file", "target")  # they describe the recipe's model, not the task


def _from_recipe(args, recipe) -> None:
    """The recipe's model, task, data settings and --max-length, where the command line gives none: the data
    settings only when --task is not given (another task has its own columns), the model's only without --model."""
    run, given = recipe.settings.get("run", {}), getattr(args, "given", set())
    saved = {name: run.get(name) for name in RECIPE_SETTINGS}
    saved["target"] = [f"{role}={'+'.join(names)}" for role, names in (run.get("targets") or {}).items()]
    saved["max_length"] = recipe.settings.get("train", {}).get("max_length")
    for name in list(saved):
        if ("model" if name in MODEL_SETTINGS else "task") in given and name != "max_length":
            del saved[name]
    used = []
    for name, value in saved.items():
        if name not in given and value not in (None, []) and getattr(args, name) != value:
            setattr(args, name, value)
            used.append(f"--{name.replace('_', '-')} {' '.join(value) if name == 'target' else value}")
    if used:
        print(f"prunepeft: as in the recipe: {', '.join(used)}", file=sys.stderr)


def _adapter_note(space: str) -> None:
    from prunepeft.method.candidates import SPACES

    if any(module != "lora" for _, module, _ in SPACES[space]):
        print(
            f"prunepeft: note: --space {space} has adapters among its candidates; a result that keeps one loads "
            "with prunepeft.load, not with peft (--space lora keeps to LoRA, which exports to peft).",
            file=sys.stderr,
        )


def _progress(args) -> None:
    """The libraries' progress bars on or off (after the checks: switching them imports transformers)."""
    from prunepeft.common.progress import set_progress

    set_progress(not args.no_progress)


def _plan(args, *, search: bool, **extra) -> None:
    from prunepeft.common.progress import new_plan

    fields = dict(epochs=args.epochs, batch_size=args.batch_size, search=search, **extra)
    if search:
        fields.update(budget=args.budget, round_epochs=args.round_epochs, hybrid=args.criterion == "hybrid")
    new_plan(**fields)


# ------------------------------------------------------------------------------- errors and interruptions

# "bad input" errors, as (module, class): shown as one paragraph without a traceback. Checked by name, so that
# catching them imports nothing (a class whose module was never imported cannot have been raised).
USER_ERROR_NAMES = (
    ("prunepeft.data.task", "DataError"), ("prunepeft.method.backbone", "ModelError"),
    ("prunepeft.method.candidates", "SpaceError"), ("prunepeft.method.pruner", "BudgetError"),
    ("prunepeft.method.recipe", "RecipeError"), ("prunepeft.runs.run_folder", "RunError"),
    ("prunepeft.runs.checkpoints", "ResumeError"), ("prunepeft.method.callback", "NonFiniteLossError"),
    ("prunepeft.common.config", "ConfigError"), ("prunepeft.handover.peft_export", "ExportError"),
    ("prunepeft.handover.predict", "PredictError"),
)  # fmt: skip


def is_user_error(err: BaseException) -> bool:
    for module, name in USER_ERROR_NAMES:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(err, cls):
            return True
    return False


# The phase a progress unit belongs to (as common.progress names the Trainer's folders), by the unit's first words
def _interrupted_message(args, signum: int) -> list[str]:
    name = signal.Signals(signum).name
    from prunepeft.common.progress import PLAN

    where = PLAN.stopped_when()
    command = getattr(args, "command", None)
    if command == "search":
        out = args.resume or output_dir_of(args)
        lines = [f"prunepeft: stopped by {name} {where}; finished rounds and epochs are kept in {out}/."]
        if os.path.exists(os.path.join(out, "run_config.json")):
            lines.append(f"prunepeft: continue with: prunepeft search --resume {out}")
        else:
            lines.append("prunepeft: nothing had been saved yet; run the same command again to start over.")
        return lines
    if command == "bench":
        return [
            f"prunepeft: stopped by {name}; finished runs are kept.",
            f"prunepeft: continue with: prunepeft bench --config {args.config}",
        ]
    if command in ("train",):
        out = output_dir_of(args)
        return [
            f"prunepeft: stopped by {name} {where}; a training run does not resume.",
            f"prunepeft: start it again with the same command and --overwrite (it replaces {out}/).",
        ]
    return [f"prunepeft: stopped by {name}."]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = None
    restore = handle_interrupts()  # SIGTERM ends the run like Ctrl-C: one message, the resume command, exit 143
    try:
        args = parse(argv)
        debug = getattr(args, "debug", False)
        if not debug:
            logging.getLogger("transformers").setLevel(logging.ERROR)
        if getattr(args, "no_progress", False) and "tqdm" not in sys.modules:
            os.environ["TQDM_DISABLE"] = "1"  # read when tqdm is imported; costs nothing before the checks
        run(args)
        check_interrupted()  # a signal whose exception a library swallowed, with no step after it to raise it
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        if args is not None and getattr(args, "debug", False):
            raise
        print("", file=sys.stderr)
        for line in _interrupted_message(args, signum):
            print(line, file=sys.stderr)
        return 128 + int(signum)
    except Exception as err:
        if not is_user_error(err) or (args is not None and getattr(args, "debug", False)):
            raise
        print(f"prunepeft: error: {err}", file=sys.stderr)
        return 2
    finally:
        restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
