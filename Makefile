# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Torch is pinned here only, to the CPU build that lies on this machine's disk, so the venv stays small;
# the package itself accepts any torch >= 2.2.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/resnet-cifar models
	$(VENV)/bin/resnet-cifar summary resnet18

test: $(VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-runs .pytest_cache
