# Two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/her2-adapter serve

test: $(STAMP) check pytest

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The npm test peers (tests/peers/README.md), from the committed lock file.
PEERS := tests/peers/node_modules/.package-lock.json

$(PEERS): tests/peers/package.json tests/peers/package-lock.json tests/peers/fetch-packages.sh
	npm ci --prefix tests/peers --no-audit --no-fund --loglevel=error
	bash tests/peers/fetch-packages.sh

pytest: $(STAMP) $(PEERS)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
