# Two commands on a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Torch is pinned here only, to the CPU build that lies on this machine's disk, so the venv stays small;
# the package itself accepts any torch >= 2.3 (make test-compat tests that floor).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
# airbench, the speed record line we measure against (benchmarks/airbench_peer.py and its test): benchmark-only,
# never a dependency of the package; its CPU port patches this version's source.
AIRBENCH_PIN ?= airbench==0.1.8

.PHONY: demo test test-avx2 test-all test-compat docs bench bench-baseline browser postgres clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet $(AIRBENCH_PIN)
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

# The web page's test runs in a real browser: Debian's chromium, installed here where this machine allows it (root
# with apt-get); elsewhere that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || \
		echo "note: chromium could not be installed; the web page's browser test will be skipped"

# The sweep's shared-study test starts a real PostgreSQL server: Debian's, installed here where this machine allows
# it (root with apt-get); elsewhere that one test is skipped and says why.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1; } || \
		echo "note: PostgreSQL could not be installed; the sweep's shared-database test will be skipped"

# One test process per CPU (pytest-xdist), each test file in one process so that its shared fixtures run once.
# test-all adds the exhaustive variants marked slow (every model traced by torch.compile, ...).
TEST_PROCESSES ?= auto
test: $(VENV)/.installed browser postgres
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile

# The suite as on a CPU without native bf16 or VNNI (AVX2 only), on any x86 host: the project's CPU checks see no
# bf16/VNNI flags (float32 training, 7-bit int8 activations) and oneDNN runs its AVX2 kernels. ATen's own kernels
# stay as they are: ATEN_CPU_CAPABILITY=avx2 under torch.compile's AVX-512 code crashed a compiled run here.
AVX2_ONLY := RESNET_CIFAR_HIDE_CPU_FLAGS="avx512_bf16 amx_bf16 avx512_vnni avx_vnni amx_int8" ONEDNN_MAX_CPU_ISA=AVX2
test-avx2: $(VENV)/.installed browser postgres
	$(AVX2_ONLY) $(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile

test-all: $(VENV)/.installed browser postgres
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile -m "slow or not slow"

# The oldest torch we declare (pyproject.toml), from PyPI: a CUDA build of about 2.5 GB with its NVIDIA libraries
# (it runs on the CPU too), so its venv is kept between runs outside the checkout. A smoke subset: the README's
# commands end to end, resume, several processes (gloo), import and fine-tuning; int8 needs a newer torch.
# The oldest Python we declare too, where one runs (on PATH or in pyenv), else the default one.
TORCH_FLOOR ?= 2.3.1
FLOOR_PYTHON := $(shell for p in python3.10 $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10); do \
	$$p -c "" 2>/dev/null && { command -v $$p; break; }; done)
COMPAT_PYTHON ?= $(or $(FLOOR_PYTHON),$(PYTHON))
COMPAT_VENV ?= $(HOME)/.cache/resnet-cifar/venv-torch-$(TORCH_FLOOR)-$(notdir $(COMPAT_PYTHON))
COMPAT_TESTS := tests/test_cli_main.py tests/test_readme.py tests/training/test_training.py \
	tests/core/test_distributed.py tests/inference/test_published.py tests/inference/test_int8.py tests/test_layers.py
$(COMPAT_VENV)/.installed-$(TORCH_FLOOR):
	test -x $(COMPAT_VENV)/bin/python || $(COMPAT_PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet torch==$(TORCH_FLOOR)
	touch $@

test-compat: $(COMPAT_VENV)/.installed-$(TORCH_FLOOR)
	$(COMPAT_VENV)/bin/python -m pip install --quiet -e ".[tensorboard]" pytest pytest-xdist
	$(COMPAT_VENV)/bin/python -c "import sys, torch; print('Python', sys.version.split()[0], 'torch', torch.__version__); \
		assert torch.__version__.startswith('$(TORCH_FLOOR)'), torch.__version__"
	$(COMPAT_VENV)/bin/python -m pytest -n $(TEST_PROCESSES) --dist loadfile $(COMPAT_TESTS)

# The documentation site, offline, into docs/_build/html: warnings are errors (a broken link or reference, a
# failing tutorial: every tutorial runs at every build, on the bundled sample).
$(VENV)/.installed-docs: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.installed-docs
	rm -rf docs/_build docs/tutorials
	$(VENV)/bin/sphinx-build -W --keep-going -b html -j 1 docs docs/_build/html

# Throughput table of this device (see BENCHMARKS.md).
bench: $(VENV)/.installed
	$(VENV)/bin/resnet-cifar bench

# The seeds' way (torchvision + PIL + DataLoader, float32) against ours, side by side on the CPU. torchvision
# needs its own torch, so the baseline lives in a separate venv; DATA_DIR must hold cifar-10-batches-py/.
BASELINE_VENV := benchmarks/.venv-baseline
DATA_DIR ?= /tmp/resnet-cifar-bench/data
$(BASELINE_VENV)/.installed: pyproject.toml
	test -x $(BASELINE_VENV)/bin/python || $(PYTHON) -m venv $(BASELINE_VENV)
	$(BASELINE_VENV)/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BASELINE_VENV)/bin/python -m pip install --quiet -e ".[int8]"
	touch $@

bench-baseline: $(BASELINE_VENV)/.installed
	test -f $(DATA_DIR)/cifar-10-batches-py/test_batch || $(BASELINE_VENV)/bin/python ../shared/tools/cifar10_from_jpeg_tar.py \
		../shared/data/cifar10-jpeg.tar.xz $(DATA_DIR)
	$(BASELINE_VENV)/bin/python benchmarks/compare_cpu_baseline.py $(DATA_DIR)

clean:
	rm -rf $(VENV) $(BASELINE_VENV) demo-runs .pytest_cache docs/_build docs/tutorials
