# The two commands of the README: `make demo` (the flagship stack against the simulator)
# and `make test` (every test). Both set up everything they need on a fresh clone:
# the virtualenv, the package with its dev extra, and the Pulumi engine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The Pulumi Python SDK range hostup-pulumi supports (pyproject.toml: pulumi>=3.260,<4) is
# tested at both ends: .venv holds the lowest, .venv-newest the newest served when this was
# last raised. The engine's CLI stays pinned (tools/install-pulumi).
PULUMI_SDK_LOWEST := 3.260.0
PULUMI_SDK_NEWEST := 3.272.0
NEWEST := .venv-newest
NEWEST_STAMP := $(NEWEST)/.installed-$(PULUMI_SDK_NEWEST)
# The engine e2e that run on the newest SDK too: the Python dynamic and native programs.
NEWEST_E2E := tests/e2e/test_native.py tests/e2e/test_run_command.py \
	tests/e2e/test_first_hour.py tests/e2e/test_flagship.py

.PHONY: all install engine sdk lint test test-newest unit e2e demo bench clean

all: test

# Reinstall when a dependency list changes. The generated Python SDK (sdk/python, package
# pulumi_hostup) installs beside hostup_pulumi, which depends on it.
$(STAMP): pyproject.toml sdk/python/pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e ./sdk/python -e '.[dev]' 'pulumi==$(PULUMI_SDK_LOWEST)'
	@ln -sfn ../../$(VENV) examples/flagship/.venv
	@touch $@

install: $(STAMP)

# Builds pulumi + the Python and YAML language hosts once (cached under .tools/), or uses
# pulumi on PATH; then installs the hostup resource provider plugin (a launcher for the venv's
# python) into $PULUMI_HOME, by default .state/pulumi-home (what tools/pulumi-env.sh sets).
engine: install
	@tools/install-pulumi >/dev/null
	@tools/install-plugin

# The SDKs of every language, generated from schema.json by Pulumi's own codegen (the pinned
# generator in tools/sdkgen, built once into .tools/), then the TypeScript SDK built and packed
# (sdk/nodejs/bin, sdk/nodejs/dist/*.tgz). The generated files are committed: after a schema
# change run this and commit sdk/ with it; a test fails when they disagree.
sdk:
	@tools/gen-sdk
	@tools/build-sdk-nodejs >/dev/null

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: install sdk
	$(PY) -m pytest --ignore=tests/e2e $(PYTEST_ARGS)

e2e: install engine sdk
	HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" $(PY) -m pytest tests/e2e $(PYTEST_ARGS)

# Every test: lint and types, unit and simulator tests, then the real engine end to end.
# `coverage run` (not pytest-cov): the package's pytest plugin is imported before pytest-cov
# would start measuring.
test: install engine sdk lint
	HOSTUP_PULUMI_SDK=$(PULUMI_SDK_LOWEST) HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" \
		$(PY) -m coverage run -m pytest $(PYTEST_ARGS)
	$(PY) -m coverage report --skip-covered --fail-under=90
	@$(MAKE) --no-print-directory test-newest

$(NEWEST_STAMP): pyproject.toml sdk/python/pyproject.toml Makefile
	@rm -rf $(NEWEST)
	@$(PYTHON) -m venv $(NEWEST)
	@$(NEWEST)/bin/python -m pip install --quiet --upgrade pip
	@$(NEWEST)/bin/python -m pip install --quiet -e ./sdk/python -e '.[dev]' 'pulumi==$(PULUMI_SDK_NEWEST)'
	@touch $@

# The package's tests on the newest Pulumi SDK: unit and plugin tests, and the engine e2e of
# the Python dynamic and native programs (their programs and the plugin run in .venv-newest).
test-newest: $(NEWEST_STAMP) engine sdk
	HOSTUP_PULUMI_SDK=$(PULUMI_SDK_NEWEST) HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" \
		$(NEWEST)/bin/python -m pytest $(wildcard tests/test_*.py) $(NEWEST_E2E) $(PYTEST_ARGS)

demo: install engine
	SHOW_SECRETS=$(SHOW_SECRETS) HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" $(PY) tools/demo.py

# Every benchmark (fleet, rate-limited fleet, poll, load, and whole deploys on the real
# engine), then one table of figure / target / met; exits non-zero naming any missed target.
# About 40 minutes, most of it bench/engine.py (see docs/performance.md). Each benchmark also
# runs alone: $(PY) bench/<name>.py; BENCH_ARGS go to bench/summary.py (e.g.
# BENCH_ARGS='--only fleet,poll' or BENCH_ARGS=--engine-args=--quick).
bench: install engine sdk
	HOSTUP_PULUMI_BIN="$$(tools/install-pulumi | tail -n 1)" $(PY) bench/summary.py $(BENCH_ARGS)

clean:
	rm -rf .state build *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage $(NEWEST)
