"""Export: a LoRA-only configuration loads with stock peft (no prunepeft import needed); merging gives a plain
transformers model; mixed configurations are refused with the reason."""

import dataclasses
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import prunepeft
from conftest import MINILM
from prunepeft.cli.main import main
from prunepeft.handover.load import save_weights
from prunepeft.handover.peft_export import ExportError, export_merged, export_peft, portable_base
from prunepeft.method.backbone import freeze_for_peft, load_model
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space, map_model
from prunepeft.method.recipe import Recipe


def _trained_run(model_dir, run_dir, space, keep, resize=lambda spec: spec):
    """A run folder with random 'trained' weights for the kept candidates (no training needed)."""
    loaded = load_model(model_dir, 2)
    model = loaded.model
    freeze_for_peft(model, loaded.head_names)
    mm = map_model(model)
    recipe = Recipe(
        model=model_dir, task="x", num_labels=2, layers_path=mm.layers_path, num_layers=mm.num_layers,
        candidates=[s for s in build_space(mm, space) if keep(s)], peft_params=0, budget_params=0, base_params=0,
        head_params=0,
    )  # fmt: skip
    recipe.candidates = [resize(s) for s in recipe.candidates]  # a location's size, after its slices merged
    recipe.save(str(run_dir / "recipe.json"))
    attach_all(model, recipe.candidates)  # as trained: a location's kept slices are one LoRA
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(std=0.2)
    save_weights(model, str(run_dir))
    return model.eval()


IDS = torch.randint(0, 1000, (3, 11))


def _peft_logits_without_prunepeft(tmp_path, base_dir, folder, **base_kwargs):
    """Logits of ``folder`` loaded by stock peft in a fresh interpreter that must never import prunepeft."""
    code = (
        "import sys, torch; from transformers import AutoModelForSequenceClassification; from peft import PeftModel;"
        f"base = AutoModelForSequenceClassification.from_pretrained({base_dir!r}, **{base_kwargs!r});"
        f"m = PeftModel.from_pretrained(base, {str(folder)!r}).eval(); ids = torch.load(sys.argv[1]);"
        "torch.save((m(input_ids=ids).logits.detach(), m.config.id2label), sys.argv[2]);"
        "assert 'prunepeft' not in sys.modules"
    )
    torch.save(IDS, tmp_path / "ids.pt")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ids.pt"), str(tmp_path / "logits.pt")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return torch.load(tmp_path / "logits.pt")


@pytest.mark.parametrize("model_fixture", ["tiny_bert_dir", "tiny_llama_dir"])
def test_lora_only_exports_to_stock_peft(request, tmp_path, model_fixture):
    model_dir = request.getfixturevalue(model_fixture)
    space = SpaceSettings(space="extended", lora_rank=4)
    # two ranks: the folder is only right if peft reads the rank_pattern (rank 4 everywhere cannot load it)
    halved = lambda spec: dataclasses.replace(spec, size=2) if spec.layer == 0 else spec  # noqa: E731
    keep = lambda s: s.module == "lora" and (s.layer == 0 or s.kind == "lora_v")  # noqa: E731
    ours = _trained_run(model_dir, tmp_path, space, keep, halved)
    out = export_peft(str(tmp_path), str(tmp_path / "peft"))
    assert json.loads((tmp_path / "peft" / "adapter_config.json").read_text())["rank_pattern"]
    theirs, _ = _peft_logits_without_prunepeft(tmp_path, model_dir, out, num_labels=2)
    torch.testing.assert_close(theirs, ours(input_ids=IDS).logits, rtol=1e-5, atol=1e-5)


def test_mixed_ranks_use_rank_and_alpha_patterns(tiny_bert_dir, tmp_path):
    space = SpaceSettings(space="extended", lora_rank=4, lora_alpha=8)
    smaller = lambda s: dataclasses.replace(s, size=2, alpha=6.0) if s.kind == "lora_o" else s  # noqa: E731
    ours = _trained_run(tiny_bert_dir, tmp_path, space, lambda s: s.kind in ("lora_q", "lora_o"), smaller)
    out = export_peft(str(tmp_path), str(tmp_path / "peft"))
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["r"] == 4 and set(config["rank_pattern"].values()) == {2}
    assert set(config["alpha_pattern"].values()) == {6.0}
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=2)
    peft_model = PeftModel.from_pretrained(base, out).eval()
    torch.testing.assert_close(peft_model(input_ids=IDS).logits, ours(input_ids=IDS).logits, rtol=1e-5, atol=1e-5)


def test_merge_gives_a_plain_transformers_model(tiny_bert_dir, tmp_path):
    ours = _trained_run(tiny_bert_dir, tmp_path, SpaceSettings(lora_rank=4), lambda s: s.module == "lora")
    assert main(["export", str(tmp_path), "--merge"]) == 0
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids=IDS).logits, ours(input_ids=IDS).logits, rtol=1e-4, atol=1e-5)


def test_mixed_configuration_is_refused_with_the_reason(tiny_bert_dir, tmp_path, capsys):
    space = SpaceSettings(space="attention", lora_rank=4, bottleneck_size=4)  # LoRA and adapters
    _trained_run(tiny_bert_dir, tmp_path, space, lambda s: s.layer < 2)
    with pytest.raises(ExportError, match="prunepeft.load"):
        export_peft(str(tmp_path), str(tmp_path / "peft"))
    assert main(["export", str(tmp_path), "--merge"]) == 2
    assert "non-linearity" in capsys.readouterr().err
    with pytest.raises(ExportError):
        export_merged(str(tmp_path), str(tmp_path / "m"))
    assert prunepeft.load(None, str(tmp_path)) is not None  # the loader for mixed configurations


# ------------------------------------------------------------------------ a peft baseline run (train --method lora)

NAMES = ["bad", "good"]


@pytest.fixture(scope="module")
def lora_run(tiny_bert_dir, tmp_path_factory):
    """A `train --method lora` run on string labels; the warnings of our own calls are recorded."""
    folder = tmp_path_factory.mktemp("lora-baseline")
    rows = ["text,label"] + [f"{'fine good' if i % 2 else 'dull bad'} film {i},{NAMES[i % 2]}" for i in range(120)]
    (folder / "toy.csv").write_text("\n".join(rows) + "\n")
    args = ["train", "--method", "lora", "--model", tiny_bert_dir, "--task", str(folder / "toy.csv"),
            "--output-dir", str(folder / "run"), "--epochs", "1", "--batch-size", "16", "--max-length", "16",
            "--lora-rank", "4", "--no-progress"]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 0
    return folder / "run", caught


def _deprecations(caught) -> list[str]:
    return [str(w.message) for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_lora_baseline_exports_to_stock_peft(lora_run, tiny_bert_dir, tmp_path):
    run, caught = lora_run
    assert not _deprecations(caught)  # train --method lora: peft's deprecated property read is filtered
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", str(run)]) == 0  # refused before with "no recipe"
        ours = prunepeft.load(None, str(run))
    assert not _deprecations(caught)
    config = json.loads((run / "peft" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_bert_dir and config["peft_type"] == "LORA"
    assert "classifier" in config["modules_to_save"]
    assert "id2label={0: 'bad', 1: 'good'}" in (run / "peft" / "README.md").read_text()
    maps = {"id2label": dict(enumerate(NAMES)), "label2id": {n: i for i, n in enumerate(NAMES)}}
    theirs, id2label = _peft_logits_without_prunepeft(tmp_path, tiny_bert_dir, run / "peft", **maps)
    torch.testing.assert_close(theirs, ours(input_ids=IDS).logits, rtol=1e-5, atol=1e-5)
    assert id2label == {0: "bad", 1: "good"} == ours.config.id2label


def test_a_head_of_two_new_layers_trains_saves_and_exports_as_one_module(tiny_roberta_encoder_dir, tmp_path):
    """A base saved without a head (RoBERTa- and MPNet-like): its new head is `classifier` with two layers inside.
    peft must be given `classifier` alone: given its layers as well it wrapped them twice, and the first
    checkpoint of `train --method lora` failed (KeyError 'modules_to_save.default.dense.weight')."""
    loaded = load_model(tiny_roberta_encoder_dir, 2)
    assert loaded.head_names == ("classifier",)
    rows = ["text,label"] + [f"{'fine good' if i % 2 else 'dull bad'} film {i},{NAMES[i % 2]}" for i in range(64)]
    (tmp_path / "toy.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    args = ["train", "--method", "lora", "--model", tiny_roberta_encoder_dir, "--task", str(tmp_path / "toy.csv"),
            "--output-dir", str(run), "--epochs", "2", "--batch-size", "16", "--max-length", "16",
            "--lora-rank", "4", "--no-progress"]  # fmt: skip
    assert main(args) == 0  # two epochs: a checkpoint is saved, and resumed from, after the first
    assert main(["export", str(run)]) == 0
    config = json.loads((run / "peft" / "adapter_config.json").read_text())
    assert set(config["modules_to_save"]) <= {"classifier", "score"}  # peft adds its defaults; no layer inside
    ours = prunepeft.load(None, str(run))
    maps = {"id2label": dict(enumerate(NAMES)), "label2id": {n: i for i, n in enumerate(NAMES)}}
    theirs, _ = _peft_logits_without_prunepeft(tmp_path, tiny_roberta_encoder_dir, run / "peft", **maps)
    torch.testing.assert_close(theirs, ours(input_ids=IDS).logits, rtol=1e-5, atol=1e-5)


def test_lora_baseline_merges_into_a_plain_model(lora_run, tmp_path):
    run, _ = lora_run
    assert main(["export", str(run), "--merge", "--output", str(tmp_path / "merged")]) == 0
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert merged.config.id2label == {0: "bad", 1: "good"}
    ours = prunepeft.load(None, str(run))
    torch.testing.assert_close(merged(input_ids=IDS).logits, ours(input_ids=IDS).logits, rtol=1e-4, atol=1e-5)


def test_load_returns_the_tokenizer_too(lora_run, tiny_bert_dir, tmp_path):
    run, _ = lora_run
    model, tokenizer = prunepeft.load(None, str(run), with_tokenizer=True)
    batch = tokenizer(["fine good film", "dull bad"], padding=True, return_tensors="pt")
    assert model(**batch).logits.shape == (2, 2)
    assert tokenizer("fine film")["input_ids"] == AutoTokenizer.from_pretrained(tiny_bert_dir)("fine film")["input_ids"]
    _trained_run(tiny_bert_dir, tmp_path, SpaceSettings(lora_rank=4), lambda s: s.module == "lora")
    model, tokenizer = prunepeft.load(None, str(tmp_path), with_tokenizer=True)  # a recipe run
    assert model(**tokenizer(["a film"], return_tensors="pt")).logits.shape == (1, 2)


# ------------------------------------------------------------------------------------------ the output folder


def test_export_never_writes_into_or_deletes_a_user_folder(lora_run, tmp_path, capsys):
    run, _ = lora_run
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    assert main(["export", str(run), "--output", str(target)]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]  # nothing written, nothing deleted


def test_an_earlier_export_is_replaced_not_mixed(lora_run, tmp_path):
    run, _ = lora_run
    target = tmp_path / "out"
    assert main(["export", str(run), "--output", str(target)]) == 0
    assert main(["export", str(run), "--merge", "--output", str(target)]) == 0
    names = {p.name for p in target.iterdir()}
    assert "model.safetensors" in names and not names & {"adapter_config.json", "adapter_model.safetensors"}
    (target / "extra.bin").write_text("a file the user added")
    assert main(["export", str(run), "--output", str(target)]) == 2  # no longer only our files: refused
    assert (target / "extra.bin").exists() and (target / "model.safetensors").exists()


def test_exported_folder_names_the_base_model_portably(tmp_path):
    assert portable_base("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert portable_base(MINILM) == "sentence-transformers/all-MiniLM-L6-v2"  # the installed copy's path
    assert portable_base("bert-base-uncased") == "bert-base-uncased"
    assert portable_base(os.path.relpath(MINILM + "/..")) == os.path.abspath(MINILM + "/..")
    _trained_run("minilm", tmp_path, SpaceSettings(lora_rank=2), lambda s: s.module == "lora" and s.layer == 0)
    export_peft(str(tmp_path), str(tmp_path / "peft"))
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"


def test_predict_labels_text_with_a_lora_baseline(lora_run, tmp_path):
    run, _ = lora_run
    (tmp_path / "new.csv").write_text("text\nfine good film\ndull bad\n")
    assert main(["predict", str(run), "--task", str(tmp_path / "new.csv"), "--output", str(tmp_path / "out.csv")]) == 0
    assert set((tmp_path / "out.csv").read_text().splitlines()[0].split(",")) >= {"label", "p_bad", "p_good"}
