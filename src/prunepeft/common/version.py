"""The package's version (also in pyproject.toml), recorded in every run's results.json."""

VERSION = "0.2.0"
