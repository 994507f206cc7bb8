# kaiwa — two commands: `make run` (the whole stack locally) and `make test` (every test).
# Each sets up what it needs: .venv/, the livekit-server binary, the web build.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WEB_SOURCES := $(shell find web/src web/index.html web/package.json web/build.mjs -type f 2>/dev/null)

.PHONY: try-latest run cluster test lint fmt setup livekit-server web fake clean

# scripts/run.sh sets KAIWA_DEV=1 (development mode: the published dev key/secret are
# accepted); outside it the token server and scripts/run-livekit-server.sh refuse them.
run: setup livekit-server web ## start livekit-server, the token server (+ web page) and the worker (dev mode)
	@scripts/run.sh

cluster: setup livekit-server web ## Redis, two livekit-server nodes, two workers, the token server
	@scripts/run-cluster.sh

test: setup livekit-server web ## run every test (unit, integration, end-to-end, browser)
	$(PY) -m pytest

lint: setup ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "kaiwa: Python >= 3.11 is required ($(PYTHON) is older)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

try-latest: ## the Gemini tests against the newest livekit-agents/plugin/google-genai patch releases
	test -d .venv-latest || $(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip
	.venv-latest/bin/pip install --quiet --upgrade -r requirements-latest.txt
	.venv-latest/bin/pip install --quiet --no-deps -e .
	.venv-latest/bin/pip list 2>/dev/null | grep -iE '^(livekit|google-genai)'
	.venv-latest/bin/python -c 'from agent.gemini import private; private.check()'
	.venv-latest/bin/python -m pytest tests/integration tests/unit/test_gemini_layer.py tests/e2e/test_gemini_faults.py

livekit-server: ## find or build livekit-server >= 1.13.3 (into .bin/)
	@scripts/ensure-livekit-server.sh >/dev/null

web: web/dist/index.html ## build the web page into web/dist/

web/dist/index.html: $(WEB_SOURCES)
	@command -v npm >/dev/null || { echo "kaiwa: Node.js + npm are needed to build the web page"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build

fake: setup ## run the Gemini Live fake standalone (try the stack without a Google key)
	$(PY) -m tests.fakes.gemini_live --port 8765

clean:
	rm -rf $(VENV) .venv-latest .bin web/dist web/node_modules artifacts .pytest_cache .mypy_cache .ruff_cache
