"""`prunepeft search | train | export | report | env`: thin recipes that turn flags into settings and call the jobs."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from prunepeft.baselines import METHODS as BASELINES
from prunepeft.search import METHODS, SearchSettings
from prunepeft.space import ROLES, SPACES, SpaceSettings
from prunepeft.training import TrainSettings

DEFAULT_OUTPUT = "runs/{task}"


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and data")
    g.add_argument("--model", default="minilm", help="model directory, hub id, or 'minilm' (default)")
    g.add_argument(
        "--task", default="rotten_tomatoes",
        help="rotten_tomatoes (default), subjectivity, a GLUE task (sst2, cola, mrpc, qqp, stsb, mnli, qnli, "
        "rte), or a .csv / .jsonl file or saved datasets folder",
    )  # fmt: skip
    g.add_argument("--data-dir", help="a saved copy of a GLUE task (datasets.save_to_disk), for offline use")
    g.add_argument("--text-column")
    g.add_argument("--text-pair-column")
    g.add_argument("--label-column")
    g.add_argument("--prompt-column", help="instruction tuning: a .jsonl of prompt/response pairs (default 'prompt')")
    g.add_argument("--response-column", help="instruction tuning: the response column (default 'response')")
    g.add_argument("--answer-column", help="instruction tuning: a short answer for exact-match accuracy")
    g.add_argument("--max-train-samples", type=int, help="a stratified subset of the training data")
    g.add_argument("--gguf-file", help="a GGUF file in --model's folder (or absolute path); needs `pip install gguf`")
    g.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (off by default)")
    g.add_argument("--layers-path", help="dotted path of the list of transformer blocks, if not found automatically")
    g.add_argument(
        "--target", action="append", default=[], metavar="ROLE=NAME[+NAME]",
        help=f"name the Linear inside a block for a role ({', '.join(ROLES)}), e.g. q=attn.q_proj",
    )  # fmt: skip
    t = p.add_argument_group("training")
    t.add_argument("--config", help="a YAML file of settings (flag names as keys); flags given here win")
    t.add_argument("--output-dir", default=None, help=f"where results go (default {DEFAULT_OUTPUT})")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run in --output-dir")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs", type=float, default=3.0)
    t.add_argument("--learning-rate", type=float, default=1e-3)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--max-length", type=int, default=128)
    t.add_argument("--warmup", type=float, default=0.06, help="fraction of steps with linear warm-up")
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--report-to", default="none", help="passed to the Trainer, e.g. tensorboard")
    t.add_argument("--no-progress", action="store_true", help="hide progress bars")
    t.add_argument("--debug", action="store_true", help="show full tracebacks")


def _space_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search space")
    g.add_argument("--space", choices=sorted(SPACES), default="paper")
    g.add_argument("--lora-rank", type=int, default=32)
    g.add_argument("--lora-alpha", type=float, default=32.0)
    g.add_argument("--lora-dropout", type=float, default=0.0)
    g.add_argument("--bottleneck-size", type=int, default=64, help="adapter width (default 64)")
    g.add_argument("--adapter-activation", default="relu")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunepeft", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("search", help="find, retrain and test a PEFT configuration (the main job)")
    _common(s)
    _space_flags(s)
    g = s.add_argument_group("search")
    g.add_argument("--resume", metavar="DIR", help="continue the interrupted search in DIR with its own settings")
    g.add_argument("--budget", default="0.01", help="fraction of the base model ('0.01', '1%%') or a count")
    g.add_argument("--criterion", choices=METHODS, default="hybrid")
    g.add_argument("--no-blocks", action="store_true", help="hybrid without depth blocks (partitions by kind)")
    g.add_argument("--prune-per-round", type=int, default=0, help="k; default ceil(candidates / 8)")
    g.add_argument("--round-epochs", type=float, default=0.15, help="training per round, in epochs")
    g.add_argument("--warmup-fraction", type=float, default=0.1)
    g.add_argument("--warmup-turns", type=int, default=3)
    g.add_argument(
        "--low-fidelity", type=float, nargs="?", const=0.1, default=None, metavar="FRACTION",
        help="search on a stratified FRACTION of the training data (default 0.1)",
    )  # fmt: skip
    g.add_argument(
        "--search-eval-samples",
        type=int,
        default=512,
        help="validation rows scored per round, for the log; at most what a round trains on (0: all)",
    )
    g.add_argument("--reinit-survivors", action="store_true", help="re-initialise survivors after each removal")

    t = sub.add_parser("train", help="train a saved recipe, or a plain peft LoRA baseline")
    _common(t)
    t.add_argument("--recipe", help="recipe.json written by `prunepeft search` (or its folder)")
    t.set_defaults(model=None, task=None)  # a recipe brings its own model and task
    t.add_argument(
        "--method", choices=["recipe", *BASELINES], default="recipe",
        help="recipe (a found configuration), or a baseline: full fine-tuning, peft's lora / dora / adalora, "
        "adapter (a serial adapter on every layer), supernet (every candidate, no pruning)",
    )  # fmt: skip
    _space_flags(t)
    t.add_argument(
        "--lora-targets",
        default="",
        help="comma-separated module names for peft methods (default: the model's q and v projections)",
    )

    e = sub.add_parser("export", help="write a run as a peft LoRA folder, or merged into a standalone model")
    e.add_argument("run_dir", help="the --output-dir of a finished search or train run")
    e.add_argument("--output", help="where to write (default RUN_DIR/peft or RUN_DIR/merged)")
    e.add_argument("--merge", action="store_true", help="fold LoRA into the weights: a plain transformers model")
    e.add_argument("--model", help="the base model, if not the one named in the recipe")
    e.add_argument("--debug", action="store_true", help="show full tracebacks")

    b = sub.add_parser("bench", help="run a grid of methods x tasks x seeds from a YAML file, then tabulate")
    b.add_argument("--config", required=True, help="e.g. benchmarks/quick.yaml")
    b.add_argument("--jobs", type=int, help="runs at once, sharing the cores (default: the config's jobs, or 1)")
    b.add_argument("--debug", action="store_true", help="show full tracebacks")

    r = sub.add_parser("report", help="write report.html with plots for a run (or a folder of runs)")
    r.add_argument("run_dir")
    r.add_argument("--debug", action="store_true", help="show full tracebacks")

    sub.add_parser("env", help="print versions and hardware")
    return parser


def _targets(items: list[str]) -> dict[str, list[str]]:
    out = {}
    for item in items:
        role, sep, names = item.partition("=")
        if not sep or role not in ROLES or not names:
            from prunepeft.config import ConfigError

            raise ConfigError(f"--target {item!r}: write ROLE=NAME[+NAME] with ROLE one of {', '.join(ROLES)}.")
        out[role] = names.split("+")
    return out


def _fill(cls, args: argparse.Namespace, **computed):
    """A settings dataclass from the flags of the same names, plus the values computed here."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in computed and hasattr(args, f.name)]
    return cls(**{n: getattr(args, n) for n in names}, **computed)


def _options(args):
    from prunepeft.jobs import RunOptions

    name = os.path.splitext(os.path.basename(os.path.normpath(args.task)))[0].lstrip(".") or "task"
    default_dir = DEFAULT_OUTPUT.format(task=name)
    return _fill(RunOptions, args, output_dir=args.output_dir or default_dir, targets=_targets(args.target))


def _train_settings(args) -> TrainSettings:
    return _fill(TrainSettings, args, progress=not args.no_progress)


def run(args) -> dict | None:
    from prunepeft import jobs

    if args.command == "env":
        import json

        print(json.dumps(jobs.environment(), indent=2))
        return None
    if args.command == "bench":
        from prunepeft.bench import run_grid

        print(f"written to {run_grid(args.config, args.jobs)}")
        return None
    if args.command == "report":
        from prunepeft.report import write_report

        if not os.path.isdir(args.run_dir):
            raise jobs.RunError(f"{args.run_dir!r} is not a folder; give the --output-dir of a run.")
        print(f"written to {write_report(args.run_dir)}")
        return None
    if args.command == "export":
        from prunepeft.handover import export_merged, export_peft

        export = export_merged if args.merge else export_peft
        target = args.output or os.path.join(args.run_dir, "merged" if args.merge else "peft")
        print(f"written to {export(args.run_dir, target, args.model)}/")
        return None
    if args.command == "search" and args.resume:
        from prunepeft.search_job import resume

        if args.overwrite:
            raise jobs.RunError("--resume continues a run and --overwrite replaces it: give one of them.")
        results = resume(args.resume)
        print_summary(results, args.resume)
        return results
    recipe = None
    if args.command == "train":
        from prunepeft.recipe import Recipe

        recipe = Recipe.load(args.recipe) if args.recipe and args.method == "recipe" else None
        args.model = args.model or (recipe.model if recipe else "minilm")
        args.task = args.task or (recipe.task if recipe else "rotten_tomatoes")
    opts = _options(args)
    train = _train_settings(args)
    if args.command == "search":
        from prunepeft.search_job import search

        space = _fill(SpaceSettings, args)
        fraction = 1.0 if args.low_fidelity is None else args.low_fidelity
        settings = _fill(
            SearchSettings, args, blocks=not args.no_blocks, search_fraction=fraction,
            eval_samples=args.search_eval_samples,
        )  # fmt: skip
        results = search(opts, space, settings, train)
    elif args.method != "recipe":
        from prunepeft.baselines import train_baseline

        if args.recipe:
            raise jobs.RunError(
                f"--recipe trains a found configuration and --method {args.method} a baseline: give one of them."
            )
        targets = [t.strip() for t in args.lora_targets.split(",") if t.strip()]
        results = train_baseline(
            opts, train, args.method, rank=args.lora_rank, alpha=args.lora_alpha, targets=targets,
            space=_fill(SpaceSettings, args),
        )  # fmt: skip
    else:
        if recipe is None:
            raise jobs.RunError(
                "`prunepeft train` needs --recipe PATH (the recipe.json of a search), or --method NAME."
            )
        results = jobs.train_recipe(opts, recipe, train)
    print_summary(results, opts.output_dir)
    return results


def print_summary(results: dict, output_dir: str) -> None:
    from prunepeft.distributed import is_main_process

    if not is_main_process():
        return
    metric = results["metric"]
    params = results["params"]
    print(f"\n== prunepeft {results['method']} on {results['task']} ({results['model']})")
    for layer, kinds in results.get("per_layer", {}).items():
        print(f"  layer {layer:>2}: {', '.join(kinds) if kinds else '-'}")
    print(
        f"  trainable PEFT parameters: {params['peft']:,} ({params['peft_percent_of_base']:.3f}% of the "
        f"{params['base']:,} base parameters; head {params['head']:,} more)"
    )
    val = results["validation"].get(f"eval_{metric}")
    test = results["test"].get(f"test_{metric}")
    print(f"  validation {metric}: {val:.4f}   test {metric}: {test:.4f}")
    times = results["time_s"]
    if "search_s" in times:
        print(
            f"  search {times['search_s']:.0f}s, final training {times['final_train_s']:.0f}s "
            f"(ratio {times['search_to_train_ratio']:.2f})"
        )
    print(f"  written to {output_dir}/")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags, over the settings of ``--config FILE`` where one is given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) and args.command != "bench":
        from prunepeft.config import settings_from_yaml

        sub = parser._subparsers._group_actions[0].choices[args.command]
        sub.set_defaults(**settings_from_yaml(args.config, sub))
        args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    from prunepeft.errors import USER_ERRORS

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = None
    try:
        args = parse(argv)
        if not getattr(args, "debug", False):
            logging.getLogger("transformers").setLevel(logging.ERROR)
        run(args)
    except USER_ERRORS as err:
        if args is not None and getattr(args, "debug", False):
            raise
        print(f"prunepeft: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
