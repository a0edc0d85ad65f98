# The two commands a newcomer needs:
#   make run    -- the whole pipeline on the embedded local stack, then a summary
#   make test   -- lint, type-check and the whole test suite against real local services
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit integration install bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/personaflow run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy schemas processors streams sinks personaflow bench

test: $(STAMP) lint
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration tests/e2e

clean:
	rm -rf $(VENV) .personaflow build *.egg-info
