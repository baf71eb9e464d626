"""prunepeft: find which PEFT modules to keep, and where, by iterative hybrid pruning (PrunePEFT)."""

from prunepeft.common.version import VERSION as __version__

__all__ = ["PrunePEFT", "PrunePEFTCallback", "load", "__version__"]


def load(base_model, run_dir, *, trust_remote_code: bool = False, with_tokenizer: bool = False):
    """Rebuild a finished run for inference (eval mode); with ``with_tokenizer``, return ``(model, tokenizer)``.

    ``base_model``: None uses the model the run was trained on; else a model folder, hub id or ``"minilm"``.
    ``run_dir``: the ``--output-dir`` of a search or train run. A recipe (searches, ``train --recipe``, the adapter
    and supernet baselines) is rebuilt by prunepeft; a peft baseline (lora, dora, adalora) loads as a peft
    ``PeftModel``; full fine-tuning as a plain transformers model. ``model.config.id2label`` holds the label names.
    The tokenizer is the base model's (decoders pad with their end-of-sequence token)::

        model, tokenizer = prunepeft.load(None, "runs/reviews", with_tokenizer=True)
        batch = tokenizer(["a fine film"], padding=True, truncation=True, return_tensors="pt")
        label = model.config.id2label[model(**batch).logits.argmax(-1).item()]
    """
    from prunepeft.handover.load import load_tokenizer, load_trained

    model = load_trained(base_model, run_dir, trust_remote_code=trust_remote_code)
    if not with_tokenizer:
        return model
    return model, load_tokenizer(base_model, run_dir, trust_remote_code=trust_remote_code)


def __getattr__(name):  # keep `import prunepeft` light: torch/transformers load on first use
    if name == "PrunePEFT":
        from prunepeft.method.trainer_plugin import PrunePEFT

        return PrunePEFT
    if name == "PrunePEFTCallback":
        from prunepeft.method.callback import PrunePEFTCallback

        return PrunePEFTCallback
    raise AttributeError(name)
