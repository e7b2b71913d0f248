# Two set-up commands: `make demo` and `make test`. Each builds .venv from nothing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
EXTRAS := dev,maps,dask,bench,carla

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $@

# Until `cfpair generate` lands (issue: pairing), the demo times the geometry engine that
# everything else stands on and writes its report under ./cfpair-out.
demo: $(VENV)/.installed
	@mkdir -p cfpair-out
	$(BIN)/cfpair bench-geometry | tee cfpair-out/geometry-benchmark.txt
	@echo "output: $(CURDIR)/cfpair-out/geometry-benchmark.txt"

test: $(VENV)/.installed
	$(BIN)/ruff check cfpair tests benchmarks
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check cfpair tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/geometry.py

clean:
	rm -rf $(VENV) .pytest_cache
