# Two commands set everything up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck pytest bench clean compiled clean-compiled test-compiled

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

# The optional compiled build (tools/compiled.py, docs/performance.md): C extensions beside the
# sources, which the editable install then imports. Needs a C compiler and the Python headers.
compiled: $(STAMP)
	$(BIN)/python tools/compiled.py build
	$(BIN)/python tools/compiled.py check

# The output tests against the compiled build, then back to pure Python (CI runs it after
# `make test`; tests/conftest.py checks that the listed modules ran as their extensions). Left out:
# a test that patches CaseLog._RECENT, which the compiled CaseLog reads natively.
COMPILED_TESTS := tests/test_fixtures.py tests/ingest tests/classify tests/emit tests/cases \
	tests/replay tests/test_fuzz_findings.py tests/test_cli_output.py tests/service/test_workers.py \
	--deselect tests/cases/test_case_log.py::test_the_memory_part_stays_bounded

test-compiled: $(STAMP) $(PEERS) compiled
	HER2_COMPILED=1 $(BIN)/pytest $(COMPILED_TESTS); status=$$?; \
	$(BIN)/python tools/compiled.py clean; exit $$status

clean-compiled:
	$(PY) tools/compiled.py clean

clean: clean-compiled
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
