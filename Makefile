# The two commands of the README: `make demo` (the flagship stack against the simulator)
# and `make test` (every test). Both set up everything they need on a fresh clone:
# the virtualenv, the package with its dev extra, and the Pulumi engine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all install engine lint test unit e2e demo bench clean

all: test

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@ln -sfn ../../$(VENV) examples/flagship/.venv
	@touch $@

install: $(STAMP)

# Builds pulumi + the Python and YAML language hosts once (cached under .tools/), or uses
# pulumi on PATH; then installs the hostup resource provider plugin (a launcher for the venv's
# python) into $PULUMI_HOME, by default .state/pulumi-home (what tools/pulumi-env.sh sets).
engine: install
	@tools/install-pulumi >/dev/null
	@tools/install-plugin

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest --ignore=tests/e2e $(PYTEST_ARGS)

e2e: install engine
	HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" $(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# Every test: lint and types, unit and simulator tests, then the real engine end to end.
# `coverage run` (not pytest-cov): the package's pytest plugin is imported before pytest-cov
# would start measuring.
test: install engine lint
	HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" $(PY) -m coverage run -m pytest $(PYTEST_ARGS)
	$(PY) -m coverage report --skip-covered --fail-under=90

demo: install engine
	SHOW_SECRETS=$(SHOW_SECRETS) HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" $(PY) tools/demo.py

# Every benchmark (fleet, rate-limited fleet, poll, load, and whole deploys on the real
# engine), then one table of figure / target / met; exits non-zero naming any missed target.
# About 20-25 minutes, most of it bench/engine.py (see docs/performance.md). Each benchmark also
# runs alone: $(PY) bench/<name>.py; BENCH_ARGS go to bench/summary.py (e.g.
# BENCH_ARGS='--only fleet,poll' or BENCH_ARGS=--engine-args=--quick).
bench: install engine
	HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" $(PY) bench/summary.py $(BENCH_ARGS)

clean:
	rm -rf .state build *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
