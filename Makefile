# The README's two commands: `make demo` and `make test`. Both set up first.
VENV := .venv
PY := $(VENV)/bin/python
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: setup demo lint test test-unit test-integration bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/synshard demo

# Lint first (ruff check + mypy, configured in pyproject.toml): seconds, and a failure is cheap.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q tests

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-integration: setup
	$(PY) -m pytest -q tests/integration

bench: setup
	@bash bench/run.sh

clean:
	rm -rf demo-release bench/out .pytest_cache .hypothesis
