"""Where a search's time goes: a per-phase breakdown of one `prunepeft search`, stopped before the final training.

    .venv/bin/python benchmarks/phases.py --out runs/phases/after.json -- --seed 0 --output-dir runs/phases/after
    PYTHONPATH=/tmp/before/src .venv/bin/python benchmarks/phases.py --out runs/phases/before.json -- ...
    .venv/bin/python benchmarks/phases.py --table before=runs/phases/before.json after=runs/phases/after.json

Everything after ``--`` goes to `prunepeft search` (``--overwrite --no-progress`` are added). The phases are
timed by wrapping functions the search calls, so the script measures any version of the code that has the folder
layout of issue 16 (runs/, method/, ...; the one on PYTHONPATH): warm-up (everything inside the warm-up, its own
training, scoring and Trainer included); training in rounds (the rounds' Trainer.train, less what is listed next);
scoring (criteria and ranking at each round's end); removal (detaching the removed candidates); validation
(per-round evaluation for the log); checkpoint (Trainer checkpoints and our search state); and outside the timed
training: loading the model, tokenising, building Trainers, and the rest (reading the task, attaching candidates,
writing the recipe).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import defaultdict

import torch
import transformers

TOTALS: dict[str, float] = defaultdict(float)
COUNTS: dict[str, int] = defaultdict(int)
_STACK: list[str] = []
OUTSIDE = {"model_load", "read_task", "tokenise", "trainer_construction", "attach"}  # inside the warm-up: its own


class Stop(Exception):
    """Raised instead of the final training."""


def timed(owner, name: str, phase: str, only_outermost: bool = True) -> None:
    """Wrap owner.name so that its wall time adds to ``phase`` (nested calls of the same phase count once)."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if (only_outermost and phase in _STACK) or (phase in OUTSIDE and "warmup" in _STACK):
            return original(*args, **kwargs)  # counted once, in the enclosing phase
        _STACK.append(phase)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            TOTALS[phase] += time.perf_counter() - start
            COUNTS[phase] += 1
            _STACK.pop()

    setattr(owner, name, wrapper)


def in_phase(name: str) -> bool:
    return name in _STACK


def instrument() -> None:
    from prunepeft.method import pruner as search
    from prunepeft.runs import find_recipe, options, training
    from prunepeft.runs import search as search_job

    timed(find_recipe, "_warmup", "warmup")
    timed(find_recipe, "build_model", "model_load")
    for module in (search_job, options):
        with contextlib.suppress(AttributeError):
            timed(module, "load_data", "read_task")
    timed(find_recipe, "tokenize_task", "tokenise")
    timed(find_recipe, "make_trainer", "trainer_construction")
    with contextlib.suppress(AttributeError):
        timed(find_recipe, "attach_all", "attach")
    original_train = training.timed_train

    def timed_train(trainer, *args, **kwargs):
        phase = "rounds" if os.path.basename(os.path.normpath(trainer.args.output_dir)) == "_search" else "train_other"
        _STACK.append(phase)
        start = time.perf_counter()
        try:
            return original_train(trainer, *args, **kwargs)
        finally:
            TOTALS[phase] += time.perf_counter() - start
            COUNTS[phase] += 1
            _STACK.pop()

    find_recipe.timed_train = timed_train
    timed(transformers.Trainer, "evaluate", "validation")
    timed(transformers.Trainer, "_save_checkpoint", "checkpoint")
    from prunepeft.method import callback

    timed(callback.PrunePEFTCallback, "on_save", "checkpoint")
    for name in ("save_round", "write_round"):  # our own checkpoint writer, where the code has one
        with contextlib.suppress(AttributeError):
            timed(callback.PrunePEFTCallback, name, "checkpoint")
    timed(search, "raw_scores", "scoring")
    timed(search.Pruner, "rank", "scoring")
    timed(search.Pruner, "_remove", "removal")
    timed(search.Pruner, "end_round", "round_end")

    def stop(*args, **kwargs):
        raise Stop

    search_job.final_train = stop


def table(paths: list[str]) -> str:
    """A Markdown table of several breakdowns (one column each: "label=path" or a path)."""
    runs = []
    for item in paths:
        label, _, path = item.rpartition("=")
        with open(path, encoding="utf-8") as fh:
            runs.append((label or os.path.basename(path), json.load(fh)))
    names = list(runs[0][1]["phases_s"])
    lines = [f"| phase | {' | '.join(label for label, _ in runs)} |", "|---|" + "---:|" * len(runs)]
    for name in names:
        cells = []
        for _, r in runs:
            value, total = r["phases_s"].get(name, 0.0), r["total_s"]
            cells.append(f"{value:.1f} ({100 * value / total:.0f}%)")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    rows = {
        "**total to the recipe (imports excluded)**": lambda r: f"**{r['total_s']:.1f}**",
        "search_s as reported": lambda r: f"{r['search_s_reported']:.1f}",
        "last optimizer step of the rounds": lambda r: str(r["last_step"]),
        "rounds": lambda r: str(r["rounds"]),
        "PEFT parameters kept": lambda r: f"{r['peft_params']:,}",
    }
    for name, cell in rows.items():
        lines.append(f"| {name} | {' | '.join(cell(r) for _, r in runs)} |")
    return "\n".join(lines)


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["--table"]:
        print(table(argv[1:]))
        return
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where the breakdown (JSON) goes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import prunepeft
    from prunepeft.cli import main as cli
    from prunepeft.runs import find_recipe, search, training  # noqa: F401  (imports are not a phase)

    with contextlib.suppress(ImportError):  # what the metrics import lazily in newer code
        import scipy.stats  # noqa: F401
        import sklearn.metrics  # noqa: F401
    start = time.perf_counter()
    instrument()
    parsed = cli.parse(["search", *extra, "--overwrite", "--no-progress"])
    transformers.logging.set_verbosity_error()
    try:
        cli.run(parsed)
    except Stop:
        pass
    total = time.perf_counter() - start
    out_dir = parsed.output_dir
    with open(os.path.join(out_dir, "recipe.json"), encoding="utf-8") as fh:
        recipe = json.load(fh)
    steps = [json.loads(line).get("step") for line in open(os.path.join(out_dir, "search_log.jsonl"))]
    t = dict(TOTALS)
    inside = {k: t.get(k, 0.0) for k in ("validation", "checkpoint", "scoring", "removal")}
    round_end_other = t.get("round_end", 0.0) - inside["scoring"] - inside["removal"]
    phases = {
        "warm-up": t.get("warmup", 0.0),
        "training in rounds": t.get("rounds", 0.0) - sum(inside.values()) - round_end_other,
        "scoring": inside["scoring"],
        "removal": inside["removal"],
        "validation (log)": inside["validation"],
        "checkpoint": inside["checkpoint"],
        "rest of round end (log, statistics)": round_end_other,
        "model load": t.get("model_load", 0.0),
        "tokenising": t.get("tokenise", 0.0),
        "Trainer construction": t.get("trainer_construction", 0.0),
    }
    phases["other (task, candidates, recipe, ...)"] = total - sum(phases.values())
    result = {
        "code": os.path.dirname(os.path.dirname(prunepeft.__file__)),
        "args": extra,
        "threads": args.threads,
        "phases_s": {k: round(v, 2) for k, v in phases.items()},
        "total_s": round(total, 2),
        "search_s_reported": recipe["settings"]["timings"].get("search_s"),
        "last_step": max((s for s in steps if s is not None), default=None),
        "rounds": recipe["settings"]["extra"].get("rounds"),
        "kept": sorted(c["name"] for c in recipe["candidates"]),
        "peft_params": recipe["peft_params"],
        "calls": dict(COUNTS),
        "load_at_end": os.getloadavg(),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
