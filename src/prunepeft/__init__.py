"""prunepeft: find which PEFT modules to keep, and where, by iterative hybrid pruning (PrunePEFT)."""

__version__ = "0.1.0"


def load(base_model, run_dir, *, trust_remote_code: bool = False):
    """Rebuild a trained prunepeft configuration: see ``prunepeft.export.load``."""
    from prunepeft.export import load as _load

    return _load(base_model, run_dir, trust_remote_code=trust_remote_code)


__all__ = ["load", "__version__"]
