"""A GGUF checkpoint loads through transformers (dequantised) and a search runs on it.

The file is written here with the `gguf` package from a tiny random Llama: a small sentencepiece-style
vocabulary (tokens + scores), the config as llama.* metadata, and the q/k projections stored in llama.cpp's
rotary layout, which transformers undoes on load. Equal logits prove the round trip."""

import json

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import prunepeft
from prunepeft.cli.main import main
from test_search import BAD, GOOD, csv_task  # noqa: F401  (fixture)

gguf = pytest.importorskip("gguf")

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
PIECES = ["\u2581"] + list("abcdefghijklmnopqrstuvwxyz0123456789")


def _vocab() -> tuple[list[str], list[float]]:
    words = ["\u2581" + w for w in GOOD + BAD + ["film"]]
    tokens = SPECIAL + PIECES + words
    scores = [0.0] * len(SPECIAL) + [-1000.0 - i for i in range(len(PIECES))] + [-10.0 - i for i in range(len(words))]
    return tokens, scores


def _rotary_layout(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp stores each head's rows with the two rotary halves interleaved."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_llama_gguf(path, quantize: bool = False) -> LlamaForCausalLM:
    """With ``quantize``, the matrices are stored as Q8_0 blocks (8-bit, one scale per 32 values)."""
    tokens, scores = _vocab()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128, pad_token_id=3,
                         bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-5, rope_theta=10000.0)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(128)
    w.add_embedding_length(32)
    w.add_block_count(2)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(8)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types([2, 3, 3, 3] + [1] * (len(tokens) - 4))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(3)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    add = w.add_tensor

    def add_tensor(name, array):
        if not quantize or array.ndim != 2:
            return add(name, array)
        q8 = gguf.GGMLQuantizationType.Q8_0
        return add(name, gguf.quants.quantize(array, q8), raw_dtype=q8)

    w.add_tensor = add_tensor
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    names = {"self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate",
             "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}  # fmt: skip
    for i in range(2):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_q.weight", _rotary_layout(sd[p + "self_attn.q_proj.weight"], 4))
        w.add_tensor(f"blk.{i}.attn_k.weight", _rotary_layout(sd[p + "self_attn.k_proj.weight"], 2))
        for hf, ours in names.items():
            w.add_tensor(f"blk.{i}.{ours}.weight", sd[p + hf + ".weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gguf")
    source = write_tiny_llama_gguf(folder / "tiny.gguf")
    write_tiny_llama_gguf(folder / "tiny-q8_0.gguf", quantize=True)
    return folder, source


@pytest.mark.parametrize("name,tolerance", [("tiny.gguf", 1e-5), ("tiny-q8_0.gguf", 2e-2)])
def test_gguf_round_trip_gives_the_source_logits(gguf_dir, name, tolerance):
    from prunepeft.method.backbone import load_model

    folder, source = gguf_dir
    loaded = load_model(str(folder), 0, gguf_file=name).model.eval()
    assert getattr(loaded, "hf_quantizer", None) is None and not getattr(loaded, "is_quantized", False)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())  # dense full precision: trainable
    ids = torch.tensor([[1, 40, 5, 9, 41, 12]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, source(ids).logits, atol=tolerance)


def test_search_on_a_gguf_model(gguf_dir, csv_task, tmp_path):  # noqa: F811
    folder, _ = gguf_dir
    out = tmp_path / "run"
    args = ["search", "--model", str(folder), "--gguf-file", "tiny-q8_0.gguf", "--task", csv_task, "--output-dir",
            str(out), "--epochs", "1", "--batch-size", "16", "--max-length", "16", "--lora-rank", "4",
            "--bottleneck-size", "8", "--round-epochs", "0.5", "--budget", "1000", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["params"]["peft"] <= 1000 and 0.0 <= results["test"]["test_accuracy"] <= 1.0
    assert json.loads((out / "run_config.json").read_text())["run"]["gguf_file"] == "tiny-q8_0.gguf"
    model = prunepeft.load(None, str(out)).eval()  # rebuilt on the GGUF base named in the recipe
    with torch.no_grad():
        assert model(torch.tensor([[1, 40, 5, 9]])).logits.shape == (1, 2)
