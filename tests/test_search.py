"""End-to-end searches on tiny random models (built from config) with a small synthetic CSV task."""

import json
import math
import random
import re

import pytest
import torch
from safetensors.torch import load_file

import prunepeft
from prunepeft.cli.main import main
from prunepeft.data.load import load_task
from prunepeft.data.tokenizing import tokenize_task
from prunepeft.handover.load import WEIGHTS, save_weights
from prunepeft.method import hybrid
from prunepeft.method.backbone import freeze_for_peft, load_model
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space, map_model
from prunepeft.method.criteria import CRITERIA, MIN_STEPS
from prunepeft.method.pruner import BudgetError, parse_budget
from prunepeft.method.recipe import Recipe

GOOD = "good great fine lovely superb fun moving".split()
BAD = "bad awful dull boring weak poor messy".split()


@pytest.fixture(scope="module")
def csv_task(tmp_path_factory) -> str:
    rng = random.Random(0)
    rows = ["text,label"]
    for i in range(240):
        label = i % 2
        words = rng.choices(GOOD if label else BAD, k=4) + rng.choices(GOOD + BAD, k=2)
        rng.shuffle(words)
        rows.append(f"{' '.join(words)} film {i},{label}")
    path = tmp_path_factory.mktemp("data") / "toy.csv"
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _search(model_dir, task, out, *extra):
    args = [
        "search", "--model", model_dir, "--task", task, "--output-dir", str(out), "--epochs", "1",
        "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--bottleneck-size", "8",
        "--round-epochs", "0.5", "--no-progress", *extra,
    ]  # fmt: skip
    assert main(args) == 0
    return json.loads((out / "results.json").read_text())


def _location(name: str) -> str:
    """The location of a LoRA slice ("L0.lora_qkvo.s1" -> "L0.lora_qkvo"); other names are their own."""
    return re.sub(r"\.s\d+$", "", name)


def _log(out):
    return [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]


def test_search_on_tiny_bert_end_to_end(tiny_bert_dir, csv_task, tmp_path):
    out = tmp_path / "run"
    results = _search(tiny_bert_dir, csv_task, out, "--budget", "2000")
    recipe = Recipe.load(str(out))
    start, *rest = _log(out)
    assert start["phase"] == "start" and start["budget_params"] == 2000
    assert [r["phase"] for r in rest[:4]] == ["warmup"] * 3 + ["assignment"]
    # the assignment counts every warm-up nomination in its partition (and assigns from those counts)
    warm, assigned = rest[:3], rest[3]
    counts = {c: dict.fromkeys(set(start["partition"].values()), 0) for c in CRITERIA}
    for record in warm:
        for c, names in record["nominated"].items():
            for name in names:
                counts[c][start["partition"][name]] += 1
    assert assigned["counts"] == counts
    sizes = {p: list(start["partition"].values()).count(p) for p in set(start["partition"].values())}
    assert assigned["assignment"] == hybrid.assign_criteria(counts, sizes)
    # at least MIN_STEPS steps of evidence per warm-up turn and per round, though the data holds fewer (the
    # warm-up's tenth of 192 rows is 2 steps of 16)
    assert [r["steps"] for r in warm] == [MIN_STEPS] * 3 and [r["step"] for r in warm] == [8, 16, 24]
    rounds = [r for r in rest if r["phase"] == "round"]
    assert rounds and rounds[-1]["peft_params"] == recipe.peft_params <= 2000
    # never removes more than the budget needs: putting the last removal back breaks the budget
    last = rounds[-1]["removed"][-1]
    assert recipe.peft_params + start["candidates"][last] > 2000
    alive = set(start["candidates"])
    for r in rounds:  # every survivor is scored under every criterion, each round
        assert set(r["scores"]) == alive
        assert all(set(s) == set(CRITERIA) for s in r["scores"].values())
        assert set(r["theta"]) == set(r["p"]) == alive
        assert r["val_metric"] is None  # no validation rows scored unless asked
        assert r["steps"] == MIN_STEPS  # a round's share of the data (6 steps) is raised to the minimum
        alive -= set(r["removed"])
    assert [r["step"] for r in rounds] == [MIN_STEPS * (i + 1) for i in range(len(rounds))]
    # each round's own time, not a running total (the first also holds the Trainer's start, before rounds_s counts)
    assert sum(r["wall_s"] for r in rounds[1:]) <= results["time_s"]["rounds_s"]
    assert {_location(n) for n in alive} == {c.name for c in recipe.candidates}  # kept slices merge per location
    assert recipe.peft_params == sum(start["candidates"][n] for n in alive)
    assert set(recipe.removed) == set(start["candidates"]) - alive
    # results
    assert results["params"]["peft"] == recipe.peft_params
    assert results["params"]["head"] == recipe.head_params > 0
    confusion = results["test"]["per_class"]["confusion_matrix"]
    assert results["test"]["test_accuracy"] == pytest.approx(
        sum(confusion[i][i] for i in range(2)) / sum(map(sum, confusion))
    )
    times = results["time_s"]
    assert times["search_to_train_ratio"] == pytest.approx(
        (times["search_s"] + times.get("rate_choice_s", 0.0)) / times["final_train_s"], rel=2e-3
    )
    assert "torch" in results["versions"]
    assert results["memory_mib"]["peak_rss"] >= results["params"]["search_memory_mib"]["peak_rss"]
    latency = results["latency_ms"]
    assert (latency["configuration_lora_merged"] is None) == (not any(c.module == "lora" for c in recipe.candidates))
    # the report is written at the end of a search, with its plots
    page = (out / "report.html").read_text()
    for png in ("module_map.png", "trajectory.png", "assignment.png", "scores.png"):
        assert png in page and (out / png).stat().st_size > 1000
    assert not (out / "_final").exists() and not (out / "_search").exists()
    # the saved model: only survivors + head are trained; load() rebuilds it and reproduces the test metric
    saved = load_file(str(out / WEIGHTS))
    assert sum(t.numel() for t in saved.values()) == recipe.peft_params + recipe.head_params
    model = prunepeft.load(tiny_bert_dir, str(out))
    task = load_task(csv_task)
    loaded = load_model(tiny_bert_dir, 2)
    test = tokenize_task(task, loaded.tokenizer, 16)["test"]
    correct = 0
    with torch.no_grad():
        for row in test:
            ids = torch.tensor([row["input_ids"]])
            correct += int(model(input_ids=ids).logits.argmax(-1).item() == row["labels"])
    assert correct / len(test) == pytest.approx(results["test"]["test_accuracy"])


def test_search_on_tiny_llama(tiny_llama_dir, csv_task, tmp_path):
    out = tmp_path / "llama"
    results = _search(tiny_llama_dir, csv_task, out, "--budget", "1500")
    recipe = Recipe.load(str(out))
    assert recipe.layers_path == "model.layers"
    assert recipe.peft_params <= 1500 and results["params"]["peft"] == recipe.peft_params
    assert all(t.startswith("model.layers.") for c in recipe.candidates for t in c.targets)


@pytest.mark.parametrize(
    "flags",
    [["--criterion", "sensitivity"], ["--criterion", "random"], ["--no-blocks"], ["--low-fidelity", "0.5"],
     ["--space", "extended", "--reinit-survivors"]],
)  # fmt: skip
def test_search_settings(tiny_bert_dir, csv_task, tmp_path, flags):
    out = tmp_path / "run"
    results = _search(tiny_bert_dir, csv_task, out, "--budget", "0.3%", *flags)
    recipe = Recipe.load(str(out))
    assert recipe.peft_params <= recipe.budget_params == int(0.003 * recipe.base_params)
    log = _log(out)
    phases = [r["phase"] for r in log]
    assert ("warmup" in phases) == ("--criterion" not in flags)
    alive = set(log[0]["candidates"]) - {n for r in log if r["phase"] == "round" for n in r["removed"]}
    assert results["params"]["peft"] == recipe.peft_params == sum(log[0]["candidates"][n] for n in alive)


def test_train_recipe_retrains_the_found_configuration(tiny_bert_dir, csv_task, tmp_path):
    first = tmp_path / "search"
    _search(tiny_bert_dir, csv_task, first, "--budget", "2000")
    second = tmp_path / "again"
    # the recipe brings its own model and task
    args = ["train", "--recipe", str(first / "recipe.json"), "--output-dir", str(second), "--epochs", "1",
            "--max-length", "16", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert Recipe.load(str(second)).candidates == Recipe.load(str(first)).candidates
    assert json.loads((second / "results.json").read_text())["params"]["peft"] > 0


def test_save_and_load_give_identical_logits(tiny_bert_dir, tmp_path):
    loaded = load_model(tiny_bert_dir, 2)
    model = loaded.model
    freeze_for_peft(model, loaded.head_names)
    mm = map_model(model)
    specs = build_space(mm, SpaceSettings(space="extended", lora_rank=2, bottleneck_size=4))[::3]
    recipe = Recipe(
        model=tiny_bert_dir, task="x", num_labels=2, layers_path=mm.layers_path, num_layers=mm.num_layers,
        candidates=specs, peft_params=0, budget_params=0, base_params=0, head_params=0,
    )  # fmt: skip
    attach_all(model, recipe.candidates)  # as trained: kept slices merged per location
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_()
    recipe.save(str(tmp_path / "recipe.json"))
    save_weights(model, str(tmp_path))
    again = prunepeft.load(None, str(tmp_path))
    ids = torch.randint(0, 1000, (3, 9))
    model.eval()
    torch.testing.assert_close(again(input_ids=ids).logits, model(input_ids=ids).logits)


@pytest.mark.parametrize(
    "text,expected", [("0.01", 1000), ("1%", 1000), ("2.5%", 2500), ("5000", 5000), ("1e-3", 100), ("100%", 100_000)]
)
def test_parse_budget(text, expected):
    assert parse_budget(text, 100_000) == expected


@pytest.mark.parametrize("text", ["0", "-1", "abc", "12.5", ""])
def test_bad_budget_is_refused(text):
    with pytest.raises(BudgetError, match="budget"):
        parse_budget(text, 100_000)


def test_budget_below_smallest_candidate_is_refused(tiny_bert_dir, csv_task, tmp_path, capsys):
    args = ["search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(tmp_path / "x"),
            "--budget", "10", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "below the largest candidate" in capsys.readouterr().err


def test_coverage_note_when_the_budget_cannot_reach_every_layer():
    from prunepeft.runs.find_recipe import coverage_note

    units = {f"L{i}.{kind}": size for i in range(6) for kind, size in (("lora_qv", 49_152), ("serial_ffn", 49_600))}
    note = coverage_note(227_132, units, 6)  # MiniLM at 1% with the paper's units
    assert note and "at most 4 of the 12 candidates" in note and "at most 4 of the 6 layers" in note
    half = {name: size // 2 for name, size in units.items()}
    assert coverage_note(227_132, half, 6) is None  # 9 half-size units fit: every layer can have one


def test_existing_output_is_not_overwritten(tiny_bert_dir, csv_task, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "results.json").write_text("{}")
    args = ["search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), "--no-progress"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "results.json").read_text() == "{}"


def test_trainer_flags_pass_through():
    from prunepeft.cli.main import _train_settings
    from prunepeft.cli.parser import build_parser
    from prunepeft.runs.training import training_arguments

    args = build_parser().parse_args(["search", "--report-to", "tensorboard", "--learning-rate", "3e-4", "--seed", "7"])
    trainer_args = training_arguments(_train_settings(args), "unused")
    assert trainer_args.report_to == ["tensorboard"] and trainer_args.learning_rate == 3e-4 and trainer_args.seed == 7
    assert trainer_args.disable_tqdm  # prunepeft.common.progress shows one line per phase instead of the Trainer's bars


def test_search_on_a_glue_regression_pair_task(tiny_bert_dir, tmp_path):
    """STS-B in the GLUE schema (text pairs, float labels, Pearson) from a local copy, as users without hub use it."""
    import datasets

    rng = random.Random(1)

    def rows(n):
        s1 = [" ".join(rng.choices(GOOD + BAD, k=5)) for _ in range(n)]
        s2 = [" ".join(rng.choices(GOOD + BAD, k=5)) for _ in range(n)]
        score = [float(sum(w in GOOD for w in a.split() + b.split())) / 2 for a, b in zip(s1, s2, strict=True)]
        return {"sentence1": s1, "sentence2": s2, "label": score, "idx": list(range(n))}

    copy = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows(200)), "validation": datasets.Dataset.from_dict(rows(40)),
         "test": datasets.Dataset.from_dict({**rows(10), "label": [-1.0] * 10})}
    )  # fmt: skip
    copy.save_to_disk(tmp_path / "stsb")
    out = tmp_path / "run"
    results = _search(tiny_bert_dir, "stsb", out, "--data-dir", str(tmp_path / "stsb"), "--budget", "2000",
                      "--search-eval-samples", "32")  # fmt: skip
    assert results["metric"] == "pearson" and "test_spearmanr" in results["test"]
    rounds = [r for r in _log(out) if r["phase"] == "round"]
    assert all(r["val_metric"] is not None for r in rounds)
    assert Recipe.load(str(out)).num_labels == 1


@pytest.mark.parametrize("task,expected", [("./saved_ds/", "runs/saved_ds"), ("data/.hidden", "runs/hidden"),
                                           ("my.data.csv", "runs/my.data"), ("sst2", "runs/sst2")])  # fmt: skip
def test_default_output_dir_is_never_runs_itself(task, expected):
    from prunepeft.cli.main import _options
    from prunepeft.cli.parser import build_parser

    assert _options(build_parser().parse_args(["search", "--task", task])).output_dir == expected


def test_own_trainer_warmup_records_activations(tiny_bert_dir):
    from prunepeft.method.trainer_plugin import PrunePEFT

    loaded = load_model(tiny_bert_dir, 2)
    search = PrunePEFT(loaded.model, budget="10000")
    loaded.model.train()
    loaded.model(input_ids=torch.randint(0, 1000, (2, 7)), labels=torch.tensor([0, 1])).loss.backward()
    search.recorder.after_backward()
    stats = search.recorder.take()
    assert all(s.activation_calls > 0 for s in stats.values())


def test_default_unit_sizes_follow_the_budget(tiny_bert_dir, csv_task, tmp_path):
    """With no size flags every location holds about an equal share of twice the budget, in LoRA slices that
    differ by at most one rank."""
    from transformers import AutoConfig

    from prunepeft.method.candidates import KEEP_SHARE, LORA_SLICES

    out = tmp_path / "auto"
    args = [
        "search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), "--epochs", "1",
        "--batch-size", "16", "--max-length", "16", "--round-epochs", "0.5", "--no-progress", "--budget", "6000",
        "--learning-rate", "1e-3",
    ]  # fmt: skip
    assert main(args) == 0
    start = _log(out)[0]
    config = AutoConfig.from_pretrained(tiny_bert_dir)
    hidden, inner = config.hidden_size, config.intermediate_size
    per_rank = {"lora_qkvo": 4 * 2 * hidden, "lora_ffn": 2 * (hidden + inner)}  # one more rank of a location
    locations: dict[str, list[int]] = {}
    for name, n in start["candidates"].items():
        locations.setdefault(re.sub(r"\.s\d+$", "", name), []).append(n)
    share = 6000 / (KEEP_SHARE * len(locations))
    for location, slices in locations.items():
        step = per_rank[location.split(".")[1]]
        rank = math.floor(share / step)  # the largest rank within the share (rounded down)
        assert sum(slices) == step * rank and max(slices) - min(slices) <= step, (location, slices, rank)
        assert len(slices) == min(LORA_SLICES, rank), (location, slices)
    recipe = Recipe.load(str(out))
    largest = max(n for s in locations.values() for n in s)
    assert recipe.peft_params <= 6000 < recipe.peft_params + largest  # it stops as soon as the budget fits


def test_a_percentage_budget_is_a_share_of_the_base_model_without_its_head(tiny_bert_dir, csv_task, tmp_path):
    """The classifier head is trained by every method and is never counted against the budget: 2% is 2% of the
    base model without the head (at 2% the head's 66 parameters move the count), the search stops as soon as the
    candidates alone fit, and the head is reported apart."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith("classifier."))
    base = sum(p.numel() for p in model.parameters()) - head
    assert int(0.02 * base) != int(0.02 * (base + head))  # the case can tell them apart
    out = tmp_path / "pct"
    args = ["search", "--model", tiny_bert_dir, "--task", csv_task, "--output-dir", str(out), "--epochs", "1",
            "--batch-size", "16", "--max-length", "16", "--round-epochs", "0.5", "--no-progress", "--budget", "2%"]  # fmt: skip
    assert main(args) == 0  # unit sizes from the budget
    results = json.loads((out / "results.json").read_text())
    start, *rest = _log(out)
    assert (start["base_params"], start["head_params"], start["budget_params"]) == (base, head, int(0.02 * base))
    recipe = Recipe.load(str(out))
    alive = set(start["candidates"]) - {n for r in rest if r["phase"] == "round" for n in r["removed"]}
    kept = sum(start["candidates"][n] for n in alive)
    assert recipe.peft_params == kept == results["params"]["peft"] <= results["params"]["budget"] == int(0.02 * base)
    last = [r for r in rest if r["phase"] == "round"][-1]["removed"][-1]
    assert kept + start["candidates"][last] > int(0.02 * base)  # no candidate removed to make room for the head
    assert results["params"]["head"] == head
