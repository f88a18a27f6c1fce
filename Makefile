# Developer entry points. Every target bootstraps the virtualenv on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Lambda runs Python 3.13, so the virtualenv and `sam build` use 3.13 when the machine has it.
PYTHON313 := $(shell for p in python3.13 $$HOME/.pyenv/versions/3.13*/bin/python3.13; do if $$p -c '' >/dev/null 2>&1; then command -v $$p; break; fi; done)
PYTHON ?= $(if $(PYTHON313),$(PYTHON313),python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# sam build looks for the runtime's interpreter on PATH.
export PATH := $(abspath $(BIN)):$(if $(PYTHON313),$(dir $(PYTHON313)):)$(PATH)

.PHONY: help venv test test-unit test-integration test-corpus lint typecheck validate build demo local bench reliability policy fuzz fuzz-corpus clean ci

help:
	@echo "make demo   run the main job end to end on the local emulated stack"
	@echo "make test   run the test suite (unit and integration)"
	@echo "make local  run the local stack in the foreground"
	@echo "make lint   ruff, cfn-lint, sam validate --lint and the template policy check"
	@echo "make typecheck  mypy on the shared package"
	@echo "make build  sam build without Docker"
	@echo "make bench  run the benchmarks and rewrite BENCHMARKS.md"
	@echo "make reliability  fault-injection run on the local stack (4 shards); rewrites RELIABILITY.md (SEED=2026)"
	@echo "make test-corpus  run the malformed-input corpus, property and security tests"
	@echo "make fuzz   fuzz the webhook's signature, decryption and XML path (FUZZ_SECONDS=60)"

$(STAMP): requirements-dev.txt layers/core/requirements.txt layers/media/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Two pytest workers by default (CI and the development machines have 2 cores); override with PYTEST_ARGS.
PYTEST_ARGS ?= -n 2

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-corpus: $(STAMP)
	$(BIN)/python -m pytest tests/unit/test_malformed_corpus.py tests/unit/test_fuzz_corpus.py \
		tests/unit/test_properties_*.py tests/unit/test_security_*.py $(PYTEST_ARGS)

# libFuzzer options after FUZZ_SECONDS; new inputs go to .devstack/fuzz/corpus, crashes to .devstack/fuzz/crash-*.
FUZZ_SECONDS ?= 60
FUZZ_STAMP := $(VENV)/.fuzz-installed

$(FUZZ_STAMP): $(STAMP) requirements-fuzz.txt
	$(BIN)/python -m pip install --quiet -r requirements-fuzz.txt
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	mkdir -p .devstack/fuzz/corpus
	PYTHONPATH=layers/shared:. $(BIN)/python fuzz/fuzz_webhook.py .devstack/fuzz/corpus fuzz/corpus \
		-max_total_time=$(FUZZ_SECONDS) -max_len=8192 -artifact_prefix=.devstack/fuzz/ $(FUZZ_ARGS)

fuzz-corpus: $(STAMP)
	PYTHONPATH=layers/shared:. $(BIN)/python -m fuzz.make_corpus

lint: $(STAMP) validate policy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(BIN)/sam validate --lint --template template.yaml --region cn-north-1

policy: $(STAMP)
	$(BIN)/python -m devstack.policy_check template.yaml

build: $(STAMP)
	SAM_CLI_TELEMETRY=0 $(BIN)/sam build --template template.yaml

demo: $(STAMP)
	$(BIN)/python -m devstack.demo

local: $(STAMP)
	$(BIN)/python -m devstack

bench: $(STAMP)
	$(BIN)/python -m bench

SEED ?= 2026
reliability: $(STAMP)
	$(BIN)/python -m devstack.reliability --pushes 2000 --citizens 200 --shards 4 --seed $(SEED) --kills 12 --report RELIABILITY.md

ci: lint typecheck build test

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .devstack
