"""Speed mechanics of the search, written to benchmarks/results/speed.md.

    .venv/bin/python benchmarks/speed.py            # step times (a quarter of an hour) and whole runs (half an hour)
    .venv/bin/python benchmarks/speed.py --steps    # step times only (--runs: whole runs only; --eval: the
                                                    # evaluation order); the other sections of
                                                    # benchmarks/results/speed.md are kept

Step times are measured in one process, side by side: the variants take turns in blocks of steps, and each is
summarised by the median step (forward, backward, AdamW step) over all its blocks, so that load on the machine
hits both alike. The model is MiniLM, the batch 32 sequences of 64 tokens. Whole runs (search / final training
ratio at default settings and in low-fidelity mode, peak memory of a search against a plain LoRA run) go through
the `prunepeft` command on the same data slice.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from prunepeft.method.backbone import freeze_for_peft, load_model
from prunepeft.method.callback import StatsRecorder
from prunepeft.method.candidates import Candidate, SpaceSettings, attach_all, build_space, detach, map_model

BATCH, LENGTH = 32, 64


def _batch(vocab: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(1000, vocab, (BATCH, LENGTH), generator=g),
            "attention_mask": torch.ones(BATCH, LENGTH, dtype=torch.long),
            "labels": torch.randint(0, 2, (BATCH,), generator=g)}  # fmt: skip


class Variant:
    """A model, its optimizer, and optional work around each step (the statistics recorder)."""

    def __init__(self, name, model, before=None, after=None):
        self.name, self.model, self.before, self.after = name, model, before, after
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        self.times: list[float] = []

    def step(self, batch) -> float:
        if self.before:
            self.before()
        start = time.perf_counter()
        loss = self.model(**batch).loss
        loss.backward()
        if self.after:
            self.after()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def race(variants: list[Variant], batch, blocks: int, steps: int) -> dict[str, float]:
    for v in variants:  # warm-up, untimed
        for _ in range(3):
            v.step(batch)
    for _ in range(blocks):
        for v in variants:
            v.times += [v.step(batch) for _ in range(steps)]
    return {v.name: statistics.median(v.times) for v in variants}


def minilm(num_labels: int = 2):
    loaded = load_model("minilm", num_labels)
    return loaded.model.train(), loaded.head_names


def ours_lora(rank: int):
    model, head = minilm()
    space = SpaceSettings(space="paper", lora_rank=rank, lora_alpha=rank)  # LoRA on query, value, as peft_lora
    specs = [s for s in build_space(map_model(model), space) if s.kind == "lora_qv"]
    freeze_for_peft(model, head)  # before attaching: candidates are created trainable
    attach_all(model, specs)
    return model


def peft_lora(rank: int):
    from peft import LoraConfig, TaskType, get_peft_model

    model, head = minilm()
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=rank, target_modules=["query", "value"],
                        modules_to_save=list(head))  # fmt: skip
    return get_peft_model(model, config)


def supernet(prune: str = "") -> tuple[torch.nn.Module, dict[str, Candidate]]:
    """All candidates, or with half of them removed: those of the upper layers ("upper") or the lower ("lower")."""
    model, head = minilm()
    specs = build_space(map_model(model), SpaceSettings(space="paper"))  # the space of the committed results
    freeze_for_peft(model, head)
    candidates = dict(zip((s.name for s in specs), attach_all(model, specs), strict=True))
    by_layer = sorted(candidates, key=lambda n: candidates[n].spec.layer)
    half = len(by_layer) // 2
    for name in {"upper": by_layer[half:], "lower": by_layer[:half]}.get(prune, []):
        detach(model, candidates.pop(name))
    return model, candidates


def step_times(blocks: int, steps: int) -> list[str]:
    batch = _batch(30522)
    torch.manual_seed(0)
    lines = ["| comparison | median step A (ms) | median step B (ms) | A / B | aim |", "|---|---|---|---|---|"]

    a, b = Variant("ours", ours_lora(32)), Variant("peft", peft_lora(32))
    assert trainable(a.model) == trainable(b.model), (trainable(a.model), trainable(b.model))  # same work
    t = race([a, b], batch, blocks, steps)
    lines.append(f"| our LoRA (A) vs peft LoRA (B), rank 32 on query,value | {1e3 * t['ours']:.1f} | "
                 f"{1e3 * t['peft']:.1f} | {t['ours'] / t['peft']:.3f} | ≤ 1.05 |")  # fmt: skip

    model, candidates = supernet()
    recorder = StatsRecorder(candidates)
    observers = {id(w): w.observer for c in candidates.values() for w in c.wrappers}

    def recording(on: bool):
        for c in candidates.values():
            for w in c.wrappers:
                w.observer = observers[id(w)] if on else None

    with_stats = Variant("with", model, before=lambda: recording(True), after=recorder.after_backward)
    without = Variant("without", model, before=lambda: recording(False))
    without.optimizer = with_stats.optimizer  # one model: one optimizer
    t = race([with_stats, without], batch, blocks, steps)
    recorder.take()
    label = f"supernet ({len(candidates)} candidates) with statistics (A) vs without (B)"
    lines.append(f"| {label} | {1e3 * t['with']:.1f} | {1e3 * t['without']:.1f} | "
                 f"{t['with'] / t['without']:.3f} | ≤ 1.10 |")  # fmt: skip

    variants = [Variant("full", supernet()[0]), Variant("upper", supernet("upper")[0]),
                Variant("lower", supernet("lower")[0])]  # fmt: skip
    t = race(variants, batch, blocks, steps)
    for which, where in (("upper", "upper layers 3-5"), ("lower", "lower layers 0-2")):
        lines.append(f"| supernet, all candidates (A) vs half pruned: those of the {where} (B) | "
                     f"{1e3 * t['full']:.1f} | {1e3 * t[which]:.1f} | {t['full'] / t[which]:.3f} | > 1 |")  # fmt: skip
    return lines


def whole_runs(samples: int, epochs: int) -> list[str]:
    common = ["--max-train-samples", str(samples), "--epochs", str(epochs), "--max-length", str(LENGTH),
              "--seed", "0", "--overwrite", "--no-progress"]  # fmt: skip
    runs = {
        "search, default settings": ["search", *common, "--output-dir", "runs/speed/search"],
        "search, low fidelity": ["search", *common, "--low-fidelity", "--output-dir", "runs/speed/low_fidelity"],
        "plain peft LoRA r=32 q,v": ["train", "--method", "lora", *common, "--output-dir", "runs/speed/lora"],
    }
    lines = ["| run | search s | final training s | search / final | peak RSS MiB (search phase) | "
             "peak RSS MiB (whole run) | command |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for label, args in runs.items():
        subprocess.run([sys.executable, "-m", "prunepeft", *args], check=True, capture_output=True)
        with open(os.path.join(args[args.index("--output-dir") + 1], "results.json"), encoding="utf-8") as fh:
            r = json.load(fh)
        t, search_mem = r["time_s"], r["params"].get("search_memory_mib", {}).get("peak_rss", "-")
        lines.append(f"| {label} | {t.get('search_s', '-')} | {t['final_train_s']} | "
                     f"{t.get('search_to_train_ratio', '-')} | {search_mem} | {r['memory_mib']['peak_rss']} | "
                     f"`prunepeft {' '.join(args)}` |")  # fmt: skip
    return lines


def eval_order(repeats: int) -> list[str]:
    """Trainer.evaluate over Rotten Tomatoes' validation split in length order against the stored order."""
    from prunepeft.data.load import load_task
    from prunepeft.data.tokenizing import tokenize_task
    from prunepeft.runs.training import TrainSettings, make_trainer

    loaded = load_model("minilm", 2)
    task = load_task("rotten_tomatoes")
    rows = tokenize_task(task, loaded.tokenizer, LENGTH)["validation"]
    settings = TrainSettings(max_length=LENGTH, batch_size=BATCH, progress=False)
    trainer = make_trainer(loaded.model.eval(), loaded.tokenizer, task, settings, "runs/speed/eval", rows, rows)
    times, metrics = {True: [], False: []}, {}
    trainer.evaluate()  # warm-up, untimed
    for _ in range(repeats):
        for by_length in (True, False):
            trainer.sort_eval_by_length = by_length
            start = time.perf_counter()
            metrics[by_length] = trainer.evaluate()
            times[by_length].append(time.perf_counter() - start)
    a, b = statistics.median(times[True]), statistics.median(times[False])
    same = metrics[True]["eval_accuracy"] == metrics[False]["eval_accuracy"]
    return ["| evaluation of 1,148 rows, batch 64 | median s | accuracy |", "|---|---|---|",
            f"| shortest rows first (A) | {a:.2f} | {metrics[True]['eval_accuracy']:.4f} |",
            f"| stored order (B) | {b:.2f} | {metrics[False]['eval_accuracy']:.4f} |",
            "", f"A / B = {a / b:.3f}; same accuracy: {same}; eval loss {metrics[True]['eval_loss']:.6f} (A) "
            f"vs {metrics[False]['eval_loss']:.6f} (B)."]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", action="store_true", help="step times only")
    parser.add_argument("--runs", action="store_true", help="whole runs only")
    parser.add_argument("--eval", action="store_true", help="evaluation order only")
    parser.add_argument("--repeats", type=int, default=5, help="evaluations per order (--eval)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--block-steps", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2000, help="training examples of the whole runs")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the whole runs, too
    machine = f"{platform.platform()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s)"
    sections = _read_sections()
    only = args.steps or args.runs or args.eval
    if args.eval or not only:
        sections[EVAL] = [f"`python benchmarks/speed.py --eval` on {machine}. MiniLM as loaded (untrained head), "
                          f"Rotten Tomatoes validation, max length {LENGTH}; the two orders alternate, "
                          f"{args.repeats} evaluations each.", ""]  # fmt: skip
        sections[EVAL] += eval_order(args.repeats)
    if args.steps or not only:
        sections[STEPS] = [f"`python benchmarks/speed.py --steps` on {machine}. MiniLM, batch {BATCH} x {LENGTH} "
                           f"tokens, forward + backward + AdamW; median over {args.blocks} alternating blocks of "
                           f"{args.block_steps} steps per variant.", ""]  # fmt: skip
        sections[STEPS] += step_times(args.blocks, args.block_steps)
    if args.runs or not only:
        sections[RUNS] = [f"`python benchmarks/speed.py --runs` on {machine}: Rotten Tomatoes, {args.samples:,} "
                          f"training examples, {args.epochs} epochs, one run after another.", ""]  # fmt: skip
        sections[RUNS] += whole_runs(args.samples, args.epochs)
    text = ["# Speed mechanics", ""] + [line for name in (PHASES, STEPS, RUNS, EVAL) if name in sections
                                        for line in (f"## {name}", "", *sections[name], "")]  # fmt: skip
    os.makedirs(os.path.dirname(RESULT), exist_ok=True)
    with open(RESULT, "w", encoding="utf-8") as fh:
        fh.write("\n".join(text))
    print("\n".join(text))


STEPS, RUNS, EVAL, RESULT = "Step times", "Whole runs", "Evaluation order", "benchmarks/results/speed.md"
PHASES = "Where a search's time goes"  # written by hand from benchmarks/phases.py; kept when this script rewrites


def _read_sections() -> dict[str, list[str]]:
    """The sections of an earlier speed.md, so that one part can be measured again alone."""
    if not os.path.exists(RESULT):
        return {}
    sections: dict[str, list[str]] = {}
    current = None
    with open(RESULT, encoding="utf-8") as fh:
        for line in fh.read().splitlines():
            if line.startswith("## "):
                current = sections.setdefault(line[3:], [])
            elif current is not None:
                current.append(line)
    return {k: v[1:-1] if v and not v[0] and not v[-1] else v for k, v in sections.items()}


if __name__ == "__main__":
    main()
