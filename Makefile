# The two commands of the README: `make demo` runs the whole pipeline on the bundled demo
# data (dvc repro), `make test` runs the tests. Both install what they need first.
PYTHON ?= python3
export MALLOC_MMAP_THRESHOLD_ = 1000000000
export MALLOC_TRIM_THRESHOLD_ = 4000000000
export MALLOC_TOP_PAD_ = 268435456

.PHONY: install demo test lint

install:
	bash scripts/install.sh

demo: install
	dvc repro
	@echo "report: reports/report.md"

test: install
	$(PYTHON) -m pytest -q

# flake8, mypy (both configured in setup.cfg) and the import-graph test; .pre-commit-config.yaml runs the same
lint:
	$(PYTHON) -m flake8
	$(PYTHON) -m mypy pipeline stages
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_layers.py
