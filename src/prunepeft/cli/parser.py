"""The command line's flags and sub-commands, and ``--config FILE`` settings under them.

Only argparse and the settings file reader are imported: `--help` and `--version` answer at once.
"""

from __future__ import annotations

import argparse
import sys

from prunepeft import __version__

DEFAULT_OUTPUT = "runs/{task}"

# The choices of some flags. They are written out here so that `--help` needs no torch; tests/test_cli.py checks
# that they equal the modules' own (method.pruner.METHODS, method.candidates.SPACES and ROLES, runs.baselines.METHODS).
CRITERIA_CHOICES = ("hybrid", "random", "weight", "zeros", "threshold", "activation", "gradient", "sensitivity")
SPACE_CHOICES = ("lora", "attention", "extended", "paper")
ROLES = ("q", "k", "v", "o", "ffn_in", "ffn_out")
BASELINES = ("full", "lora", "dora", "adalora", "adapter", "supernet")

DESCRIPTION = """\
Find which parameter-efficient fine-tuning (PEFT) modules to keep, and on which layers, for a pretrained
transformer and a labelled text task: every candidate (LoRA on attention, bottleneck adapters) is attached,
trained briefly, scored, and the least useful are pruned until the trainable parameters fit your budget. The
configuration found is then trained, tested once on held-out data and saved.

Start with `prunepeft search` (MiniLM on Rotten Tomatoes at a 1% budget, offline), then `prunepeft predict
RUN_DIR` to label new text. `prunepeft COMMAND --help` lists a command's flags."""

EPILOG = """\
examples:
  prunepeft search --task reviews.csv --text-column review --label-column stars --budget 1%
  prunepeft search --resume runs/reviews          continue an interrupted search
  prunepeft predict runs/reviews --task new.csv --output labelled.csv
  prunepeft export runs/reviews --merge          a plain transformers model"""

# transformers' example-script spellings, accepted as hidden aliases: name -> our flag's dest
TRANSFORMERS_ALIASES = {
    "--model_name_or_path": "model",
    "--output_dir": "output_dir",
    "--overwrite_output_dir": "overwrite",
    "--num_train_epochs": "epochs",
    "--per_device_train_batch_size": "batch_size",
    "--max_seq_length": "max_length",
    "--learning_rate": "learning_rate",
    "--warmup_ratio": "warmup",
    "--weight_decay": "weight_decay",
    "--max_train_samples": "max_train_samples",
    "--report_to": "report_to",
    "--seed": "seed",
    "--task_name": "task",
    "--text_column": "text_column",
    "--label_column": "label_column",
    "--trust_remote_code": "trust_remote_code",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after each help line, except where there is nothing to show (None, off switches)."""

    def _get_help_string(self, action):
        default = action.default
        if default is None or default is False or default == [] or default == argparse.SUPPRESS:
            return action.help
        if "%(default)" in (action.help or ""):
            return action.help
        if isinstance(default, float) and default.is_integer():  # "3", not "3.0", for --epochs 3
            return f"{action.help} (default: {int(default)})"
        return super()._get_help_string(action)


def _hidden_alias(group, flag: str, like: argparse.Action) -> None:
    """``flag`` as a second, undocumented spelling of ``like`` (same destination, same type)."""
    kwargs = {"dest": like.dest, "help": argparse.SUPPRESS, "default": argparse.SUPPRESS}
    if isinstance(like, argparse._StoreTrueAction):
        group.add_argument(flag, action="store_true", **kwargs)
    else:
        group.add_argument(flag, type=like.type, choices=like.choices, nargs=like.nargs, const=like.const, **kwargs)


def _add_aliases(p: argparse.ArgumentParser, aliases: dict[str, str]) -> None:
    by_dest = {a.dest: a for a in p._actions if a.option_strings}
    for flag, dest in aliases.items():
        if dest in by_dest and flag not in p._option_string_actions:
            _hidden_alias(p, flag, by_dest[dest])


TASK_HELP = (
    "rotten_tomatoes, subjectivity, a GLUE task (sst2, cola, mrpc, qqp, stsb, mnli, qnli, rte), a .csv / .tsv / "
    ".jsonl file, a folder of train/validation/test files, or a datasets.save_to_disk folder"
)


def _common(p: argparse.ArgumentParser, recipe: bool = False) -> None:
    """The flags of search and train; with ``recipe`` (train), the model, task and data settings default to those
    saved in --recipe."""
    g = p.add_argument_group(
        "model and data", "Each defaults to what the --recipe was searched with, unless given here." if recipe else None
    )
    if recipe:
        g.add_argument(
            "--model", help="a model folder, a hub id, 'minilm' or 'mpnet' (default: the recipe's, else minilm)"
        )
        g.add_argument("--task", help=f"{TASK_HELP} (default: the recipe's, else rotten_tomatoes)")
    else:
        g.add_argument("--model", default="minilm", help="a model folder, a hub id, 'minilm' or 'mpnet' (built in)")
        g.add_argument("--task", default="rotten_tomatoes", help=TASK_HELP)
    g.add_argument("--data-dir", help="a saved copy of a GLUE task (datasets.save_to_disk), for offline use")
    g.add_argument("--text-column", help="the text column of your file (default: 'text' or 'sentence')")
    g.add_argument("--text-pair-column", help="a second text column, for sentence-pair tasks")
    g.add_argument("--label-column", help="the label column of your file (default: 'label')")
    g.add_argument("--prompt-column", help="instruction tuning: a .jsonl of prompt/response pairs (default 'prompt')")
    g.add_argument("--response-column", help="instruction tuning: the response column (default 'response')")
    g.add_argument("--answer-column", help="instruction tuning: a short answer for exact-match accuracy")
    g.add_argument("--max-train-samples", type=int, help="train on a stratified subset of this many examples")
    g.add_argument("--gguf-file", help="a GGUF file in --model's folder (or absolute path); needs `pip install gguf`")
    g.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (off by default)")
    g.add_argument("--layers-path", help="dotted path of the list of transformer blocks, if not found automatically")
    g.add_argument(
        "--target", action="append", default=[], metavar="ROLE=NAME[+NAME]",
        help=f"name the Linear inside a block for a role ({', '.join(ROLES)}), e.g. q=attn.q_proj",
    )  # fmt: skip
    t = p.add_argument_group("training")
    t.add_argument("--seed", type=int, default=0, help="random seed of training (the data split never changes)")
    t.add_argument("--epochs", type=float, default=3.0, help="epochs of the final training")
    t.add_argument(
        "--learning-rate", type=_rate, default=None, metavar="RATE|auto",
        help="peak learning rate (AdamW); 1e-3 when not given (train --recipe: the rate its search trained at). "
        "'auto': the search chooses it on validation with short probes at 5e-4, 1e-3 and 3e-3 (docs/method.md: "
        "on small data short probes favour the largest rate, so this is not the default)",
    )  # fmt: skip
    t.add_argument("--batch-size", type=int, default=32, help="examples per training step")
    t.add_argument(
        "--max-length", type=int, default=128,
        help="tokens per example; longer texts are cut"
        + (" (default: the recipe's, else %(default)s)" if recipe else ""),
    )  # fmt: skip
    t.add_argument(
        "--warmup", type=float, default=0.06,
        help="learning-rate warm-up: the fraction of the training steps over which the rate rises linearly "
        "(not the search's warm-up, see --search-warmup-fraction)",
    )  # fmt: skip
    t.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    t.add_argument("--report-to", default="none", help="a logger for the Trainer, e.g. tensorboard or wandb")
    o = p.add_argument_group("output, settings file and messages")
    o.add_argument("--output-dir", default=None, help=f"where results go (default: {DEFAULT_OUTPUT})")
    o.add_argument(
        "--overwrite", action="store_true",
        help="replace an earlier run in --output-dir (only a folder holding nothing but a prunepeft run)",
    )  # fmt: skip
    o.add_argument("--config", help="a YAML file of settings (flag names as keys); flags given here win")
    o.add_argument("--no-progress", action="store_true", help="hide every progress bar (logs keep a line per phase)")
    o.add_argument("--debug", action="store_true", help="show full tracebacks")


def _rate(text: str) -> float | str:
    """A learning rate, or 'auto' (chosen on validation)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto' (e.g. 1e-3)") from None


def _space_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search space")
    g.add_argument(
        "--space", choices=SPACE_CHOICES, default="lora",
        help="lora (default): per layer, LoRA on the attention projections (query, key, value, output) and LoRA "
        "on the feed-forward projections, so that every result is a stock peft LoRA; attention: the same attention "
        "LoRA and an adapter after the feed-forward block (a result with an adapter loads with prunepeft.load, not "
        "peft); paper: LoRA on query+value and the adapter (the paper's space); extended: per-projection LoRA "
        "units and more adapter places",
    )  # fmt: skip
    g.add_argument(
        "--lora-slices", type=int, default=4, metavar="N",
        help="N: a LoRA location of rank R is held as min(N, R) slices whose ranks sum to R and differ by at most "
        "one, pruned one at a time, so that the search chooses each location's rank; what survives merges into one "
        "LoRA of the summed rank (1: whole units)",
    )  # fmt: skip
    g.add_argument(
        "--lora-rank", type=int, default=None,
        help="rank of each LoRA candidate (search: sized from the budget so that it keeps about half of the "
        "candidates; train --method lora/dora/adalora: 32)",
    )  # fmt: skip
    g.add_argument(
        "--lora-alpha", type=float, default=None,
        help="LoRA scaling numerator, scale = alpha / rank (search: twice the rank; train: 32)",
    )  # fmt: skip
    g.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the LoRA input")
    g.add_argument(
        "--bottleneck-size", type=int, default=None,
        help="width of each adapter candidate (search: sized from the budget like --lora-rank; train: 64)",
    )  # fmt: skip
    g.add_argument("--adapter-activation", default="relu", help="non-linearity inside the adapters")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prunepeft", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"prunepeft {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        description = help[0].upper() + help[1:] + "."
        return sub.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)

    s = command("search", "find, retrain and test a PEFT configuration (the main job)")
    _common(s)
    _space_flags(s)
    g = s.add_argument_group("search")
    g.add_argument("--resume", metavar="DIR", help="continue the interrupted search in DIR with its own settings")
    g.add_argument(
        "--budget", default="0.01",
        help="trainable PEFT parameters allowed: a fraction of the base model ('0.01'), a percentage ('1%%') or "
        "a count ('200000'); several, comma-separated ('2%%,1%%,0.5%%'), for the configuration at each from one "
        "search",
    )  # fmt: skip
    g.add_argument(
        "--criterion", choices=CRITERIA_CHOICES, default="hybrid",
        help="hybrid: criteria chosen per depth block in a warm-up (the paper's method); or one criterion alone",
    )  # fmt: skip
    g.add_argument("--no-blocks", action="store_true", help="hybrid without depth blocks (partitions by kind)")
    g.add_argument(
        "--prune-per-round", type=int, default=0, help="candidates removed per round (0: ceil(candidates / 8))"
    )
    g.add_argument("--round-epochs", type=float, default=0.15, help="training per round, in epochs")
    g.add_argument(
        "--round-max-steps", type=int, default=32, metavar="STEPS",
        help="at most STEPS optimizer steps per round, however large the data (0: no cap)",
    )  # fmt: skip
    g.add_argument(
        "--search-warmup-fraction", dest="warmup_fraction", type=float, default=0.1, metavar="FRACTION",
        help="the search's warm-up, in which the criteria vote: the share of the search data it trains on",
    )  # fmt: skip
    g.add_argument(
        "--search-warmup-turns", dest="warmup_turns", type=int, default=3, metavar="TURNS",
        help="the search's warm-up: votes, one after each turn",
    )  # fmt: skip
    g.add_argument(
        "--low-fidelity", type=float, nargs="?", const=0.1, default=None, metavar="FRACTION",
        help="FRACTION of the default search: a stratified FRACTION of the training data, rounds FRACTION as "
        "long (0.1 when given without a value)",
    )  # fmt: skip
    g.add_argument(
        "--search-eval-samples", type=int, default=0,
        help="validation rows scored after each round, for the log only (it decides nothing); at most what a "
        "round trains on; 0: none",
    )  # fmt: skip
    g.add_argument(
        "--train-budgets", default=None, metavar="BUDGETS",
        help="with several --budget values (e.g. 2%%,1%%,0.5%%): final-train only these (default: all)",
    )  # fmt: skip
    g.add_argument(
        "--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
        help="a resumable checkpoint after a round once SECONDS have passed since the last (0: every round)",
    )  # fmt: skip
    g.add_argument("--reinit-survivors", action="store_true", help="re-initialise survivors after each removal")
    _add_aliases(s, {"--warmup-fraction": "warmup_fraction", "--warmup-turns": "warmup_turns", **TRANSFORMERS_ALIASES})

    t = command("train", "train a saved recipe, or a baseline such as plain peft LoRA")
    _common(t, recipe=True)
    t.add_argument(
        "--recipe",
        help="recipe.json written by `prunepeft search` (or its folder); its model, task, data settings and "
        "--max-length are used unless given here",
    )  # fmt: skip
    t.add_argument(
        "--method", choices=["recipe", *BASELINES], default="recipe",
        help="recipe (a found configuration), or a baseline: full fine-tuning, peft's lora / dora / adalora, "
        "adapter (a serial adapter on every layer), supernet (every candidate, no pruning)",
    )  # fmt: skip
    _space_flags(t)
    t.add_argument(
        "--lora-targets",
        help="comma-separated module names for peft methods (default: the model's q and v projections)",
    )  # fmt: skip
    _add_aliases(t, TRANSFORMERS_ALIASES)

    p = command("predict", "label new text with a finished run: label names and probabilities as CSV or JSONL")
    p.add_argument("run_dir", help="the --output-dir of a finished search or train run")
    p.add_argument(
        "--task", "--input", dest="task", default="-", metavar="FILE",
        help="a .csv / .tsv / .jsonl file of texts, or '-' for one text per line on stdin",
    )  # fmt: skip
    p.add_argument("--text-column", help="the text column (default: the run's, else 'text' or 'sentence')")
    p.add_argument("--text-pair-column", help="the second text column of a sentence-pair task (default: the run's)")
    p.add_argument("--output", default="-", help="a .csv or .jsonl file, or '-' for stdout")
    p.add_argument("--format", choices=("csv", "jsonl"), help="output format (default: from --output, else csv)")
    p.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    p.add_argument("--max-length", type=int, help="tokens per text (default: the run's --max-length)")
    p.add_argument("--model", help="the base model, if not the one named in the run's recipe")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")

    e = command("export", "write a run as a peft LoRA folder, or merged into a standalone model")
    e.add_argument("run_dir", help="the --output-dir of a finished search or train run")
    e.add_argument("--output", help="where to write (default: RUN_DIR/peft, or RUN_DIR/merged with --merge)")
    e.add_argument("--merge", action="store_true", help="fold LoRA into the weights: a plain transformers model")
    e.add_argument("--model", help="the base model, if not the one named in the recipe")
    e.add_argument("--debug", action="store_true", help="show full tracebacks")

    b = command("bench", "run a grid of methods x tasks x seeds from a YAML file, then tabulate")
    b.add_argument("--config", required=True, help="e.g. benchmarks/quick.yaml")
    b.add_argument("--jobs", type=int, help="runs at once, sharing the cores (default: the config's jobs, or 1)")
    b.add_argument("--debug", action="store_true", help="show full tracebacks")

    r = command("report", "write report.html with plots for a run (or a folder of runs)")
    r.add_argument("run_dir", help="the --output-dir of a run, or a folder of runs")
    r.add_argument("--debug", action="store_true", help="show full tracebacks")

    command("env", "print versions and hardware")
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags, over the settings of ``--config FILE`` where one is given."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):  # a bare `prunepeft`: the overview, not a usage error
        parser.print_help()
        raise SystemExit(0)
    args = parser.parse_args(argv)
    args.given = _given(argv, args.command)
    if getattr(args, "config", None) and args.command != "bench":
        from prunepeft.common.config import settings_from_yaml

        settings = settings_from_yaml(args.config, _subparser(parser, args.command))
        _subparser(parser, args.command).set_defaults(**settings)
        args = parser.parse_args(argv)
        args.given = _given(argv, args.command) | set(settings)
    return args


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    return parser._subparsers._group_actions[0].choices[command]


def _given(argv: list[str] | None, command: str) -> set[str]:
    """The settings given on the command line, as opposed to left at their defaults (`train --recipe` fills
    those from the recipe)."""
    parser = build_parser()
    sub = _subparser(parser, command)
    for action in sub._actions:
        action.default = argparse.SUPPRESS
    sub._defaults.clear()
    return set(vars(parser.parse_args(argv))) - {"command"}
