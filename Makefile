# Every target installs what it needs into .venv first, so a fresh clone needs only
# `make run` or `make test`. `make run` installs the server alone; the others add the test,
# lint and type-check tools (and `make bench`/`make autobahn` their own). Every install takes
# the versions pinned in $(LOCK), the ones the tests last passed with (`make lock` renews it).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCK := constraints.txt
PIP_INSTALL := $(BIN)/python -m pip install --quiet -c $(LOCK)
RUN_INSTALLED := $(VENV)/.installed-run
INSTALLED := $(VENV)/.installed
BENCH_INSTALLED := $(VENV)/.installed-bench
ARGS ?=

.PHONY: install run test lint typecheck check crash-test fuzz autobahn bench bench-quick lock clean

$(RUN_INSTALLED): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e .
	touch $(RUN_INSTALLED)

$(INSTALLED): $(RUN_INSTALLED)
	$(PIP_INSTALL) -e '.[dev]'
	touch $(INSTALLED)

$(BENCH_INSTALLED): $(INSTALLED)
	$(PIP_INSTALL) -e '.[dev,bench,autobahn]'
	touch $(BENCH_INSTALLED)

install: $(INSTALLED)

# Options go through ARGS: make run ARGS="--host 0.0.0.0 --port 9000"
run: $(RUN_INSTALLED)
	$(BIN)/morelia-trio serve $(ARGS)

test: $(INSTALLED)
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BENCH_INSTALLED)  # bench/ and autobahn/ are checked against their tools' own types
	$(BIN)/mypy

check: lint typecheck test

# The long crash test (a short form runs in `make test`): 60 SIGKILLs, then 60 with
# simulated power loss (every byte no fsync covered is dropped), then 60 of nodes sharing
# one stream of a nats-server (snapshots every 0.2 s, so restarts start from them).
crash-test: $(INSTALLED)
	$(BIN)/python -m tests.crash --kills 60
	$(BIN)/python -m tests.crash --kills 60 --power-loss --torn-tails
	$(BIN)/python -m tests.crash --nodes 3 --kills 60 --snapshot-interval 0.2

# A long fuzzing run (make test runs 150,000 inputs): a million random and mutated frames.
fuzz: $(INSTALLED)
	MORELIA_FUZZ_INPUTS=1000000 MORELIA_FUZZ_EXAMPLES=1500 $(BIN)/pytest -q tests/test_fuzz.py

# WebSocket conformance: Autobahn fuzzing-client cases 1-10 (kosoku) against the server's
# /echo endpoint (serve --autobahn-echo: the same stack, limits and loop as /ws).
autobahn: $(BENCH_INSTALLED)
	$(BIN)/python autobahn/run.py

# The benchmark suite: the real server and its ceiling (bench/ceiling.py) as separate
# processes, driven by a picows load generator; then servers sharing a JetStream stream, on
# a nats-server the suite starts (bench/nodes.py). About 23 minutes (bench-quick: about 5);
# a full run writes bench/results.json, bench/RESULTS.md and bench/results.png.
bench: $(BENCH_INSTALLED)
	$(BIN)/python -m bench

bench-quick: $(BENCH_INSTALLED)
	$(BIN)/python -m bench --quick

# Renews $(LOCK): the newest releases that pyproject.toml's ranges allow, every extra and
# every package they pull in, resolved in a throwaway venv. Run `make check` next: the
# targets above reinstall from the new lock, and that run is what the lock vouches for.
lock:
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet -e '.[dev,bench,autobahn]'
	{ echo "# The versions the tests passed with: every install of the Makefile, CI and the"; \
	  echo "# Dockerfile applies them (pip install -c). Made by \`make lock\` on Python $$($(VENV)-lock/bin/python -c 'import platform; print(platform.python_version())')."; \
	  $(VENV)-lock/bin/python -m pip freeze --exclude-editable; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf $(VENV)-lock

clean:
	rm -rf $(VENV) $(VENV)-lock .pytest_cache .mypy_cache .ruff_cache *.egg-info
