# `make run` and `make test` each set up everything they need on a fresh machine.
# `make bench BENCH_ARGS="--only hit revalidation --baseline ../main-before"`: see bench/README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/thumbserver serve --config config.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

# The layer contracts of pyproject.toml [tool.importlinter]: fails on an import against the direction.
lint: $(STAMP)
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache *.egg-info

# Hardening runs with their full budgets (TS_TEST_BUDGET=full); `make test` runs the same tests
# with small ones. All traffic goes to 127.0.0.1 and every loop is bounded in requests and time.
.PHONY: soak fuzz lint-http

# 100,000-request soak, 20,000 hostile paths, a minute of slow clients, 20 overload bursts,
# 2,000 schemathesis examples per operation: about 10 minutes on 2 cores.
soak: $(STAMP)
	TS_TEST_BUDGET=full $(BIN)/python -m pytest tests/hardening -s -q --ignore=tests/hardening/test_hardening_fuzz.py

# Each atheris harness of tests/fuzz for 10 minutes (TS_FUZZ_SECONDS=N to change).
fuzz: $(STAMP)
	TS_TEST_BUDGET=full $(BIN)/python -m pytest tests/hardening/test_hardening_fuzz.py -s -q

# REDbot's caching lint of an original, a thumbnail and a negotiated thumbnail on a live server.
lint-http: $(STAMP)
	$(BIN)/python -m pytest tests/hardening/test_hardening_redbot.py -s -q
