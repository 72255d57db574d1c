# Tributary: two commands on a fresh machine.
#   make up     set-up (apt packages, venvs, jars; idempotent) + the whole local stack + generator
#   make test   set-up + unit, integration and end-to-end tests on real Kafka, Flink and Redis
SHELL := /bin/bash
PY    ?= python3.11
VENV  := .venv
FVENV := .venv-flink
STAMP := var/.setup

.PHONY: setup up up-no-generator down status test test-unit test-integration bench clean

setup: $(STAMP)/apt $(STAMP)/venv $(STAMP)/venv-flink $(STAMP)/jars

$(STAMP)/apt:
	@mkdir -p $(STAMP)
	@if ! command -v redis-server >/dev/null || ! command -v kcat >/dev/null || ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
	  echo "== apt: redis-server kcat openjdk-17 maven"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server kcat openjdk-17-jre-headless maven >/dev/null; \
	fi
	@touch $@

$(STAMP)/venv: pyproject.toml
	@mkdir -p $(STAMP)
	@echo "== venv $(VENV) (tributary + train + test extras)"
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --upgrade pip setuptools wheel
	@$(VENV)/bin/pip install -q -e '.[train,test]'
	@touch $@

$(STAMP)/venv-flink: requirements-flink.txt
	@mkdir -p $(STAMP)
	@echo "== venv $(FVENV) (PyFlink, its own pins)"
	@test -x $(FVENV)/bin/python || $(PY) -m venv $(FVENV)
	@$(FVENV)/bin/pip install -q -r requirements-flink.txt
	@touch $@

$(STAMP)/jars: docker/pom.xml flink_jobs/java/pom.xml $(shell find flink_jobs/java/src -type f 2>/dev/null)
	@mkdir -p $(STAMP)
	@echo "== jars: Kafka broker, Flink Kafka connector, our Flink UDFs (Maven Central -> .cache/jars)"
	@mvn -q -B -f docker/pom.xml package
	@mvn -q -B -f flink_jobs/java/pom.xml package
	@touch $@

up: setup
	@$(VENV)/bin/tributary up

up-no-generator: setup
	@$(VENV)/bin/tributary up --no-generator

down:
	@$(VENV)/bin/tributary down

status:
	@$(VENV)/bin/tributary status

test: setup
	@$(VENV)/bin/pytest

test-unit: setup
	@$(VENV)/bin/pytest -q -m "not integration and not e2e"

bench: setup
	@$(VENV)/bin/tributary bench

clean: down
	rm -rf var
