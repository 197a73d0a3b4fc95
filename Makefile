# The two commands of the README:
#   make demo   set everything up, then run the main job (local stack + sample cameras, live view)
#   make test   set everything up, then run the whole test suite (unit, integration, lint)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test setup system-deps lint bench-ingest clean helm-tools test-helm

demo: setup
	$(BIN)/vsa demo

test: setup
	bash scripts/system-deps.sh test
	$(BIN)/vsa assets >/dev/null
	$(BIN)/vsa models fetch yolov8-fall >/dev/null
	bash scripts/install-helm-tools.sh >/dev/null
	$(BIN)/python -m pytest

setup: $(VENV)/.installed
	bash scripts/system-deps.sh runtime
	$(BIN)/vsa assets >/dev/null
	$(BIN)/vsa devstack fetch

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --editable ".[dev]"
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench-ingest: setup
	$(BIN)/python benchmarks/ingest.py

clean:
	-$(BIN)/vsa devstack down
	rm -rf $(VENV)

helm-tools:
	bash scripts/install-helm-tools.sh

test-helm: $(VENV)/.installed
	bash scripts/install-helm-tools.sh >/dev/null
	$(BIN)/python -m pytest tests/helm -q
