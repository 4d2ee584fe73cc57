//! llm-gateway: an LLM gateway that runs inside Envoy as a proxy-wasm HTTP filter.

pub mod estimate;
pub mod sse;
pub mod stream;
pub mod usage;
