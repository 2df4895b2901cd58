# One-word workflows. `make demo` and `make test` install what they need first (as root).
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: deps demo test test-python bench bench-quick micro build clean

deps:
	@PYTHON=$(PYTHON) bash scripts/install-deps.sh

demo: deps
	$(PYTHON) scripts/demo.py

test: deps
	$(PYTHON) -m pytest -q -n auto $(PYTEST_ARGS)

# the whole suite again with the pure-Python backend forced
test-python: deps
	FASTSYNC_BACKEND=python $(PYTHON) -m pytest -q -n auto $(PYTEST_ARGS)

bench: deps
	$(PYTHON) -m bench

bench-quick: deps
	$(PYTHON) -m bench --quick

micro: deps
	$(PYTHON) -m bench.micro

build:
	FASTSYNC_REQUIRE_NATIVE=1 $(PYTHON) setup.py build_ext --inplace

clean:
	rm -rf build dist *.egg-info ext/*.c fastsync/core/_native*.so fastsync/.built .pytest_cache bench/out
