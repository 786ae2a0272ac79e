# Two commands for a fresh machine: `make serve` and `make test` (see README); `make check` while editing.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 3000
BIN := $(VENV)/bin
# Machines that keep the CPU build of torch on disk expose it through /opt/wheels.
PIP := $(BIN)/python -m pip --disable-pip-version-check
INSTALL := $(PIP) install -q -c constraints.txt $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

.PHONY: serve check test lint browser bench stress lock clean models-import bento test-container test-split
RAY := .venv-ray/bin/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# A stamp per install flavour: it is redone whenever the project or the pinned versions change.
$(VENV)/.serve: pyproject.toml constraints.txt | $(BIN)/python
	$(INSTALL) -e .
	touch $@

$(VENV)/.dev: pyproject.toml constraints.txt client/pyproject.toml | $(BIN)/python
	$(INSTALL) -e ".[train,test]" -e ./client
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	PORT=$(PORT) $(BIN)/bentoml serve service.service:Senpos --port $(PORT)

# The shipped models into BentoML's model store ($BENTOML_HOME, default ~/bentoml) as senpos-sentiment and
# senpos-pos; once there, `make serve` and the Bentos use the store's (service/model_store.py says which wins).
models-import: $(VENV)/.serve
	$(BIN)/python -m service.model_store

# Both Bentos (CPU: senpos, GPU: senpos-gpu), carrying the store's models.
bento: models-import
	$(BIN)/bentoml build -f bentofile.yaml
	$(BIN)/bentoml build -f bentofile.gpu.yaml

# The CPU image and docker-compose.yml on a real Docker engine (root on Debian: it installs Docker if missing and
# starts and stops its own dockerd; scripts/test-container.sh says what it checks). CI runs it after make test.
test-container:
	scripts/test-container.sh

# The split topology in containers (docker-compose.split.yml) with Compose and on a one-node swarm: batching across
# API replicas, a killed model container, a rolling update under load (scripts/test-split.sh). CI runs it too.
test-split:
	scripts/test-split.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# tests/test_page.py drives Debian's Chromium (Playwright's own browser download cannot be reached): installed
# when missing.
browser:
	command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The quick loop: lint and the unit tests (no server, no training; well under a minute). tests/conftest.py
# marks the `server` and `slow` groups that only make test runs.
check: lint
	$(BIN)/pytest -q -m "not server and not slow"

test: lint browser
	$(BIN)/pytest

# Benchmarks and stress runs (not in CI; `make test` runs a seconds-long smoke version of each).
# The Ray Serve peer gets its own virtualenv: Ray's pins must not touch the service's environment.
$(RAY): requirements/serve-cpu.txt
	$(PYTHON) -m venv .venv-ray
	.venv-ray/bin/python -m pip install -q --disable-pip-version-check "ray[serve]==2.60.0" -r requirements/serve-cpu.txt
	.venv-ray/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .

bench: $(VENV)/.dev $(RAY)
	$(BIN)/python -m bench.run

stress: $(VENV)/.dev
	$(BIN)/python -m bench.stress

lock: $(VENV)/.dev
	{ echo "# Exact versions for a reproducible install (pip install -c constraints.txt ...). Regenerate with make lock."; \
	  $(PIP) freeze --all --exclude pip --exclude-editable | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	$(BIN)/python requirements/lock.py  # the images' and Bentos' lock files, from constraints.txt

clean:
	rm -rf $(VENV) .venv-ray .pytest_cache .ruff_cache .mypy_cache
