"""The package's version (pyproject.toml reads it from here), recorded in every run's results.json."""

VERSION = "0.3.0"
