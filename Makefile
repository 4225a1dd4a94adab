# zemeow: `make run` starts the whole stack, `make test` sets up and runs the suite.
# Both create what they need (.venv for the app, .venv-localstack for LocalStack).

PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-localstack
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check --no-input

.PHONY: run test unit lint venvs browser tools check-python clean-state bench

run: venvs
	@$(PY) -m devstack run

# lint and the fast layer first (no PostgreSQL, no LocalStack: seconds), so a broken core fails fast
test: venvs browser tools lint unit
	@$(PY) -m devstack test $(ARGS)

unit: venvs
	@$(PY) -m pytest tests/unit -q -p no:cacheprovider

# The console's browser tests drive Debian's Chromium through Playwright (Playwright's own
# browser download cannot work here). CI runs as root on a clean machine: install it once.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "==> installing Chromium (Debian package) for the console's browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || \
	  { echo "Chromium is missing and could not be installed (apt-get install chromium): the console tests need it"; exit 1; }

# System tools the suite runs for real (nothing skips for want of them): ffmpeg converts
# voice notes. Installed with apt-get when missing (CI runs as root on a clean machine).
tools:
	@command -v ffmpeg >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "==> installing ffmpeg (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null || exit 1; \
	  else echo "make test needs ffmpeg on PATH (as root: apt-get install -y ffmpeg)"; exit 1; fi; }

# ruff (ruff.toml) and mypy (mypy.ini) on app.py, chalicelib and runner_container, and the
# structure rules (devstack/structure.py: modules <= 400 lines, CC <= 12, MI A/B, SQL in repositories).
lint: venvs
	@$(VENV)/bin/ruff check --quiet
	@$(VENV)/bin/mypy --no-error-summary
	@$(PY) -m devstack.structure

venvs: check-python $(VENV)/.installed $(LS_VENV)/.installed

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "zemeow needs Python 3.11 or newer (found: $$($(PYTHON) --version 2>&1)); set PYTHON=python3.X"; exit 1; }

$(VENV)/.installed: requirements.txt requirements-dev.txt runner_container/requirements.txt
	@echo "==> installing the app environment ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt >$(VENV)/pip.log 2>&1 || \
	  { cat $(VENV)/pip.log; echo "installing requirements-dev.txt failed"; exit 1; }
	@$(PY) -c 'import chalice, psycopg, pgserver, neonize' 2>/dev/null || \
	  { echo "installing requirements-dev.txt failed"; exit 1; }
	@touch $@

$(LS_VENV)/.installed: devstack/localstack-requirements.txt
	@echo "==> installing LocalStack ($(LS_VENV))"
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	@$(LS_VENV)/bin/python -m pip install $(PIP_FLAGS) -r devstack/localstack-requirements.txt >$(LS_VENV)/pip.log 2>&1 || \
	  { cat $(LS_VENV)/pip.log; echo "installing LocalStack failed"; exit 1; }
	@$(LS_VENV)/bin/python -c 'import localstack.runtime.main' 2>/dev/null || \
	  { echo "installing LocalStack failed"; exit 1; }
	@touch $@

# Forget local state (embedded database, LocalStack volume, generated keys).
clean-state:
	rm -rf .zemeow
