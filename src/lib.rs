//! llm-gateway: an LLM gateway that runs inside Envoy as a proxy-wasm HTTP filter (and as
//! a native Envoy dynamic module).
//!
//! The folders, from the bottom up (each uses only those above it in this list; the
//! `folder_graph` test fails when an import points the other way):
//!
//! | folder | what it holds |
//! | --- | --- |
//! | [`fastjson`] | the optional no-serde speed layer: SIMD/SWAR string scans, a validating JSON walker, literal copies; every fast path is held to serde by property tests |
//! | [`tokens`] | token usage as each provider reports it, and estimates when none is reported |
//! | [`wire`] | serde types of each wire API (OpenAI, Anthropic, Gemini, Bedrock) |
//! | [`stream`] | SSE and AWS eventstream framing, and the per-API stream observers |
//! | [`translate`] | conversions between wire APIs, one file per API pair |
//! | [`api`] | what clients speak: endpoints, wire APIs, and errors in the client's format |
//! | [`config_error`], [`quota`] | a configuration error with its JSON path; consumers, identity and token quotas |
//! | [`host`] | the few host capabilities the flow needs (a trait; a fake for tests), and the body edits it asks of them |
//! | [`providers`] | what differs per provider, behind one adapter interface: the API it speaks, endpoint, host, path and authentication |
//! | [`config`] | what operators write, and how it is checked |
//! | [`metrics`] | metric families and the names and labels of each metric |
//! | [`flow`] | the life of one request: routing, rewrite, translation, quotas, usage |
//! | [`envoy`] | the only code calling Envoy: proxy-wasm glue and the dynamic-module glue |
//!
//! A panic aborts the whole Wasm VM (every request on that Envoy worker fails), so
//! outside tests the crate denies everything that can panic on bad input.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod api;
pub mod config;
pub mod config_error;
pub mod envoy;
pub mod fastjson;
pub mod flow;
pub mod host;
pub mod metrics;
pub mod providers;
pub mod quota;
pub mod stream;
pub mod tokens;
pub mod translate;
pub mod wire;
