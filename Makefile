# Two set-up commands: `make demo` and `make test`. Each builds .venv from nothing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
EXTRAS := dev,maps,dask,bench,carla,llm

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $@

# The main job on the embedded default: synthetic risky scenes, rules labeler, ./cfpair-out.
demo: $(VENV)/.installed
	$(BIN)/cfpair generate
	@echo "output: $(CURDIR)/cfpair-out (data/*.parquet, manifest.json, README.md, rejects.jsonl)"

test: $(VENV)/.installed
	$(BIN)/ruff check cfpair tests benchmarks
	CFPAIR_REQUIRE_LLM=1 $(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check cfpair tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/geometry.py
	$(BIN)/python benchmarks/loading.py
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/labeling.py

clean:
	rm -rf $(VENV) .pytest_cache
