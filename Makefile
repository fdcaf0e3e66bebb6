# The two commands of the README: `make run` and `make test`. Each sets itself up.
SHELL := /bin/bash
# Python 3.11, 3.12 or 3.13 (`make test-fast PYTHON=python3.13`). Each has a venv and a lock
# of its own, so that switching between them rebuilds neither: 3.11 (the default, when
# found) uses .venv and requirements.lock, the others .venv-3.X and requirements-3.X.lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
SUPPORTED := 3.11 3.12 3.13
ifeq ($(filter $(PYVER),$(SUPPORTED)),)
$(error PYTHON=$(PYTHON) is Python '$(PYVER)'; linreg supports $(SUPPORTED): pass PYTHON=python3.11 (or 3.12, 3.13))
endif
VENV := $(if $(filter 3.11,$(PYVER)),.venv,.venv-$(PYVER))
LOCK := $(if $(filter 3.11,$(PYVER)),requirements.lock,requirements-$(PYVER).lock)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# scripts/server.sh and postgres.sh run from this venv.
export LINREG_VENV := $(CURDIR)/$(VENV)

# Prefect state stays inside the project.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# Prefect's 20 s default is shorter than a first start on a fresh database here.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
# The project's Prefect database, migrated once at set-up (and again after a reinstall),
# so that the first `make run` does not spend 10-20 s migrating before its flow starts.
MIGRATED := $(PREFECT_HOME)/.migrated

# `make server`: a Prefect server with its own state, the deployments and a worker.
SERVER_HOME ?= $(CURDIR)/.prefect-server
# Where `make server` records its processes and port, and where `make run` looks for it:
# one variable for both, so that a SERVER_HOME of your own is found too.
export LINREG_SERVER_RUN_DIR ?= $(SERVER_HOME)/run
# `make ui` serves here, and `make run` names this port in the address it prints.
export LINREG_UI_PORT ?= 4300
PORT ?= 4200
HOST := 127.0.0.1
# DB=postgres: a PostgreSQL cluster of its own in $(SERVER_HOME)/postgres (scripts/postgres.sh),
# on 127.0.0.1:$(PG_PORT); the default is SQLite. WORKERS: workers for linreg-cpu.
# POOL_LIMIT: flow runs at once on linreg-cpu (0: no limit). docs/server.md has the figures.
DB ?= sqlite
PG_PORT ?= 5433
WORKERS ?= 2
POOL_LIMIT ?= 2
# The browser of the e2e test: Debian's chromium, never a Playwright download.
export LINREG_CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run ui test test-fast lock clean server server-stop bench gpu-check postgres

run: $(STAMP) $(MIGRATED)
	$(BIN)/linreg run $(ARGS)

# The Prefect UI over every run `make run` made (their task runs, logs and artifacts), at
# http://127.0.0.1:$(LINREG_UI_PORT) until Ctrl-C. While it serves, `make run` reports to it.
ui: $(STAMP) $(MIGRATED)
	$(BIN)/linreg ui

# The whole suite: library, flows, faults, bench smoke test, servers (SQLite, PostgreSQL), load and browser.
# Four pytest-xdist workers, one per fixed group of tests (tests/conftest.py): the two groups of
# server stacks mostly wait, so four processes keep two cores busy. XDIST= runs it in one process.
# The log ends with the slowest tests (--durations), to see where the time goes.
XDIST ?= -n 4
test: $(STAMP) $(LINREG_CHROMIUM) postgres
	$(BIN)/python -m pytest $(XDIST) --durations=15 $(PYTEST_ARGS)

# The development loop: library and CLI-refusal tests only (under 2 minutes).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not flow and not e2e and not bench and not faults" $(PYTEST_ARGS)

# Every solver against the tutorial's loops, the closed form against scikit-learn, `linreg run`
# against the tutorial script: bench/results/latest.{json,md}, under 10 minutes. OpenBLAS tuning
# variables, if the machine sets them, are dropped for this process only (they slow current NumPy).
bench: $(STAMP)
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python -m bench $(ARGS)

# Torch solvers on CUDA vs CPU, and full-batch GB/s: bench/results/gpu.json (skips without CUDA).
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py $(ARGS)

# Reinstall whenever the pins change.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev,bench]'
	@touch $@

$(MIGRATED): $(STAMP)
	$(BIN)/prefect server database upgrade -y >/dev/null
	@touch $@

# Regenerate this Python's lock from its venv (after changing a pin): `make lock`, then
# `make lock PYTHON=python3.12` and `PYTHON=python3.13` (their torch from the registry brings
# its CUDA libraries, which 3.11's local CPU wheel does not).
lock: $(STAMP)
	{ echo '# Every package of the Python $(PYVER) environment, pinned: `make lock PYTHON=python$(PYVER)` regenerates it from $(VENV).'; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > $(LOCK)

# Everything the project keeps outside data/: the venv, Prefect's state (local runs, the
# server's database and PostgreSQL cluster, stopped first) and caches. data/ is yours.
clean:
	-@test ! -x $(BIN)/prefect || PREFECT_HOME=$(SERVER_HOME) scripts/server.sh stop
	rm -rf .venv .venv-3.1[123] .prefect .prefect-server .pytest_cache

# Start the server, pools, concurrency limit, deployments and a worker; idempotent.
server: $(STAMP) $(if $(filter postgres,$(DB)),postgres)
	PREFECT_HOME=$(SERVER_HOME) PORT=$(PORT) LINREG_HOST=$(HOST) LINREG_DB=$(DB) LINREG_PG_PORT=$(PG_PORT) \
	  LINREG_WORKERS=$(WORKERS) LINREG_POOL_LIMIT=$(POOL_LIMIT) scripts/server.sh start

# Stop exactly the processes `make server` recorded, and its PostgreSQL cluster if it has one.
server-stop:
	PREFECT_HOME=$(SERVER_HOME) scripts/server.sh stop

$(LINREG_CHROMIUM):
	@command -v apt-get >/dev/null || { echo "no $@ and no apt-get: install chromium and set LINREG_CHROMIUM to it" >&2; exit 1; }
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium

# PostgreSQL's server programs, for DB=postgres and the tests on PostgreSQL: Debian's
# postgresql package, installed with apt-get when /usr/lib/postgresql/*/bin/initdb is missing.
postgres:
	@scripts/postgres.sh install
