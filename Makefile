# The two commands of the README: `make demo` runs the whole pipeline on the bundled demo
# data (dvc repro), `make test` runs the tests. Both install what they need first.
PYTHON ?= python3
export MALLOC_MMAP_THRESHOLD_ = 1000000000
export MALLOC_TRIM_THRESHOLD_ = 4000000000
export MALLOC_TOP_PAD_ = 268435456

.PHONY: install demo test

install:
	bash scripts/install.sh

demo: install
	dvc repro
	@echo "report: reports/report.md"

test: install
	$(PYTHON) -m pytest -q
