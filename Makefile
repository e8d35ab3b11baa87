# cohirl — the two commands a newcomer needs:
#   make reproduce   set up .venv from the lock, then run the pipeline on PROFILE (`cohirl repro`:
#                    DVC's out-of-date stages as Ray tasks on a local instance of JOBS CPUs, or on
#                    the cluster at $RAY_ADDRESS; dvc.lock recorded as `dvc repro` records it)
#   make test        set up .venv from the lock, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PROFILE ?= quick
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
REPRO_ARGS ?=  # e.g. --allow-missing: resume a profile run made in parts on a fresh machine
LOCK_HASH := $(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.cohirl-lock-$(LOCK_HASH)-pyc
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export WANDB_MODE := disabled
export DVC_NO_ANALYTICS := 1

.PHONY: setup reproduce test test-fast lab notebooks clean-venv

setup: $(STAMP)

# Rebuilt only when the lock (or pyproject) changes: the venv is ~9.5 GB (torch CUDA wheels).
# Bytecode is compiled at install time: with PYTHONDONTWRITEBYTECODE set (as on the CI machines)
# every process would otherwise recompile ~3.5k modules (~10 s per notebook kernel or eval worker).
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip sync --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name cohirl --display-name "cohirl (.venv)" >/dev/null
	rm -f $(VENV)/.cohirl-lock-* && touch $@

reproduce: setup
	$(BIN)/cohirl profile $(PROFILE)
	@start=$$(date +%s); $(BIN)/cohirl repro --jobs $(JOBS) --profile $(PROFILE) $(REPRO_ARGS) && \
		echo "cohirl repro ($(PROFILE), $(JOBS) jobs) wall time: $$(( $$(date +%s) - start )) s"

test: setup
	$(BIN)/python -m pytest -q

notebooks:  # regenerate the paired .ipynb files from the reviewed .py sources
	$(BIN)/jupytext --sync notebooks/*.py

lab: setup
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
