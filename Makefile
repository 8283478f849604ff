# The two commands a newcomer needs:  `make run`  and  `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test bench-ingest deploy-check quick-start-check lint clean

# Re-installs only when the dependency files change.
$(VENV)/.installed: pyproject.toml requirements-tfjs.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,train]' -r requirements-tfjs.txt
	$(BIN)/python -m pip install --quiet --no-deps tensorflowjs==4.22.0
	touch $@

# @tensorflow/tfjs 4.22 for the tests that load published weights as Studio does.
tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium (and a font) for the dashboard's browser tests, FluidSynth with the General
# MIDI soundfont that renders real-instrument songs for the model's tests, and Debian's
# docker-compose 1.29 that checks docker/compose.yaml; skipped once installed.
CHROMIUM   := /usr/bin/chromium
FLUIDSYNTH := /usr/bin/fluidsynth
SOUNDFONT  := /usr/share/sounds/sf2/FluidR3_GM.sf2
COMPOSE    := /usr/bin/docker-compose
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM) $(FLUIDSYNTH) $(SOUNDFONT) $(COMPOSE) &:
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fluidsynth fluid-soundfont-gm docker-compose

install: $(VENV)/.installed tests/js/node_modules/.installed $(CHROMIUM) $(FLUIDSYNTH) $(SOUNDFONT) $(COMPOSE)

# API on http://127.0.0.1:8000 plus a Celery worker, on SQLite and a filesystem broker in var/.
run: $(VENV)/.installed
	$(BIN)/fabric serve

# Unit tests on SQLite; integration tests on the real Postgres (127.0.0.1:5432) and Redis
# (127.0.0.1:6379), with real uvicorn and Celery worker processes.
test: install lint
	$(BIN)/python -m pytest

# Ingest throughput and latency against Postgres with durable commits (see README).
bench-ingest: install
	$(BIN)/python bench/ingest.py

# The deployment check (bench/deploy_check.py): Docker and debootstrap from Debian's packages,
# then the images, the compose stack and a run through it. Needs root; not part of `make test`.
DOCKERD     := /usr/sbin/dockerd
DEBOOTSTRAP := /usr/sbin/debootstrap
$(DOCKERD) $(DEBOOTSTRAP) &:
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap
deploy-check: install $(DOCKERD) $(DEBOOTSTRAP)
	$(SUDO) $(BIN)/python bench/deploy_check.py

# The README's quick start run as written, to the demo page showing the published model
# (bench/quick_start_check.py); on a fresh clone. Not part of `make test`.
quick-start-check: install
	$(BIN)/python bench/quick_start_check.py

# Lint, import order and formatting; `make test` runs it first, so CI does too.
lint: $(VENV)/.installed
	$(BIN)/ruff check app workers training bench tests migrations
	$(BIN)/ruff format --check app workers training bench tests migrations

clean:
	rm -rf $(VENV) var .pytest_cache
