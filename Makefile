# zemeow: `make run` starts the whole stack, `make test` sets up and runs the suite.
# Both create what they need (.venv for the app, .venv-localstack for LocalStack).

PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-localstack
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check --no-input

.PHONY: run test venvs check-python clean-state bench

run: venvs
	@$(PY) -m devstack run

test: venvs
	@$(PY) -m devstack test $(ARGS)

venvs: check-python $(VENV)/.installed $(LS_VENV)/.installed

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "zemeow needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1)); set PYTHON=python3.X"; exit 1; }

$(VENV)/.installed: requirements.txt requirements-dev.txt runner_container/requirements.txt
	@echo "==> installing the app environment ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c 'import chalice, psycopg, pgserver, neonize' 2>/dev/null || \
	  { echo "installing requirements-dev.txt failed"; exit 1; }
	@touch $@

$(LS_VENV)/.installed: devstack/localstack-requirements.txt
	@echo "==> installing LocalStack ($(LS_VENV))"
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	@$(LS_VENV)/bin/python -m pip install $(PIP_FLAGS) -r devstack/localstack-requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	@$(LS_VENV)/bin/python -c 'import localstack.runtime.main' 2>/dev/null || \
	  { echo "installing LocalStack failed"; exit 1; }
	@touch $@

# Forget local state (embedded database, LocalStack volume, generated keys).
clean-state:
	rm -rf .zemeow
