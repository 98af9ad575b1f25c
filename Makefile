# Two entry points: `make run` (set up, then serve on embedded defaults) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The bot alone: no test tools, no PyTorch.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# Tests also cover the optional local embeddings model (PyTorch CPU build).
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/python -m bot serve

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The web chat's browser test drives Debian's Chromium through Playwright (no browser download).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: lint browser
	$(BIN)/python -m pytest

bench: $(TEST_STAMP)
	$(BIN)/python -m bench.pipeline
	$(BIN)/python -m bench.indexing
	$(BIN)/python -m bench.telegram_webhook
	$(BIN)/python -m bench.http_api
	$(BIN)/python -m bench.whatsapp_webhook
	$(BIN)/python -m bench.retrieval.eval --corpus click
	$(BIN)/python -m bench.retrieval.eval --corpus starlette

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
