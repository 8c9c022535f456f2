# Two commands for a fresh machine (see README):
#   make demo   set up .venv, train a VAE on the bundled digits data, write runs/demo
#   make test   set up .venv and run the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/aekit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/aekit

.PHONY: setup demo test
setup: $(BIN)/aekit

demo: setup
	rm -rf runs/demo
	$(BIN)/aekit train --model vae --data digits --epochs 60 --latent-dim 2 --hidden-dims 256 128 --out runs/demo
	$(BIN)/aekit evaluate runs/demo --data digits --k 1000

test: setup
	$(BIN)/python -m pytest -x tests
