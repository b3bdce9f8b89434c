# likeness: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck install install-dev clean

install: $(STAMP)
install-dev: $(DEV_STAMP)

# `pip check` must report nothing beyond the conflicts pip-check.allowed lists.
define pip_check
	$(BIN)/python -m pip check > $(VENV)/pip-check.txt || true
	@if grep -vxF -f pip-check.allowed $(VENV)/pip-check.txt | grep -vx 'No broken requirements found.'; then \
	    echo "pip check: the conflicts above are not in pip-check.allowed" >&2; exit 1; fi
endef

# Pinned lock file, installed without dependency resolution (see the comments in it).
$(STAMP): requirements.lock pyproject.toml pip-check.allowed
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(pip_check)
	touch $(STAMP)

# Test, lint and type-check tools (the `test` and `dev` extras), pinned in requirements-dev.lock.
$(DEV_STAMP): $(STAMP) requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-dev.lock
	$(pip_check)
	touch $(DEV_STAMP)

demo: $(STAMP)
	rm -rf demo-home demo-home-anchors demo-home-holder-machine
	$(BIN)/likeness --home demo-home demo

# Two test processes (CI has 2 cores); each test file stays in one, with its module fixtures.
# TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The format check comes last: lint findings first, then layout.
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo-home demo-home-anchors demo-home-holder-machine .pytest_cache .mypy_cache .ruff_cache
