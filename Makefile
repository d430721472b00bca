# Giao Ban: `make demo` runs the demo city, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo serve test lint typecheck messages bench clean

# setup.py builds the SFU's optional C fast path (meetings/rtc/_fastpath.c) in place.
$(STAMP): pyproject.toml setup.py meetings/rtc/_fastpath.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PYTHON=$(BIN)/python scripts/build-deps.sh
	$(BIN)/python -m pip install -q --upgrade pip setuptools
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python setup.py -q build_ext --inplace 2>/dev/null || echo "note: the SFU's C fast path was not built; using the Python path" >&2
	touch $(STAMP)

install: $(STAMP)
	PYTHON=$(BIN)/python scripts/compile-messages.sh

demo: install
	$(BIN)/giaoban demo
	$(BIN)/giaoban serve

serve: install
	$(BIN)/giaoban serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy
	scripts/checkjs.sh
	scripts/jstest.sh

# PostgreSQL half: set GIAOBAN_TEST_POSTGRES_URL, or run as root and it is started here.
test: install
	scripts/system-deps.sh
	$(MAKE) --no-print-directory lint typecheck
	if [ -z "$${GIAOBAN_TEST_POSTGRES_URL:-}" ] && [ "$$(id -u)" = 0 ]; then \
	  GIAOBAN_TEST_POSTGRES_URL=$$(scripts/ci-postgres.sh); export GIAOBAN_TEST_POSTGRES_URL; fi; \
	$(BIN)/python -m pytest -q

messages: install
	PYTHON=$(BIN)/python scripts/messages.sh

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache build meetings/rtc/*.so
