# The two commands a new user needs: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
# Install torch first, pinned: a bare `torch` would pull a multi-GB CUDA build. Override for GPUs,
# e.g. `make install TORCH='torch==2.13.0 --index-url ...'`.
TORCH  ?= torch==2.13.0
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.gankit-installed
DEMO_MINUTES ?= 3
# Test processes (pytest-xdist). Each test runs torch on one thread (tests/conftest.py), so one
# worker per core; worksteal keeps both busy while the long CLI tests run.
TEST_WORKERS ?= auto

.PHONY: install demo test test-slow bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# DCGAN on the built-in MNIST digits: sample grid, progress GIF and loss plot in runs/.
demo: $(STAMP)
	$(BIN)/gankit train dcgan --data mnist --minutes $(DEMO_MINUTES) --set sample_every=100

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
