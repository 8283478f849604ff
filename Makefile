# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test bench-ingest lint clean

# Re-installs only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train]'
	touch $@

install: $(VENV)/.installed

# API on http://127.0.0.1:8000 plus a Celery worker, on SQLite and a filesystem broker in var/.
run: install
	$(BIN)/fabric serve

# Unit tests on SQLite; integration tests on the real Postgres (127.0.0.1:5432) and Redis
# (127.0.0.1:6379), with real uvicorn and Celery worker processes.
test: install
	$(BIN)/python -m pytest

# Ingest throughput and latency against Postgres with durable commits (see README).
bench-ingest: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache
