# The two commands a newcomer needs: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-lowest image-check lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A real sync against the local Track API emulator on loopback: no credentials needed.
# Its shell runs without the caller's credentials, proxies or Python path, which would otherwise
# override the example's own (a 401) or carry loopback traffic elsewhere.
demo: private SHELL := env -u CIO_SITE_ID -u CIO_API_KEY -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
	-u all_proxy -u ALL_PROXY -u PYTHONPATH -u PYTHONHOME /bin/sh
demo: $(STAMP)
	@set -e; \
	portfile=$$(mktemp); rm -f $$portfile; \
	$(BIN)/cio-sync emulator serve --port-file $$portfile & pid=$$!; \
	trap 'kill $$pid 2>/dev/null' EXIT; \
	for i in $$(seq 100); do [ -s $$portfile ] && break; sleep 0.05; done; \
	url=http://127.0.0.1:$$(cat $$portfile); rm -f $$portfile; \
	echo "\$$ cio-sync --config examples/configuration.json --data examples/data.json --base-url $$url"; \
	status=0; $(BIN)/cio-sync --config examples/configuration.json --data examples/data.json --base-url $$url || status=$$?; \
	echo "(exit status $$status)"; echo; echo "What the workspace now holds:"; \
	$(BIN)/cio-sync emulator show $$url; \
	$(BIN)/python -m tests.demo_check $$url $$status

# Three test processes per core: every test's servers bind port 0, so tests run side by side, and
# most of a test's time is spent waiting on a server or a child process rather than computing.
TEST_WORKERS ?= $(shell echo $$(( 3 * $$(nproc 2>/dev/null || echo 1) )))
# Byte-compiled first: where the environment sets PYTHONDONTWRITEBYTECODE, every process the tests
# start would otherwise compile the whole package again (about a tenth of a second each). pytest
# runs without it, so that it keeps the test modules it rewrites for its asserts: otherwise every
# worker rewrites all of them again on every run (about two seconds of CPU each).
# In a fresh clone one process rewrites the test modules first (about 2 s of CPU), rather than
# every worker each rewriting them all at once.
test: $(STAMP) lint
	$(BIN)/python -m compileall -q cio_sync
	@[ -d tests/__pycache__ ] || PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q --collect-only -p no:xdist >/dev/null || true
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

# The oldest Python pyproject.toml admits, where this machine has one (pyenv's too); else $(PYTHON).
LOWEST_PYTHON ?= $(shell for p in python3.11 $$HOME/.pyenv/versions/3.11*/bin/python3; do \
	"$$p" -c '' 2>/dev/null && { echo "$$p"; exit; }; done; echo $(PYTHON))
LOWEST := .venv-lowest

$(LOWEST)/.installed: pyproject.toml tests/floors.py
	rm -rf $(LOWEST)
	$(LOWEST_PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet --no-deps -e .
	$(LOWEST)/bin/python -m tests.floors > $(LOWEST)/constraints.txt
	$(LOWEST)/bin/python -m pip install --quiet --constraint $(LOWEST)/constraints.txt -e '.[dev]'
	touch $@

# The suite again, every runtime dependency at the floor pyproject.toml declares (see tests/floors.py).
test-lowest: $(LOWEST)/.installed
	@$(LOWEST)/bin/python -c 'import sys; print("test-lowest: Python", sys.version.split()[0])'
	$(LOWEST)/bin/python -m tests.floors --check
	$(LOWEST)/bin/python -m compileall -q cio_sync
	$(LOWEST)/bin/python -m pytest -q -n $(TEST_WORKERS) -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Builds the Dockerfile with podman and runs the image against the emulator: tests/image_check.py.
image-check: $(STAMP)
	$(BIN)/python -m tests.image_check

# The clients a user would otherwise use, for the comparison in `make bench` (tests/bench_official.py):
# not dependencies of cio-sync, so they get an environment of their own, at the releases the bench
# was written against. One that will not install is tried again next time; meanwhile its row of
# the table says why, and the bench goes on.
BENCH_VENV := .venv-bench
BENCH_CLIENTS := customerio==3.2.0 async-customerio==2.18.0

$(BENCH_VENV)/.installed: Makefile
	rm -rf $(BENCH_VENV)
	$(PYTHON) -m venv $(BENCH_VENV) || echo "bench: $(BENCH_VENV) was not created: its rows will say so"
	@missing=0; for client in $(BENCH_CLIENTS); do \
		$(BENCH_VENV)/bin/python -m pip install --quiet $$client || { \
			missing=1; echo "bench: $$client is not installed in $(BENCH_VENV): its row will say so"; }; \
	done; [ $$missing = 1 ] || touch $@

# The side-by-side figures of docs/performance.md, N=1,000,000 people (about 4 minutes): cio-sync,
# and beside it the official client (v1, from 25 threads) and async-customerio (batch), each in its
# own process with $(BENCH_VENV)'s interpreter; then the cost of one write per person (about 4
# minutes). BENCH_N=100000 for a quick look at both. `$(BIN)/python -m tests.bench --all` adds
# every other scenario.
bench: $(STAMP) $(BENCH_VENV)/.installed
	$(BIN)/python -m tests.bench
	BENCH_MERGE_RECORDS=$${BENCH_N:-1000000} $(BIN)/python -m tests.bench_merge

# Long randomized runs, each printing what it survived. SOAK_MINUTES is per job; the property
# tests then run with 2,000 examples where make test gives them 100 (the "soak" profile).
SOAK_MINUTES ?= 10
soak: $(STAMP)
	$(BIN)/python -m tests.model --minutes $(SOAK_MINUTES)
	$(BIN)/python -m tests.fuzz --minutes $(SOAK_MINUTES)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m hypothesis --hypothesis-profile=soak

clean:
	rm -rf $(VENV) $(LOWEST) $(BENCH_VENV) build dist .pytest_cache .mypy_cache .ruff_cache
