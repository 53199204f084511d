# Every target installs what it needs into .venv first, so a fresh clone needs only
# `make run` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test lint typecheck check crash-test clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/morelia-trio serve

test: $(INSTALLED)
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED)
	$(BIN)/mypy

check: lint typecheck test

# The long crash test (a short form runs in `make test`): 60 SIGKILLs, then 60 with
# simulated power loss (every byte no fsync covered is dropped).
crash-test: $(INSTALLED)
	$(BIN)/python -m tests.crash --kills 60
	$(BIN)/python -m tests.crash --kills 60 --power-loss --torn-tails

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
