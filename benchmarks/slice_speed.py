"""What LoRA slices cost a supernet step: MiniLM at 1%, the default (lora) space, 4 slices against whole units.

`.venv/bin/python benchmarks/slice_speed.py` -> prints the median forward + backward time of each (batch 32 x 64
tokens, one thread, statistics recording on, alternating blocks so that both see the same machine) and their ratio.
Run it with nothing else on the machine; a ratio measured beside other work is a rough one.
"""

import statistics
import time

import torch
from transformers import AutoModelForSequenceClassification

from prunepeft.method.backbone import resolve_model
from prunepeft.method.callback import StatsRecorder
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space, detach, map_model, unit_sizes

BUDGET = 227_132  # 1% of MiniLM's base parameters
BLOCKS, STEPS = 5, 3


def _step(model, batch, recorder, candidates) -> None:
    model(input_ids=batch).logits.sum().backward()
    recorder.after_backward()
    for c in candidates:
        for p in c.parameters():
            p.grad = None


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_model("minilm"), num_labels=2)
    for p in model.parameters():
        p.requires_grad_(False)
    model_map = map_model(model)
    batch = torch.randint(0, model.config.vocab_size, (32, 64))
    times: dict[int, list[float]] = {1: [], 4: []}
    for _ in range(BLOCKS):
        for slices in times:
            settings = SpaceSettings(lora_slices=slices)
            specs = build_space(model_map, settings, unit_sizes(model, model_map, settings, BUDGET))
            candidates = attach_all(model, specs)
            recorder = StatsRecorder({c.spec.name: c for c in candidates})

            _step(model, batch, recorder, candidates)  # warm-up
            start = time.perf_counter()
            for _ in range(STEPS):
                _step(model, batch, recorder, candidates)
            times[slices].append((time.perf_counter() - start) / STEPS)
            recorder.close()
            for c in reversed(candidates):
                detach(model, c)
    whole, sliced = statistics.median(times[1]), statistics.median(times[4])
    print(f"whole units: {whole:.3f} s/step; 4 slices: {sliced:.3f} s/step; ratio {sliced / whole:.2f}")


if __name__ == "__main__":
    main()
