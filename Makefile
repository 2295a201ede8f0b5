# Prewarm developer commands. `make run` starts the app, `make test` runs the tests;
# both bootstrap .venv and start embedded Postgres/Valkey unless DATABASE_URL/REDIS_URL
# are set. See README.md.
SHELL := /bin/bash
# The fastest Python 3.11 here (an optimized build when one is present; tools/fastest_python.py).
PYTHON ?= $(shell python3 tools/fastest_python.py 2>/dev/null || command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall only when pyproject.toml changes.
STAMP := $(VENV)/.installed
DEVSTACK := $(PY) -m tools.devstack
PYTEST_ARGS ?=
SEED_PROFILES ?= 1000
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export SEED_PROFILES

.DEFAULT_GOAL := help
ARGS ?=
.PHONY: help bootstrap run test soak services manage psql clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

bootstrap: $(STAMP)  ## create .venv and install the project with its dev extras

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Prewarm needs Python 3.11 (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)  ## servers + migrate + seed + collectstatic + Procfile (PORT=8000)
	$(DEVSTACK) run

test: $(STAMP)  ## pytest against throw-away servers (PYTEST_ARGS="-k ...")
	$(DEVSTACK) exec --throwaway -- python -m pytest $(PYTEST_ARGS)

soak: $(STAMP)  ## the long runs (model-based, 20,000 sequences; a 2-minute run per fault): hours
	$(DEVSTACK) exec --throwaway -- python -m pytest -m soak -s $(PYTEST_ARGS)

services: $(STAMP)  ## only the servers (data in .devstack/); prints the env to use
	$(DEVSTACK) services

manage: $(STAMP)  ## manage.py on the dev servers, running or not (ARGS="createsuperuser")
	$(DEVSTACK) exec -- python manage.py $(ARGS)

psql: $(STAMP)  ## psql on the dev database (ARGS="-c 'select 1'")
	$(DEVSTACK) psql -- $(ARGS)

clean:  ## remove dev data (.devstack/) and collected static files
	rm -rf .devstack .static .pytest_cache

distclean: clean  ## also remove .venv
	rm -rf $(VENV)
