# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs torch and torchvision first (pinned: an unpinned torch
# pulls the newest CUDA build; torch 2.14.1 + torchvision 0.29.1 is the pair that installs and
# imports together here - timm, for image backbones, needs torchvision), then ronghe, then runs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ronghe-installed

.PHONY: demo test install clean

$(BIN)/python:
	$(shell command -v $(PYTHON) || echo python3) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ronghe demo --out ronghe-demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) ronghe-demo .pytest_cache
