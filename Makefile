# Everyday tasks. Every target creates the virtualenv first (idempotent), so each is one
# command on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast flake-check lint typecheck schemas bench compare clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## run the main job on the embedded default: no services needed
	$(BIN)/mlineage demo

# The SageMaker Python SDK v2 for tests/serve/test_sdk.py, in a venv of its own: it pins
# numpy<2 (pyarrow 26 needs 2) and rich<15. The tests run a client script with it.
SDK_VENV := .venv-sdk
SDK_STAMP := $(SDK_VENV)/.installed
$(SDK_STAMP): tests/serve/sdk-requirements.txt
	test -x $(SDK_VENV)/bin/python || $(PY) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SDK_VENV)/bin/python -m pip install --quiet -r tests/serve/sdk-requirements.txt
	touch $@

test: $(STAMP) $(SDK_STAMP)  ## the whole test suite, plus lint, types and schema drift, and coverage
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	rm -f .coverage .coverage.*
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage run -m pytest
	$(BIN)/coverage combine -q
	@echo "coverage of src/mlineage (every process the suite started): $$($(BIN)/coverage report --format=total)%"

test-fast: $(STAMP)  ## the quick loop (under a minute): unit, the contract suite on SQLite, golden files
	$(BIN)/python -m pytest -q -m "not slow and not kafka and not containers" tests/unit tests/contract \
		tests/integration/test_query_golden.py

flake-check:  ## the whole CI run 5 times on a fresh clone, one core kept busy (RUNS=5)
	scripts/flake-check.sh $(or $(RUNS),5)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)  ## regenerate schemas/ from the event models
	$(BIN)/mlineage schemas export --out schemas

bench: $(STAMP)  ## embedded pipeline benchmark at 10,000 jobs, and OpenLineage in at 10,000 runs
	$(BIN)/python bench/embedded_pipeline.py --jobs 10000
	$(BIN)/python bench/openlineage_pipeline.py --runs 10000 --seed 1

MLMD_VENV := .venv-mlmd
$(MLMD_VENV)/.installed: pyproject.toml
	test -x $(MLMD_VENV)/bin/python || $(PY) -m venv $(MLMD_VENV)
	$(MLMD_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLMD_VENV)/bin/python -m pip install --quiet -e '.[mlmd]'
	touch $@

compare: $(MLMD_VENV)/.installed  ## mlineage side by side with Google ML Metadata (own venv: MLMD needs protobuf<5)
	$(MLMD_VENV)/bin/python bench/compare_mlmd.py --jobs $(or $(JOBS),10000)

clean:
	rm -rf $(VENV) $(MLMD_VENV) $(SDK_VENV) .mlineage .pytest_cache .mypy_cache .ruff_cache
