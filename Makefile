# chargerfw: `make sim` runs the station on simulated hardware; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PREFIX ?= /opt/chargerfw
EXTRAS ?= pi

.PHONY: help sysdeps venv test lint sim wheel release bench chaos install clean

help:
	@echo "make sim      run the station on simulated hardware against the bundled backend"
	@echo "make test     set everything up and run the test suite"
	@echo "make lint     ruff, mypy and the layer contracts"
	@echo "make bench    print the benchmark figures"
	@echo "make chaos    1,000 sessions through link cuts and SIGKILLs, then both ends compared"
	@echo "make wheel    build a wheel into dist/"
	@echo "make release  build a signed release (wheels + manifest) into dist/, RELEASE_KEY=path"
	@echo "make install  install on a Raspberry Pi (root): release slot in $(PREFIX)/releases, config in /etc/chargerfw"

sysdeps:
	@bash scripts/sysdeps.sh

$(STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Parallel workers: most tests wait on sockets and subprocesses, so more workers than cores pay.
JOBS ?= 4

test: venv sysdeps
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n $(JOBS) --durations=25

sim: venv
	$(BIN)/chargerfw sim station --demo

bench: venv
	@for b in bench/*.py; do [ $$b = bench/chaos.py ] && continue; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The durability proof (not part of `make test`, which runs 20 sessions of it): the station and
# the backend as real processes through a proxy that cuts, swallows and delays, both SIGKILLed
# at random; exits 1 unless nothing was lost, doubled, stuck or metered backwards.
CHAOS_SESSIONS ?= 1000
CHAOS_SEED ?=

chaos: venv
	$(BIN)/python bench/chaos.py --sessions $(CHAOS_SESSIONS) $(if $(CHAOS_SEED),--seed $(CHAOS_SEED))

wheel: venv
	$(BIN)/python -m build --wheel --no-isolation --outdir dist .

# A signed release for `chargerfw firmware install`; wheels for this machine's platform (build on
# aarch64 for a Pi). Without RELEASE_KEY, or with a missing file, a test key is made and said so.
RELEASE_KEY ?= dist/release-test-key.pem
MIN_PREVIOUS_VERSION ?= 0

release: venv
	$(BIN)/python -m chargerfw.release.build --source . --out dist --key '$(RELEASE_KEY)' \
	  --min-previous-version '$(MIN_PREVIOUS_VERSION)'

# DESTDIR stages every file under a root (no live-system changes); EXTRAS= installs no pip extra.
install:
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" -eq 0 ] || { echo "make install must run as root"; exit 1; }
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' EXTRAS='$(EXTRAS)' PYTHON='$(PYTHON)' \
	  PIP_INSTALL_ARGS='$(PIP_INSTALL_ARGS)' bash scripts/install.sh

clean:
	rm -rf $(VENV) build dist *.egg-info
