# The two commands of the README: `make demo` runs the whole pipeline on the bundled demo
# data (dvc repro), `make test` runs the tests. Both first install everything into the project's
# own virtual environment, $(VENV) (default .venv/, about 4 GB; `rm -rf .venv` removes it all).
# The system Python is never changed, so this works where it refuses `pip install` (PEP 668).
VENV ?= .venv
BOOTSTRAP_PYTHON ?= python3
PYTHON := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MALLOC_MMAP_THRESHOLD_ = 1000000000
export MALLOC_TRIM_THRESHOLD_ = 4000000000
export MALLOC_TOP_PAD_ = 268435456

.PHONY: install demo test test-all lint readme-numbers

install:
	@VENV=$(VENV) BOOTSTRAP_PYTHON=$(BOOTSTRAP_PYTHON) bash scripts/install.sh

demo: install
	dvc repro
	@echo "report: reports/report.md"

# The whole suite, slow end-to-end tests (marked `slow`) included.
test: install
	$(PYTHON) -m pytest -q

# flake8, mypy (both configured in setup.cfg), the import-graph test and the code-health figures held at zero; .pre-commit-config.yaml runs the same
lint: install
	$(PYTHON) -m flake8
	$(PYTHON) -m mypy pipeline stages
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_layers.py
	$(PYTHON) scripts/code_metrics.py --check --no-tools

# Rewrite the README's demo table, test count and timings from the outputs of a fresh run:
# `time make demo > demo.log 2>&1`, `time make test > test.log 2>&1`, then `make readme-numbers`.
DEMO_LOG ?= demo.log
TEST_LOG ?= test.log
readme-numbers: install
	$(PYTHON) scripts/readme_numbers.py collect --demo-log $(DEMO_LOG) --test-log $(TEST_LOG)
	$(PYTHON) scripts/readme_numbers.py render --write
