# Two commands do everything on a fresh machine (Python 3.10+, network to PyPI):
#   make demo   — sandbox → tap-invoiz → target-postgres → dbt, then prints customer values
#   make test   — every test, end to end through `meltano run` into a real PostgreSQL
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MELTANO := $(BIN)/meltano
export MELTANO_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: help venv install demo test docs bench card sync backfill db-start db-stop clean dagster fleet-accounts \
        fleet-check fleet-demo bench-fleet stress-fleet

help:
	@echo "make demo   run the whole pipeline on sandbox data and print customer values"
	@echo "make test   run all tests (unit, tap, dbt, end to end)"
	@echo "make test-fast   everything but the end-to-end and slow tests (while you work)"
	@echo "make test-pythons   the tap's tests on every Python version it declares (nox; not part of make test)"
	@echo "make lint   ruff format --check and ruff check (part of make test)"
	@echo "make docs   generate and serve the dbt docs site on http://127.0.0.1:8080 (DOCS_PORT=... for another port)"
	@echo "make bench  benchmarks against the sandbox (minutes); writes docs/BENCHMARKS.md"
	@echo "make card EMAIL=someone@example.org   the ticket-side customer card from PostgreSQL"
	@echo "make sync / backfill   your invoiz account (.env) into your PostgreSQL (PG*) or the embedded one"
	@echo "make db-start / db-stop   the embedded PostgreSQL (when you have none)"
	@echo "make fleet-demo   3 invoiz accounts on Dagster (state in PostgreSQL), two cycles; docs/FLEET.md"
	@echo "make fleet-accounts / fleet-check   generate accounts/fleet.meltano.yml / check the fleet"
	@echo "make bench-fleet  fleet benchmark (1,000 sandbox accounts, 2 shards, 1 and 2 workers; ≈ 30 min); writes docs/BENCHMARKS.md's Fleet section only"
	@echo "make stress-fleet  20 accounts' first cycle on an empty warehouse after 5 fresh deploys; no load may fail"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed (set PYTHON=python3.x)")'
	$(PYTHON) -m venv $(VENV)

# The stamp files make repeated calls cheap; they are rebuilt when their inputs change.
$(VENV)/.installed: $(BIN)/python requirements-dev.txt tap-invoiz/pyproject.toml invoiz-sandbox/pyproject.toml ops/pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# .meltano is private: while a plugin runs, Meltano keeps its config (secrets included) in .meltano/run/<plugin>/,
# created with the process umask (world-readable under the usual 022).
.meltano/.installed: $(VENV)/.installed meltano.yml
	$(MELTANO) install
	chmod 700 .meltano
	touch $@

venv: $(VENV)/.installed
install: .meltano/.installed

demo: install
	$(BIN)/python -m invoiz_ops.demo

# Tests run in TEST_WORKERS processes (pytest-xdist), one per core of the machines we have; tests sharing an expensive
# fixture stay on one worker (tests/conftest.py; CONTRIBUTING.md, "How the tests run in parallel"). TEST_WORKERS=0
# runs them serially.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(TEST_WORKERS) --dist loadgroup
# The fast tests spend seconds in the tap's retry waits (429s, refused connections, timeouts), which leave a core idle:
# one worker more than the cores fills them (measured side by side: 52-54 s against 60-61 s with 2).
TEST_FAST_WORKERS ?= 3

test: lint install dagster
	$(BIN)/python -m pytest tests $(PYTEST_PARALLEL)

# ruff's formatter and linter over the whole repository (settings: pyproject.toml); `ruff format .` fixes the layout.
.PHONY: lint
lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Everything but the end-to-end tests (marker e2e: real `meltano run`s) and the slow ones (marker slow: the 100k-invoice
# run, the long randomised differential), while you work; `make test` before you push.
.PHONY: test-fast
test-fast: install
	$(BIN)/python -m pytest tests -m "not e2e and not slow" -n $(TEST_FAST_WORKERS) --dist loadgroup

# The tap's in-process tests (tests/tap, tests/sandbox) on every Python version the tap declares (noxfile.py), with the
# interpreters of pyenv when there is one; not part of `make test`.
.PHONY: test-pythons
PYENV_BINS := $(wildcard $(shell pyenv root 2>/dev/null || echo $(HOME)/.pyenv)/versions/3.*/bin)
empty :=
space := $(empty) $(empty)
test-pythons: venv
	PATH="$(subst $(space),:,$(strip $(PYENV_BINS))):$$PATH" $(BIN)/nox -f noxfile.py

DOCS_PORT ?= 8080
docs: install
	@$(BIN)/python -m invoiz_ops.demo --docs --port $(DOCS_PORT)

# Not part of `make test`: takes minutes and measures this machine.
bench: install
	$(BIN)/python -m bench.suite

# Reads the marts `make demo` (or `meltano run sync`) built; needs no Meltano plugins.
card: venv
	@$(BIN)/python -m invoiz_ops.card "$(EMAIL)"

# Your own runs (invoiz settings from .env): meltano run sync / meltano run --full-refresh backfill, into PG* or the
# embedded PostgreSQL (database invoiz, same port every time).
sync: install
	@$(BIN)/python -m invoiz_ops.run sync

backfill: install
	@$(BIN)/python -m invoiz_ops.run backfill

db-start: venv
	@$(BIN)/python -m invoiz_ops.embedded_db start

db-stop: venv
	@$(BIN)/python -m invoiz_ops.embedded_db stop

# The Dagster code location's own virtualenv (ops/requirements-dagster.txt); Meltano stays in .venv. The plugin
# virtualenvs get bytecode compiled once (uv writes none and these machines never cache it): every step starts them.
ORCH := .venv-dagster
# The tap is installed there without its dependencies (singer-sdk etc.): the code location imports only its
# standard-library modules tap_invoiz.accounts (what an account is) and tap_invoiz.results (its result lines).
$(ORCH)/.installed: ops/requirements-dagster.txt ops/pyproject.toml tap-invoiz/pyproject.toml
	$(PYTHON) -m venv $(ORCH)
	$(ORCH)/bin/python -m pip install --quiet --upgrade pip
	$(ORCH)/bin/python -m pip install --quiet -r ops/requirements-dagster.txt
	$(ORCH)/bin/python -m pip install --quiet --no-deps -e ./tap-invoiz
	touch $@

.meltano/.compiled: .meltano/.installed tap-invoiz/pyproject.toml
	@# an editable install gets new entry points (tap-invoiz-fleet) only when reinstalled
	test -x .meltano/extractors/tap-invoiz/venv/bin/tap-invoiz-fleet || $(MELTANO) install --clean --plugin-type extractor tap-invoiz
	$(BIN)/python -m compileall -q -j 0 .meltano/extractors .meltano/loaders .meltano/utilities tap-invoiz > /dev/null || true
	touch $@

dagster: install $(ORCH)/.installed .meltano/.compiled

fleet-accounts: venv
	$(BIN)/python -m invoiz_ops.accounts generate

fleet-check: venv
	$(BIN)/python -m invoiz_ops.accounts check

# FLEET_DEMO_ARGS=--keep keeps its Dagster home and databases to look at in the UI (docs/FLEET.md)
FLEET_DEMO_ARGS ?=
fleet-demo: dagster
	$(BIN)/python -m invoiz_ops.fleet.demo $(FLEET_DEMO_ARGS)

# 1,000 accounts at a quarter of the sandbox's sizes (≈ 600k invoices), 2 shards (one per load slot: docs/FLEET.md,
# "Choosing N"), on one machine and on two Celery workers; PostgreSQL's and the broker's CPU counted. Rewrites only
# the "Fleet" section of docs/BENCHMARKS.md.
BENCH_FLEET_ARGS ?= --accounts 1000 --shards 2 --scale 0.25 --baseline-accounts 0 --workers 2
bench-fleet: dagster
	$(BIN)/python -m bench.fleet $(BENCH_FLEET_ARGS)

# Not part of `make test` (minutes): parallel first loads on fresh warehouses must never fail (docs/RELIABILITY.md).
stress-fleet: dagster
	$(BIN)/python -m bench.stress_fleet

# Also the embedded PostgreSQL's data: .pgdata/, or as root its folder under /tmp (README, "Embedded PostgreSQL").
clean:
	-$(BIN)/python -m invoiz_ops.embedded_db purge
	rm -rf $(VENV) $(ORCH) .meltano .pgdata .fleet transform/target transform/logs
