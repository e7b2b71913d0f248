# Two set-up commands. `make demo`: the base dependencies only, then the main job.
# `make test`: everything the tests need (llama.cpp built for any x86-64 CPU), ruff, the suite.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
EXTRAS := dev,maps,dask,bench,carla,llm,train
LLAMA := llama-cpp-python[server]==0.3.36
# A portable llama.cpp CPU backend: AVX2/FMA/F16C, no AVX-512, no AMX, no -march=native. A
# native build picks the build machine's instructions and dies (general protection fault in
# libggml-cpu.so) on a CPU without them, or with them but without the OS support it assumes.
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

.PHONY: demo test lint bench check-llama clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# the main job's dependencies: the [project] dependencies, nothing optional
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

# llama.cpp from source with the portable flags, built once per (version, flags) into a wheel
# kept under ~/.cache/cfpair (its folder name is a hash of both, so a wheel built with other
# flags is never reused); --no-cache-dir so pip cannot hand back a native build of its own
LLAMA_KEY := $(shell printf '%s' '$(LLAMA) $(LLAMA_CMAKE)' | sha256sum | cut -c1-16)
LLAMA_WHEELS := $(HOME)/.cache/cfpair/llama-$(LLAMA_KEY)
$(VENV)/.llama-installed: | $(BIN)/python
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
		echo "building llama.cpp once (portable, 10-30 min on 2 cores) into $(LLAMA_WHEELS)"; \
		rm -rf $(LLAMA_WHEELS).tmp && mkdir -p $(LLAMA_WHEELS).tmp && \
		CMAKE_ARGS="$(LLAMA_CMAKE)" $(PIP) wheel -q --no-cache-dir --no-deps \
			--no-binary llama-cpp-python -w $(LLAMA_WHEELS).tmp "$(LLAMA)" && \
		rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); fi
	$(PIP) install -q "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl | head -1)[server]"
	$(MAKE) --no-print-directory check-llama
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.llama-installed | $(BIN)/python
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $@

# The main job on the embedded default: synthetic risky scenes, rules labeler, ./cfpair-out.
demo: $(VENV)/.demo-installed
	$(BIN)/cfpair generate
	@echo "output: $(CURDIR)/cfpair-out (data/*.parquet, manifest.json, README.md, rejects.jsonl)"
	@echo "next: $(BIN)/cfpair show cfpair-out PAIR_ID, $(BIN)/cfpair stats cfpair-out"

test: $(VENV)/.test-installed
	$(BIN)/ruff check cfpair tests benchmarks
	CFPAIR_REQUIRE_LLM=1 $(BIN)/python -m pytest -q

lint: $(VENV)/.test-installed
	$(BIN)/ruff check cfpair tests benchmarks

# fails if the installed llama.cpp CPU backend holds AVX-512 (zmm registers) or AMX instructions
check-llama:
	@command -v objdump >/dev/null || { echo "check-llama needs objdump (binutils)"; exit 1; }
	@lib=$$($(BIN)/python -c "import llama_cpp, pathlib; \
		print(next(pathlib.Path(llama_cpp.__file__).parent.glob('lib/libggml-cpu.so*')))"); \
	n=$$(objdump -d --no-show-raw-insn "$$lib" | grep -cE 'zmm|tileloadd|tdpb|ldtilecfg' || true); \
	if [ "$$n" != "0" ]; then echo "$$lib: $$n AVX-512/AMX instructions (not portable)"; exit 1; fi; \
	echo "$$lib: no AVX-512 or AMX instructions"

bench: $(VENV)/.test-installed
	$(BIN)/python benchmarks/geometry.py
	$(BIN)/python benchmarks/loading.py
	$(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/labeling.py

clean:
	rm -rf $(VENV) .pytest_cache
