"""Checks before any model loads: settings, budget, output folder, model path, data file and columns.

torch and transformers are not imported here, so bad input answers at once.
"""

from __future__ import annotations

import os
import re

from prunepeft.cli.parser import DEFAULT_OUTPUT, ROLES
from prunepeft.runs.run_folder import check_output, run_inputs


def parse_targets(items: list[str]) -> dict[str, list[str]]:
    from prunepeft.common.config import ConfigError

    out = {}
    for item in items:
        role, sep, names = item.partition("=")
        if not sep or role not in ROLES or not names:
            raise ConfigError(f"--target {item!r}: write ROLE=NAME[+NAME] with ROLE one of {', '.join(ROLES)}.")
        out[role] = names.split("+")
    return out


def output_dir_of(args) -> str:
    name = os.path.splitext(os.path.basename(os.path.normpath(args.task)))[0].lstrip(".") or "task"
    return args.output_dir or DEFAULT_OUTPUT.format(task=name)


# ------------------------------------------------------------------------------------ checks before loading

_BUDGET = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)")


def check_budget(budget: str) -> None:
    """The budget's syntax and range, before anything is loaded (the model is needed only to count it)."""
    from prunepeft.common.config import ConfigError

    text = str(budget).strip()
    match = _BUDGET.fullmatch(text)
    if not match:
        raise ConfigError(
            f"--budget {budget!r} is not a number. Give a fraction of the base model ('0.01'), a percentage "
            "('1%') or a parameter count ('200000')."
        )
    value, percent = float(match.group(1)), bool(match.group(2))
    if value <= 0:
        raise ConfigError(f"--budget {budget!r} must be positive, e.g. '0.01' or '1%' (1% of the base model).")
    if percent and value > 100:
        raise ConfigError(
            f"--budget {budget!r} is more than the whole base model: a percentage must be at most 100%. PEFT "
            "budgets are usually a few percent at most, e.g. '1%'."
        )
    if not percent and "." in match.group(1) and value >= 1:
        raise ConfigError(
            f"--budget {budget!r} is written as a fraction but is not below 1. Write a fraction below 1 "
            f"('0.01'), a percentage ('{value:g}%' if you meant {value:g} percent) or a whole parameter count "
            "without a decimal point ('200000')."
        )


def _instruction_file(path: str) -> bool:
    """As ``data.instruct.is_instruction_file`` without --prompt-column, read without pandas: a .jsonl whose first
    records have prompt and response and no label."""
    import json

    if not path.endswith((".jsonl", ".json")) or not os.path.isfile(path):
        return False
    keys: set[str] = set()
    try:
        with open(path, encoding="utf-8") as fh:
            for _, line in zip(range(5), fh, strict=False):
                if line.strip():
                    keys |= set(json.loads(line))
    except (ValueError, TypeError, UnicodeDecodeError):
        return False
    return {"prompt", "response"} <= keys and "label" not in keys


def preflight(args) -> None:
    """Everything that can be checked without torch or transformers: settings, budget, output folder, model
    path, data file and columns. The data read here is kept for the run (load_task remembers it)."""
    from prunepeft.common.config import ConfigError
    from prunepeft.method.backbone import resolve_model

    if args.command == "search":
        for budget in str(args.budget).split(","):  # several budgets: each one (the list is checked later)
            if budget.strip():
                check_budget(budget.strip())
    for flag, value, ok in (
        ("--epochs", args.epochs, args.epochs > 0),
        ("--learning-rate", args.learning_rate, args.learning_rate in (None, "auto") or args.learning_rate > 0),
        ("--batch-size", args.batch_size, args.batch_size >= 1),
        ("--max-length", args.max_length, args.max_length >= 2),
    ):
        if not ok:
            raise ConfigError(f"{flag} must be positive (--max-length at least 2), got {value}.")
    parse_targets(args.target)
    if os.environ.get("RANK", "0") == "0":  # the main process prepares the folder; the others find it in use
        keep = run_inputs(args.model, args.task, args.data_dir)
        check_output(output_dir_of(args), overwrite=args.overwrite, keep=keep, resume=args.command == "search")
    if args.model is not None:
        resolve_model(args.model, args.gguf_file)
    if args.task is None or args.prompt_column or _instruction_file(args.task):
        return
    from prunepeft.data.builtin import BUILTIN_TASKS
    from prunepeft.data.glue import GLUE_TASKS
    from prunepeft.data.load import load_task

    if args.task.strip().lower() in (*BUILTIN_TASKS, *GLUE_TASKS):
        return
    load_task(
        args.task, text_column=args.text_column, text_pair_column=args.text_pair_column,
        label_column=args.label_column,
    )  # fmt: skip
