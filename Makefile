# `make run`: set everything up and start the app. `make test`: set everything up and run every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup run test lint bench lmdeploy-env

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed
	bash scripts/ensure-chromium

# The TurboMind engine's environment (lmdeploy 0.7.3, torch 2.6 for CUDA 12), for --engine turbomind or auto.
lmdeploy-env: $(VENV)/.installed
	PYTHON=$(PY) bash scripts/setup-lmdeploy $(ARGS)

run: $(VENV)/.installed
	$(PY) app.py $(ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
