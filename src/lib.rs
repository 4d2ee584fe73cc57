//! llm-gateway: an LLM gateway that runs inside Envoy as a proxy-wasm HTTP filter.
//!
//! Host-free logic lives in plain modules; `filter` (compiled for wasm32 only) is the one
//! module that calls proxy-wasm host functions, through the traits in `host`.

pub mod config;
pub mod errors;
pub mod gateway;
pub mod host;
pub mod metrics;
pub mod quota;
pub mod request;
pub mod routing;
pub mod usage;

#[cfg(target_arch = "wasm32")]
mod filter;
