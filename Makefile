# The two commands a new user needs: `make run` and `make test` (only Python 3.11+ required).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: run test ui serve install clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: $(STAMP)  ## ingest, link, check and publish the committed sample
	@mkdir -p $(DAGSTER_HOME)
	@$(BIN)/citizen-view init >/dev/null
	$(BIN)/citizen-view run

# The suite's files on this many processes (pytest-xdist; a file's tests stay together, so its module fixtures are
# built once); 0 runs everything in one process.
TEST_WORKERS ?= 2

test: $(STAMP)  ## house rules (ruff), then the whole test suite (it keeps its own DAGSTER_HOME, never .dagster/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	env -u DAGSTER_HOME $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

ui: $(STAMP)  ## the Dagster UI on http://127.0.0.1:3000
	@mkdir -p $(DAGSTER_HOME)
	$(BIN)/dagster dev -w workspace.yaml

serve: $(STAMP)  ## the caseworker service on http://127.0.0.1:8000 (after make run)
	@$(BIN)/citizen-view init >/dev/null
	$(BIN)/citizen-view serve

clean:
	rm -rf warehouse .dagster bench_data
