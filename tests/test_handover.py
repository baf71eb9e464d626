"""Export: a LoRA-only configuration loads with stock peft (no prunepeft import needed); merging gives a plain
transformers model; mixed configurations are refused with the reason."""

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification

import prunepeft
from prunepeft.cli.main import main
from prunepeft.handover.load import save_weights
from prunepeft.handover.peft_export import ExportError, export_merged, export_peft
from prunepeft.method.backbone import freeze_for_peft, load_model
from prunepeft.method.candidates import SpaceSettings, attach_all, build_space, map_model
from prunepeft.method.recipe import Recipe


def _trained_run(model_dir, run_dir, space, keep, resize=lambda spec: spec):
    """A run folder with random 'trained' weights for the kept candidates (no training needed)."""
    loaded = load_model(model_dir, 2)
    model = loaded.model
    freeze_for_peft(model, loaded.head_names)
    mm = map_model(model)
    specs = [resize(s) for s in build_space(mm, space) if keep(s)]
    attach_all(model, specs)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(std=0.2)
    Recipe(
        model=model_dir, task="x", num_labels=2, layers_path=mm.layers_path, num_layers=mm.num_layers,
        candidates=specs, peft_params=0, budget_params=0, base_params=0, head_params=0,
    ).save(str(run_dir / "recipe.json"))  # fmt: skip
    save_weights(model, str(run_dir))
    return model.eval()


IDS = torch.randint(0, 1000, (3, 11))


@pytest.mark.parametrize("model_fixture", ["tiny_bert_dir", "tiny_llama_dir"])
def test_lora_only_exports_to_stock_peft(request, tmp_path, model_fixture):
    model_dir = request.getfixturevalue(model_fixture)
    space = SpaceSettings(space="extended", lora_rank=4)
    ours = _trained_run(
        model_dir, tmp_path, space, lambda s: s.module == "lora" and (s.layer == 0 or s.kind == "lora_v")
    )
    out = export_peft(str(tmp_path), str(tmp_path / "peft"))
    # load in a fresh interpreter that never imports prunepeft
    code = (
        "import sys, torch; from transformers import AutoModelForSequenceClassification; from peft import PeftModel;"
        f"base = AutoModelForSequenceClassification.from_pretrained({model_dir!r}, num_labels=2);"
        f"m = PeftModel.from_pretrained(base, {out!r}).eval(); ids = torch.load(sys.argv[1]);"
        "torch.save(m(input_ids=ids).logits.detach(), sys.argv[2]);"
        "assert 'prunepeft' not in sys.modules"
    )
    torch.save(IDS, tmp_path / "ids.pt")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ids.pt"), str(tmp_path / "logits.pt")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = torch.load(tmp_path / "logits.pt")
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
    _trained_run(tiny_bert_dir, tmp_path, SpaceSettings(lora_rank=4, bottleneck_size=4), lambda s: s.layer < 2)
    with pytest.raises(ExportError, match="prunepeft.load"):
        export_peft(str(tmp_path), str(tmp_path / "peft"))
    assert main(["export", str(tmp_path), "--merge"]) == 2
    assert "non-linearity" in capsys.readouterr().err
    with pytest.raises(ExportError):
        export_merged(str(tmp_path), str(tmp_path / "m"))
    assert prunepeft.load(None, str(tmp_path)) is not None  # the loader for mixed configurations
