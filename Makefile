# Each target installs what it needs into .venv, so a fresh machine needs only Python.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test test-all bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python -m experiments.route_choice --out results/route_choice
	$(BIN)/python -m experiments.benchmark --out results/benchmark

test: install
	$(BIN)/python -m pytest -q

test-all: install
	$(BIN)/python -m pytest -q -m ""

clean:
	rm -rf $(VENV) results
