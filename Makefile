# Baton developer commands. `make run` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BUF := PATH="$(CURDIR)/$(BIN):$$PATH" npx --no-install buf
PORT ?= 8800
DATABASE ?= sqlite+aiosqlite:///baton.db
GENERATED := clients/python/generated
PY_PATHS := server tests clients/python/src clients/python/tools $(wildcard bench)

.PHONY: setup run test lint generate check-generated bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e clients/python -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Run the server: embedded SQLite file, port 8800 (override with PORT=..., DATABASE=...).
run: setup
	$(BIN)/baton serve --port $(PORT) --database $(DATABASE)

## Regenerate client code from protos/ with buf (local plugins only).
generate: setup
	$(BUF) generate

## Fail when the committed generated code does not match protos/.
check-generated: generate
	@if ! git diff --quiet -- $(GENERATED) || [ -n "$$(git ls-files --others --exclude-standard -- $(GENERATED))" ]; then \
		git status --short -- $(GENERATED); \
		echo "Generated code is stale: run 'make generate' and commit the result."; exit 1; fi

lint: setup
	$(BUF) lint
	$(BUF) breaking --against '.git#branch=main'
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS)

## Everything CI checks: protos lint, generated code fresh, ruff, the full test suite.
## The suite runs on SQLite and on a throwaway PostgreSQL cluster (.ci/postgres, in .cache/pg).
test: lint check-generated
	BATON_TEST_POSTGRES_URL="$$(.ci/postgres start)" BATON_REQUIRE_POSTGRES=1 \
		$(BIN)/pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) node_modules .cache
