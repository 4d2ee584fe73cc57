//! llm-gateway: an LLM gateway that runs inside Envoy as a proxy-wasm HTTP filter.

pub mod translate;
pub mod usage;
pub mod wire;
