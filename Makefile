# The two commands a new user types are `make run` and `make test`; `make dev` keeps the stack up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test dev lint typecheck clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  ## the whole main job on the embedded stack, no keys needed
	$(BIN)/content-pipeline demo

test: $(STAMP)  ## lint, type check and the whole test suite
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/pytest -q

dev: $(STAMP)  ## API :8000, Temporal :7233, Web UI :8233 until Ctrl-C
	$(BIN)/content-pipeline dev

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
