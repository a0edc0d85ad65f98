# The two commands a newcomer needs:
#   make run    -- the whole pipeline on the embedded local stack, then a summary
#   make test   -- lint, type-check and the whole test suite against real local services
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the domain core compiled with mypyc (docs/native.md); rebuilt when a source changes
NATIVE := processors/_native_sources.json

.PHONY: run test lint typecheck unit integration install native bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# ... and the stream workers' Avro readers, generated from schemas/ (a schema or generator change)
$(NATIVE): $(STAMP) setup.py $(wildcard processors/*.py) $(wildcard schemas/*.py) \
		$(shell find schemas/avro -name '*.avsc')
	PERSONAFLOW_NATIVE_BUILD=1 $(BIN)/python setup.py -q build_ext --inplace -j 2
	$(BIN)/python -c "import processors, sys; print('processors:', processors.NATIVE); \
		sys.exit(processors.NATIVE != 'compiled')"
	$(BIN)/python -c "from schemas.codec import native_readers_status as r, \
		native_writers_status as w; print('avro readers:', r()); print('avro writers:', w())"

native: $(NATIVE)

run: $(STAMP) $(NATIVE)
	$(BIN)/personaflow run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy schemas processors streams sinks personaflow bench

test: $(STAMP) $(NATIVE) lint
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(STAMP) $(NATIVE)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) $(NATIVE)
	$(BIN)/pytest -q tests/integration tests/e2e

clean:
	rm -rf $(VENV) .personaflow build *.egg-info $(NATIVE) processors/*.so schemas/_readers \
		schemas/_writers schemas/*.so
