# llm-gateway — `make run` and `make test` work on a fresh machine with the Rust
# toolchain (rustup), Python 3 and pip: everything else is installed here.
SHELL := /bin/bash
VENV := .venv
ENVOY := $(VENV)/bin/envoy
PYTEST := $(VENV)/bin/pytest
WASM := target/wasm32-wasip1/release/llm_gateway.wasm
TARGET := wasm32-wasip1

.PHONY: run test build setup toolchain venv lint unit integration clean bench microbench bench-tools

run: build venv
	@echo "llm-gateway: http://127.0.0.1:10000/v1  (admin/metrics: http://127.0.0.1:9901/stats/prometheus)"
	@if [ -z "$$OPENAI_API_KEY" ]; then echo "No OPENAI_API_KEY: every model is served by the built-in demo provider."; \
	 else echo "OPENAI_API_KEY set: gpt-*/o* models and openai/<model> go to api.openai.com."; fi
	@echo "Try: curl -s localhost:10000/v1/chat/completions -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
	exec $(ENVOY) -c envoy/envoy.yaml --concurrency 2 -l warning --component-log-level wasm:info

test: lint unit build venv integration

toolchain:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

build: toolchain
	cargo build --release --target $(TARGET)

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

setup: toolchain venv

lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --target $(TARGET) -- -D warnings
	cargo clippy --all-targets -- -D warnings

unit:
	cargo test

integration: build venv
	$(PYTEST) tests -q

# Benchmarks (not part of `make test`): plain Envoy vs Envoy + llm-gateway vs LiteLLM on
# 127.0.0.1, alternating variants, plus the criterion micro-benchmarks; writes
# bench/results.md. About 15 minutes on a 2-core machine. BENCH_ARGS=--quick for a short run.
bench: build venv bench-tools
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

bench-tools:
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	@command -v taskset >/dev/null || echo "taskset not found: processes will not be pinned to CPUs"
	@test -x .bench-venv-litellm/bin/litellm || (python3 -m venv .bench-venv-litellm && \
	  .bench-venv-litellm/bin/pip install --quiet 'litellm[proxy]==1.106.2') || \
	  echo "LiteLLM could not be installed: the benchmark runs without it and says so"

microbench:
	cargo bench --bench hot_paths -- --warm-up-time 0.5 --measurement-time 2 --noplot

clean:
	cargo clean
	rm -rf $(VENV)
