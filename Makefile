# Every command a person runs. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench fuzz system-deps services clean

$(STAMP): pyproject.toml tests/external/showme-sms-pigeon/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint,ice-twilio,sms-twilio,sms-clickatell,sms-vonage,cad-webhook]' -e tests/external/showme-sms-pigeon
	touch $(STAMP)

## Start ShowMe on its embedded defaults (SQLite, local disk, outbox SMS, demo organisation).
run: $(STAMP)
	$(BIN)/showme --data-dir var serve --demo

## Install everything the tests need (Debian packages included) and run the whole suite.
test: system-deps $(STAMP) services
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check showme_core plugins adapters tests bench
	$(BIN)/ruff format --check showme_core plugins adapters tests bench
	$(BIN)/mypy

## Benchmarks: they print figures (recorded in docs/performance.md); they are not tests.
bench: $(STAMP)
	$(BIN)/python -m bench.caller_page
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.upload_latency
	$(BIN)/python -m bench.first_frame
	$(BIN)/python -m bench.signaling
	$(BIN)/python -m bench.feeds
	$(BIN)/python -m bench.upload_memory
	$(BIN)/python -m bench.consumers
	$(BIN)/python -m bench.cad_webhook

## The picture fuzzer at length (make test runs 2,000 mutants; this runs 50,000).
fuzz: $(STAMP)
	SHOWME_FUZZ_MUTANTS=50000 $(BIN)/python -m pytest tests/core/test_picture_fuzz.py -p no:cacheprovider --timeout 3600

## Debian packages the tests drive: Chromium. Fails loudly if they cannot be installed.
system-deps:
	scripts/ensure-system-deps.sh

## PostgreSQL on 127.0.0.1:5432 (the store tests run on it as well as on SQLite).
services:
	scripts/ensure-services.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
