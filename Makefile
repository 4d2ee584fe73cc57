# llm-gateway — `make run` and `make test` work on a fresh machine with the Rust
# toolchain (rustup), Python 3 and pip: everything else is installed here.
SHELL := /bin/bash
VENV := .venv
ENVOY := $(VENV)/bin/envoy
PYTEST := $(VENV)/bin/pytest
WASM := target/wasm32-wasip1/release/llm_gateway.wasm
TARGET := wasm32-wasip1

.PHONY: run test build setup toolchain venv lint unit integration clean

run: build venv
	@echo "llm-gateway: http://127.0.0.1:10000/v1  (admin/metrics: http://127.0.0.1:9901/stats/prometheus)"
	@if [ -z "$$OPENAI_API_KEY$$ANTHROPIC_API_KEY$$AZURE_OPENAI_API_KEY" ]; then echo "No provider keys: every model is served by the built-in demo provider."; fi
	@if [ -n "$$OPENAI_API_KEY" ]; then echo "OPENAI_API_KEY set: gpt-*/o* models and openai/<model> go to api.openai.com."; fi
	@if [ -n "$$ANTHROPIC_API_KEY" ]; then echo "ANTHROPIC_API_KEY set: claude-* models and anthropic/<model> go to api.anthropic.com."; fi
	@if [ -n "$$AZURE_OPENAI_API_KEY" ]; then echo "AZURE_OPENAI_API_KEY set: azure/<model> goes to the azure_openai cluster (set YOUR-RESOURCE in envoy/envoy.yaml)."; fi
	@echo "Try: curl -s localhost:10000/v1/chat/completions -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
	@echo " or: curl -s localhost:10000/v1/messages -d '{\"model\":\"claude-haiku-4-5\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
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

clean:
	cargo clean
	rm -rf $(VENV)
