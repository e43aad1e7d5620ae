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

DEMO_RUN := demo-runs/resnet20
EXAMPLES := src/resnet_cifar/data/assets/examples

# The main job on the bundled CIFAR-10 sample, on the CPU: train, evaluate, classify the example images.
# The demo folder is the Makefile's own scratch space, so it is replaced on every run.
demo: $(VENV)/.installed
	rm -rf $(DEMO_RUN)
	$(VENV)/bin/resnet-cifar train --model resnet20 --dataset cifar10-sample --epochs 30 --batch-size 64 \
		--lr 0.1 --device cpu --out $(DEMO_RUN)
	$(VENV)/bin/resnet-cifar eval $(DEMO_RUN)
	$(VENV)/bin/resnet-cifar predict $(DEMO_RUN) $(EXAMPLES) --top-k 3
	@echo "Figures: $(DEMO_RUN)/curves.png predictions.png mistakes.png confusion.png"

test: $(VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-runs .pytest_cache
