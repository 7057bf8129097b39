# The two commands a new user types are `make run` and `make test`; `make dev` keeps the stack up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: run test dev lint format typecheck clean lock

$(STAMP): pyproject.toml $(LOCK)  # installs again when either changes; the lock's versions, on a fresh clone too
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@touch $(STAMP)

lock:  ## resolve requirements.lock again after a change to pyproject.toml; LOCK_FLAGS=--upgrade: newest releases
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet -c $(LOCK) uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 $(LOCK_FLAGS) -o $(LOCK)

run: $(STAMP)  ## the whole main job on the embedded stack, no keys needed
	$(BIN)/content-pipeline demo

test: $(STAMP)  ## format and lint checks, type check, import contracts and the whole test suite
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/lint-imports
	sh tests/support/ensure_browser.sh  # the studio's browser tests drive Debian's chromium: installed if missing
	sh tests/support/ensure_pds.sh >/dev/null  # a real Bluesky PDS for the channel tests: installed and cached once
	$(BIN)/pytest -q

dev: $(STAMP)  ## API :8000, Temporal :7233, Web UI :8233 until Ctrl-C
	$(BIN)/content-pipeline dev

lint: $(STAMP)  ## format, lint and the rooms' import contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

format: $(STAMP)  ## rewrite the code in the project's format
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
