# synthstudio: `make start` sets up and runs everything; `make test` sets up and runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: start test lint setup worker web demo bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev,scale]"
	touch $(STAMP)

setup: $(STAMP)
	$(PY) manage.py migrate --no-input

# The local development server: DEBUG on (runserver serves static files only with DEBUG; settings default to off).
start web: export DEBUG ?= true
# `make start` is the one-machine setup: leads may add a local vLLM / llama.cpp / Ollama on 127.0.0.1 as an
# endpoint (LLM requests to loopback and private addresses are refused unless allowed).
start: export LLM_ALLOW_PRIVATE_HOSTS ?= true

start: setup
	$(PY) manage.py start

web: setup
	$(PY) manage.py runserver 127.0.0.1:8000

worker: setup
	$(VENV)/bin/celery -A synthstudio worker --loglevel=INFO --concurrency=2

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean:
	rm -rf var/test-*.sqlite3 test-artifacts
