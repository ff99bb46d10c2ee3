# The two commands a newcomer needs: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A real sync against the local Track API emulator on loopback: no credentials needed.
demo: $(STAMP)
	@set -e; \
	portfile=$$(mktemp); rm -f $$portfile; \
	$(BIN)/python -m cio_sync.emulator --port-file $$portfile & pid=$$!; \
	trap 'kill $$pid 2>/dev/null' EXIT; \
	for i in $$(seq 100); do [ -s $$portfile ] && break; sleep 0.05; done; \
	url=http://127.0.0.1:$$(cat $$portfile); rm -f $$portfile; \
	echo "\$$ cio-sync --config examples/configuration.json --data examples/data.json --base-url $$url"; \
	status=0; $(BIN)/cio-sync --config examples/configuration.json --data examples/data.json --base-url $$url || status=$$?; \
	echo "(exit status $$status)"; echo; echo "What the workspace now holds:"; \
	$(BIN)/python -m cio_sync.emulator show $$url

# On every core (-n auto): every test's servers bind port 0, so tests run side by side.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
