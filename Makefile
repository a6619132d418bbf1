# b24sync — the two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: run test lint typecheck unit install clean emulator bench screenshots drills

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

## run: the main job on embedded defaults (database, local portal, first sync, dashboard)
run: $(VENV)/.installed
	$(BIN)/b24sync run

## test: lint, type check and the whole suite against real PostgreSQL and b24emu
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

## drills: fault drills (kill -9, a full disk, a restarted database, portal faults, event storms);
## real processes, PostgreSQL and b24emu; each ends comparing the mirror with the portal
drills: $(STAMP)
	$(BIN)/ruff check drills
	$(BIN)/ruff format --check drills
	$(BIN)/mypy --strict drills
	$(BIN)/python -m pytest drills -v -s

## screenshots: the browser test, writing its pictures of every page to docs/screenshots/
screenshots: $(STAMP)
	B24SYNC_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/test_dashboard.py

emulator: $(VENV)/.installed
	$(BIN)/b24sync emulator --port 8800 --deals 5000 --contacts 3000 --companies 1000 --leads 2000

bench: $(STAMP)
	$(BIN)/python bench/sync_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
