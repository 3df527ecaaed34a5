# mltrail: `make demo` and `make test` set everything up on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ANVIL   := node_modules/.anvil-installed
JOBS    ?= 2
BENCHES := bench/ledger_forgeries.py bench/pol.py bench/pol_loop.py bench/audit.py bench/cli.py \
  bench/capture.py bench/server.py bench/oracle.py bench/audit_protocols.py

.PHONY: setup demo test bench lint typecheck contracts clean graphviz browser mlserver

setup: $(STAMP) $(ANVIL) graphviz

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,import,ray]'
	touch $(STAMP)

$(ANVIL): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	node_modules/.bin/anvil --version >/dev/null
	touch $(ANVIL)

# Graphviz's `dot` draws lineage pictures; installed once (Debian) when missing.
graphviz:
	@command -v dot >/dev/null || (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null)

# Debian's chromium for the dashboard's browser tests (driven by the playwright package;
# no browser is ever downloaded). Installed once, as root, if missing.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

demo: setup
	SERVE=$(SERVE) bash demo/run.sh

# A stock MLServer 1.7.1 (scikit-learn runtime) for tests/audit/test_audit_stock_servers.py,
# in its own venv: its pins (fastapi, pydantic, ...) are not ours. About 30 s, once. Its
# scikit-learn is ours (the tests pickle a model here and MLServer unpickles it there).
MLSERVER := .venv-mlserver
$(MLSERVER)/.installed: | $(STAMP)
	$(PY) -m venv $(MLSERVER)
	$(MLSERVER)/bin/pip install -q --upgrade pip
	$(MLSERVER)/bin/pip install -q mlserver==1.7.1 mlserver-sklearn==1.7.1 \
	  scikit-learn==$$($(BIN)/python -c 'import sklearn; print(sklearn.__version__)')
	touch $@

mlserver: $(MLSERVER)/.installed

test: setup browser mlserver
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup -p no:cacheprovider

bench: setup
	$(BIN)/python bench/ledger.py
	@for b in $(BENCHES); do [ -f $$b ] && $(BIN)/python $$b || true; done

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

contracts: setup
	$(BIN)/python -m mltrail.ledger.contracts

clean:
	rm -rf $(VENV) $(MLSERVER) node_modules demo-out
