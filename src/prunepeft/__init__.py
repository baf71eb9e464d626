"""prunepeft: find which PEFT modules to keep, and where, by iterative hybrid pruning (PrunePEFT)."""

from prunepeft.common.version import VERSION as __version__

__all__ = ["PrunePEFT", "PrunePEFTCallback", "load", "__version__"]


def load(base_model, run_dir, *, trust_remote_code: bool = False):
    """Rebuild a trained prunepeft configuration: see ``prunepeft.handover.load.load``."""
    from prunepeft.handover.load import load as _load

    return _load(base_model, run_dir, trust_remote_code=trust_remote_code)


def __getattr__(name):  # keep `import prunepeft` light: torch/transformers load on first use
    if name == "PrunePEFT":
        from prunepeft.method.trainer_plugin import PrunePEFT

        return PrunePEFT
    if name == "PrunePEFTCallback":
        from prunepeft.method.callback import PrunePEFTCallback

        return PrunePEFTCallback
    raise AttributeError(name)
