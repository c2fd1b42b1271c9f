# zmot: `make demo` runs the whole path, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the Rust extension's sources count too: a change to them rebuilds it
NATIVE_SRC := recommender/native/pyproject.toml recommender/native/Cargo.toml \
	recommender/native/Cargo.lock recommender/native/zmot_native.pyi $(wildcard recommender/native/src/*.rs)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml clients/python/pyproject.toml Makefile $(NATIVE_SRC) | sha1sum | cut -c1-12)

# The test stack runs on its own ports and state dir, so it never touches a running demo.
# tests/cluster starts its own 3-master Redis Cluster on 16390-16392 (buses 26390-26392).
TEST_ENV := ZMOT_STATE_DIR=.zmot/test ZMOT_KAFKA_BOOTSTRAP=127.0.0.1:19092 \
	ZMOT_REDIS_URL=redis://127.0.0.1:16379/0 ZMOT_API_PORT=18000 ZMOT_WORKER_WEB_PORT=16066 \
	ZMOT_TEST_REDIS_CLUSTER_PORT=16390

.DEFAULT_GOAL := help
.PHONY: help install system-deps demo stop test unit lint bench eval clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## Install zmot and its pinned dependencies into .venv/ (.venv/bin/zmot)

$(STAMP):
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 needed)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# pip/setuptools pinned: LightFM's build breaks with some newer releases (lyst/lightfm#687)
	$(BIN)/pip install --quiet "pip==24.3.1" "setuptools==75.8.0" "wheel==0.45.1"
	# LIGHTFM_NO_CFLAGS: no -march=native, so the venv works on any x86-64 CPU
	LIGHTFM_NO_CFLAGS=1 $(BIN)/pip install --quiet -e ".[dev]"
	# The Python client is its own package (zmot-client); `zmot demo` uses it
	$(BIN)/pip install --quiet -e ./clients/python
	# zmot_native: the hybrid ranker's candidate pass in Rust (PyO3, built by maturin; needs
	# cargo, https://rustup.rs). Without it the numpy pass serves (same answers, slower) and the
	# test suite fails unless ZMOT_NATIVE=0
	# (rustup's default place is looked in too, for shells that did not source ~/.cargo/env)
	@PATH="$$PATH:$$HOME/.cargo/bin"; command -v cargo >/dev/null || { echo "error: cargo not found: install Rust (https://rustup.rs) to build recommender/native"; exit 1; }
	PATH="$$PATH:$$HOME/.cargo/bin" $(BIN)/pip install --quiet ./recommender/native
	rm -f $(VENV)/.installed-* && touch $(STAMP)

system-deps: ## Install Debian's redis-server, Java 17, Maven, chromium (ops page test) and prometheus (promtool checks the alert rules) when missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: install system-deps ## Start Kafka, Redis, worker and API; replay a demo shop; print offers
	$(BIN)/zmot demo

stop: ## Stop everything `make demo` started
	$(BIN)/zmot stop

test: install system-deps ## Start a test Kafka + Redis, run the whole test suite, stop them
	@$(TEST_ENV) $(BIN)/zmot infra up
	@set +e; $(TEST_ENV) $(BIN)/python -m pytest -ra; rc=$$?; \
	  $(TEST_ENV) $(BIN)/zmot infra down; exit $$rc

unit: install ## Only the tests that need no Kafka or Redis
	$(BIN)/python -m pytest -m "not integration" -q

lint: install ## ruff (lint + format check) and mypy --strict on the packages
	$(BIN)/ruff check recommender stream api cli tests benchmarks clients/python
	$(BIN)/ruff format --check recommender stream api cli tests benchmarks clients/python
	$(BIN)/mypy

bench: install system-deps ## Run the benchmarks (figures go to BENCHMARKS.md)
	@$(TEST_ENV) $(BIN)/zmot infra up
	@set +e; $(TEST_ENV) $(BIN)/python benchmarks/bench_stream.py && \
	  $(TEST_ENV) $(BIN)/python benchmarks/bench_api.py && \
	  $(TEST_ENV) $(BIN)/python benchmarks/bench_freshness.py && \
	  $(TEST_ENV) $(BIN)/python benchmarks/bench_redis_memory.py; rc=$$?; \
	  $(TEST_ENV) $(BIN)/zmot infra down; exit $$rc

eval: install ## The README's quality figures: three shared samples with defaults, six variants of them, Taobao tuned (.zmot/eval-*)
	bash benchmarks/eval_defaults.sh
	$(BIN)/python benchmarks/eval_variants.py
	bash benchmarks/taobao/run.sh

clean: ## Remove local state (.zmot/) after stopping it
	-$(BIN)/zmot stop
	rm -rf .zmot
