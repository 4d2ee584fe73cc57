//! llm-gateway: an LLM gateway that runs inside Envoy as a proxy-wasm HTTP filter.
//!
//! Host-free logic lives in plain modules; `filter` (compiled for wasm32 only) is the one
//! module that calls proxy-wasm host functions, through the traits in `host`, and
//! `dynamic_module` (feature `dynamic-module`) does the same over Envoy's native
//! dynamic-module ABI.
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

pub mod config;
pub mod copy_placement;
pub mod dialect;
pub mod errors;
pub mod estimate;
pub mod eventstream;
pub mod gateway;
pub mod headers;
pub mod host;
mod json_copy;
pub mod json_scan;
mod json_walk;
pub mod metrics;
pub mod models_list;
pub mod quota;
pub mod request;
pub mod response;
pub mod routing;
pub mod sigv4;
pub mod sse;
pub mod stream;
pub mod stream_anthropic;
mod stream_chunk;
pub mod swar;
pub mod translate;
pub mod usage;
pub mod vertex_token;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod filter;

/// The same filter as an Envoy dynamic module (native `libllm_gateway.so`).
#[cfg(all(feature = "dynamic-module", not(target_arch = "wasm32")))]
mod dynamic_module;
