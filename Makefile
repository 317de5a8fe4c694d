# Two commands for a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs the CPU build of torch first (torch==2.13.0; an
# unpinned torch would pull several GB of CUDA packages), then ronghe, then runs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ronghe-installed

.PHONY: demo test install clean

$(BIN)/python:
	$(shell command -v $(PYTHON) || echo python3) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ronghe demo --out ronghe-demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) ronghe-demo .pytest_cache
