# Every target installs what it needs into .venv first, so a fresh clone needs only
# `make run` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.installed-bench

.PHONY: install run test lint typecheck check crash-test fuzz autobahn bench bench-quick clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

$(BENCH_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench,autobahn]'
	touch $(BENCH_INSTALLED)

install: $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/morelia-trio serve

test: $(INSTALLED)
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BENCH_INSTALLED)  # bench/ and autobahn/ are checked against their tools' own types
	$(BIN)/mypy

check: lint typecheck test

# The long crash test (a short form runs in `make test`): 60 SIGKILLs, then 60 with
# simulated power loss (every byte no fsync covered is dropped).
crash-test: $(INSTALLED)
	$(BIN)/python -m tests.crash --kills 60
	$(BIN)/python -m tests.crash --kills 60 --power-loss --torn-tails

# A long fuzzing run (make test runs 150,000 inputs): a million random and mutated frames.
fuzz: $(INSTALLED)
	MORELIA_FUZZ_INPUTS=1000000 MORELIA_FUZZ_EXAMPLES=1500 $(BIN)/pytest -q tests/test_fuzz.py

# WebSocket conformance: Autobahn fuzzing-client cases 1-10 (kosoku) against the server's
# /echo endpoint (serve --autobahn-echo: the same stack, limits and loop as /ws).
autobahn: $(BENCH_INSTALLED)
	$(BIN)/python autobahn/run.py

# The benchmark suite: the real server and its ceiling (bench/ceiling.py) as separate
# processes, driven by a picows load generator. Under 10 minutes (bench-quick: under 2);
# a full run writes bench/results.json, bench/RESULTS.md and bench/results.png.
bench: $(BENCH_INSTALLED)
	$(BIN)/python -m bench

bench-quick: $(BENCH_INSTALLED)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
