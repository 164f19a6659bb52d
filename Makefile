# `make demo` and `make test` work on a fresh machine: each creates .venv, installs everything
# (Debian's Fashion-MNIST package included, for the demo and tests) and then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data demo test test-fast lint clean

setup: $(STAMP)

# torch is installed first and alone, pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

data: $(FASHION_MNIST)

$(FASHION_MNIST):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist

demo: setup data
	$(VENV)/bin/archsearch run examples/fashion_mnist_cnn.yaml --output runs/demo-$$(date +%Y%m%d-%H%M%S)

test: setup data
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache
