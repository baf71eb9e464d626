"""Decoder models: classification on tiny Qwen2 / Mistral, and instruction tuning (causal LM, loss on the
response only) on tiny Llama and Qwen2, all built from config."""

import json
import random

import pytest
import torch
from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM

import prunepeft
from conftest import MINILM
from prunepeft.cli.main import main
from prunepeft.data.instruct import load_instructions, prompt_text, tokenize_instructions
from prunepeft.method.recipe import Recipe
from test_search import _search, csv_task  # noqa: F401  (fixture)

# a few ids beyond the BERT vocabulary: Qwen2's tokenizer class adds its own special tokens (e.g. <|endoftext|>)
SMALL = dict(vocab_size=30522 + 8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=64, max_position_embeddings=128, pad_token_id=0)  # fmt: skip


def _save(model, path):
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(MINILM).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_qwen2_dir(tmp_path_factory):
    torch.manual_seed(0)
    return _save(Qwen2ForCausalLM(Qwen2Config(**SMALL)), tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(scope="module")
def tiny_mistral_dir(tmp_path_factory):
    torch.manual_seed(0)
    return _save(MistralForCausalLM(MistralConfig(**SMALL)), tmp_path_factory.mktemp("mistral"))


@pytest.fixture(scope="module")
def instructions(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("instr") / "sums.jsonl"
    with path.open("w") as fh:
        for _ in range(60):
            a, b = rng.randint(0, 9), rng.randint(0, 9)
            fh.write(json.dumps({"question": f"what is {a} plus {b}", "solution": f"{a} plus {b} is {a + b}",
                                 "final": str(a + b)}) + "\n")  # fmt: skip
    return str(path)


@pytest.mark.parametrize("fixture", ["tiny_qwen2_dir", "tiny_mistral_dir"])
def test_decoder_classification_search(request, csv_task, tmp_path, fixture):  # noqa: F811
    out = tmp_path / "cls"
    results = _search(request.getfixturevalue(fixture), csv_task, out, "--budget", "1500")
    recipe = Recipe.load(str(out))
    assert recipe.layers_path == "model.layers" and recipe.peft_params <= 1500
    assert results["params"]["head"] > 0  # the score head of ...ForSequenceClassification


def test_lora_baseline_finds_the_decoder_projections(tiny_llama_dir, csv_task, tmp_path):  # noqa: F811
    out = tmp_path / "lora"
    args = ["train", "--method", "lora", "--model", tiny_llama_dir, "--task", csv_task, "--output-dir", str(out),
            "--epochs", "1", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    params = json.loads((out / "results.json").read_text())["params"]
    assert params["lora_targets"] == ["self_attn.q_proj", "self_attn.v_proj"]
    assert params["peft"] == 2 * 4 * (32 + 32) + 2 * 4 * (32 + 16)  # 2 layers; q is 32->32, v is 32->16 (2 kv heads)


def test_prompt_tokens_carry_no_loss(instructions):
    task = load_instructions(instructions, "question", "solution", "final")
    tokenizer = AutoTokenizer.from_pretrained(MINILM)
    row = task.train[0]
    encoded = tokenize_instructions(task, tokenizer, 64)["train"][0]
    n_prompt = len(tokenizer(prompt_text(tokenizer, row["prompt"]))["input_ids"])
    assert encoded["labels"][:n_prompt] == [-100] * n_prompt
    assert encoded["labels"][n_prompt:] == encoded["input_ids"][n_prompt:] and len(encoded["labels"]) > n_prompt
    assert len(task.train) + len(task.validation) + len(task.test) == 60


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "tiny_qwen2_dir"])
def test_instruction_tuning_search(request, instructions, tmp_path, fixture):
    model_dir = request.getfixturevalue(fixture)
    out = tmp_path / "instr"
    results = _search(model_dir, instructions, out, "--budget", "1500", "--prompt-column", "question",
                      "--response-column", "solution", "--answer-column", "final", "--max-length", "32",
                      "--search-eval-samples", "16")  # fmt: skip
    assert results["metric"] == "loss" and results["params"]["head"] == 0
    assert results["test"]["test_perplexity"] > 1 and 0 <= results["test"]["test_exact_match"] <= 1
    rounds = [json.loads(line) for line in (out / "search_log.jsonl").read_text().splitlines()]
    assert all(r["val_metric"] is not None for r in rounds if r["phase"] == "round")
    model = prunepeft.load(None, str(out))  # rebuilt as a causal LM with the kept modules
    assert model.config.architectures is None or "CausalLM" in model.__class__.__name__
