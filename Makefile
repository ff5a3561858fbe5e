# Coat Tail Capital — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## Install everything from the registries (idempotent; a second run only verifies)
	@bash scripts/setup.sh && bash scripts/setup.sh cluster

demo: ## Run the whole pipeline on the embedded profile (sets itself up first)
	@TIER="$(TIER)" bash scripts/demo.sh

test: ## Lint, type-check and run the whole test suite (sets itself up first)
	@bash scripts/test.sh

up: ## Start the local Kafka broker and DynamoDB Local
	@bash scripts/setup.sh python jvm >/dev/null && .venv/bin/coattail dev up

down: ## Stop the local services
	@.venv/bin/coattail dev down

status: ## Show what local services run where
	@.venv/bin/coattail dev status

lint: ## ruff + mypy only
	@.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

.PHONY: help setup demo test up down status lint

# --- Kubernetes (charts/coattail): stop/start streaming on a running release -----------------------
RELEASE ?= coattail
NAMESPACE ?= coattail
CHART ?= charts/coattail

stop: ## Stop streaming on the cluster: connectors to 0, SparkApplication suspended (API stays up)
	@helm upgrade $(RELEASE) $(CHART) -n $(NAMESPACE) --reuse-values --set streaming.enabled=false --wait

start: ## Start streaming again on the cluster (connectors up, SparkApplication resumed)
	@helm upgrade $(RELEASE) $(CHART) -n $(NAMESPACE) --reuse-values --set streaming.enabled=true --wait

.PHONY: start stop
