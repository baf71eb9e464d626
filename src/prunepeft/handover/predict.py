"""`prunepeft predict RUN_DIR`: label new text with a finished run, without writing Python.

Reads a .csv / .tsv / .jsonl file (or one text per line on stdin), runs the trained model in batches (shortest
texts first, so that a batch pads little) and writes each row with the predicted label name, its probability
and the probability of every class, as CSV or JSON Lines. The input's own columns are kept, so ids travel along.
Regression runs write a ``score`` instead.

Runs with a recipe (searches, `train --recipe`, the adapter and supernet baselines) load with
``prunepeft.load``; peft baselines (lora, dora, adalora) with peft; full fine-tuning as a plain model.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pandas as pd

from prunepeft.handover.load import read_json


class PredictError(ValueError):
    """The run or the input cannot be used for predictions."""


def run_settings(run_dir: str) -> dict:
    """The run's own settings (run_config.json; the recipe's for older runs)."""
    config = read_json(os.path.join(run_dir, "run_config.json"))
    if not config:
        config = read_json(os.path.join(run_dir, "recipe.json")).get("settings", {})
    return config


def read_input(
    source: str, text_columns: list[str], pair_columns: list[str] | None, flags: tuple[str | None, str | None]
) -> tuple[pd.DataFrame, str, str | None]:
    """The rows to label, the text column and the pair column (None for single texts). ``text_columns`` and
    ``pair_columns`` are the names to try in order; a name given by flag (``flags``) must be there."""
    if source == "-":
        if pair_columns:
            raise PredictError("this run classifies text pairs: give a file with both columns (--task FILE).")
        lines = [line.rstrip("\n") for line in sys.stdin]
        return pd.DataFrame({"text": [line for line in lines if line.strip()]}), "text", None
    if not os.path.isfile(source):
        raise PredictError(f"input file {source!r} does not exist. Give a .csv, .tsv or .jsonl file, or '-' for stdin.")
    suffix = os.path.splitext(source)[1].lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".json"):
        raise PredictError(f"{source!r}: give a .csv, .tsv or .jsonl file (or '-' for stdin).")
    try:
        if suffix in (".csv", ".tsv"):
            frame = pd.read_csv(source, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, dtype=str)
        else:
            frame = pd.read_json(source, lines=True, dtype=False)
    except (ValueError, pd.errors.ParserError) as err:
        raise PredictError(f"could not read {source!r} ({err}).") from err
    text = _column(frame, source, text_columns, flags[0], "--text-column")
    pair = _column(frame, source, pair_columns, flags[1], "--text-pair-column") if pair_columns else None
    return frame, text, pair


def _column(frame: pd.DataFrame, where: str, names: list[str], given: str | None, flag: str) -> str:
    for name in [given] if given else names:
        if name in frame.columns:
            return name
    looked = " or ".join(repr(n) for n in ([given] if given else names))
    raise PredictError(
        f"no column {looked} in {where}; columns present: {', '.join(map(str, frame.columns))}. Name it with {flag}."
    )


def check_run(run_dir: str) -> None:
    """A finished run: weights of some kind and results.json."""
    if not any(os.path.isfile(os.path.join(run_dir, n)) for n in ("recipe.json", "adapter_config.json", "config.json")):
        raise PredictError(
            f"{run_dir!r} holds no finished run (no recipe.json, adapter_config.json or config.json). Give the "
            "--output-dir of a search or train run."
        )
    if not os.path.isfile(os.path.join(run_dir, "results.json")):
        raise PredictError(f"{run_dir!r} has no results.json: the run has not finished its final training.")


def load_run(run_dir: str, base_model: str | None = None):
    """(model, tokenizer, label names or None, number of labels) of a finished run."""
    from prunepeft.common.progress import progress_shown
    from prunepeft.handover.load import load_tokenizer, load_trained

    run = run_settings(run_dir).get("run", {})
    if os.path.isfile(os.path.join(run_dir, "recipe.json")):
        from prunepeft.method.recipe import Recipe

        if Recipe.load(run_dir).num_labels == 0:
            raise PredictError("this run tuned a language model on instructions; predict labels classification runs.")
    remote = run.get("trust_remote_code", False)
    model = load_trained(base_model, run_dir, trust_remote_code=remote, progress=progress_shown())
    tokenizer = load_tokenizer(base_model, run_dir, trust_remote_code=remote)
    id2label = read_json(os.path.join(run_dir, "results.json")).get("id2label")
    names = [id2label[k] for k in sorted(id2label, key=int)] if id2label else None
    num_labels = model.config.num_labels
    if names is None and num_labels > 1:
        names = [model.config.id2label.get(i, str(i)) for i in range(num_labels)]
    return model.eval(), tokenizer, names, num_labels


def predict_rows(model, tokenizer, texts, pairs, *, batch_size: int, max_length: int, progress: bool) -> np.ndarray:
    """Probabilities (classification; rows x classes) or scores (regression; rows x 1), in input order."""
    import torch
    from tqdm.auto import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    lengths = [len(t) + (len(pairs[i]) if pairs is not None else 0) for i, t in enumerate(texts)]
    order = np.argsort(lengths, kind="stable")
    out = [None] * len(texts)
    starts = range(0, len(texts), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc="predict", unit="batch", disable=not progress, file=sys.stderr):
            idx = order[start : start + batch_size]
            first = [texts[i] for i in idx]
            second = [pairs[i] for i in idx] if pairs is not None else None
            batch = tokenizer(first, second, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            logits = model(**batch.to(device)).logits.float()
            values = logits if logits.shape[-1] == 1 else torch.softmax(logits, dim=-1)
            for i, row in zip(idx, values.cpu().numpy(), strict=True):
                out[i] = row
    return np.stack(out) if out else np.zeros((0, max(1, getattr(model.config, "num_labels", 1))))


def write_output(frame: pd.DataFrame, values: np.ndarray, names: list[str] | None, output: str, fmt: str) -> None:
    frame = frame.copy()
    if names is None:  # regression
        frame["score"] = values[:, 0] if len(values) else []
        probabilities = None
    else:
        best = values.argmax(-1) if len(values) else np.zeros(0, dtype=int)
        frame["label"] = [names[i] for i in best]
        frame["probability"] = values.max(-1).round(6) if len(values) else []
        probabilities = values.round(6)
    sink = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
    try:
        if fmt == "jsonl":
            for i, record in enumerate(frame.to_dict(orient="records")):
                if probabilities is not None:
                    record["probabilities"] = {n: float(p) for n, p in zip(names, probabilities[i], strict=True)}
                sink.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        else:
            if probabilities is not None:
                for j, name in enumerate(names):
                    frame[f"p_{name}"] = probabilities[:, j] if len(probabilities) else []
            frame.to_csv(sink, index=False)
    finally:
        if sink is not sys.stdout:
            sink.close()


def predict_command(args) -> None:
    """`prunepeft predict`: flags -> labelled rows."""
    from prunepeft.common.progress import progress_shown

    if not os.path.isdir(args.run_dir):
        raise PredictError(f"{args.run_dir!r} is not a folder; give the --output-dir of a finished run.")
    fmt = args.format or ("jsonl" if args.output.lower().endswith((".jsonl", ".json")) else "csv")
    if args.batch_size < 1:
        raise PredictError(f"--batch-size must be at least 1, got {args.batch_size}.")
    check_run(args.run_dir)
    if args.task == "-" and sys.stdin.isatty():
        print("prunepeft: reading texts from stdin, one per line (end with Ctrl-D)", file=sys.stderr)
    settings = run_settings(args.run_dir)
    run = settings.get("run", {})
    from prunepeft.data.glue import GLUE_TASKS

    glue = GLUE_TASKS.get(str(run.get("task", "")).lower())
    texts_to_try = [c for c in (run.get("text_column"), glue.text if glue else None, "text", "sentence") if c]
    pairs_to_try = [c for c in (args.text_pair_column, run.get("text_pair_column"), glue.pair if glue else None) if c]
    frame, text, pair = read_input(
        args.task, list(dict.fromkeys(texts_to_try)), list(dict.fromkeys(pairs_to_try)) or None,
        (args.text_column, args.text_pair_column),
    )  # fmt: skip
    max_length = args.max_length or settings.get("train", {}).get("max_length", 128)
    model, tokenizer, names, num_labels = load_run(args.run_dir, args.model)
    texts = ["" if pd.isna(v) else str(v) for v in frame[text]]
    pairs = ["" if pd.isna(v) else str(v) for v in frame[pair]] if pair else None
    values = predict_rows(model, tokenizer, texts, pairs, batch_size=args.batch_size, max_length=max_length,
                          progress=progress_shown() and not args.no_progress)  # fmt: skip
    write_output(frame, values, names if num_labels > 1 else None, args.output, fmt)
    if args.output != "-":
        print(f"{len(frame):,} rows labelled, written to {args.output}", file=sys.stderr)
