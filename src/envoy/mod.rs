//! The only code that calls Envoy: the proxy-wasm glue (`proxy_wasm`, compiled for wasm32
//! only) and the dynamic-module glue (`dynamic_module`, feature `dynamic-module`), both
//! mapping Envoy's callbacks onto [`crate::flow`] through the [`crate::host`] traits.
//!
//! Keep these names out of intra-doc links: a link to `proxy_wasm` resolves to the
//! proxy-wasm crate in the native build, and loading that crate links its exported
//! `proxy_on_*` functions into `libllm_gateway.so`, which Envoy then cannot load
//! (undefined `proxy_*` host functions).

pub mod headers;

#[cfg(target_arch = "wasm32")]
mod proxy_wasm;

/// The same filter as an Envoy dynamic module (native `libllm_gateway.so`).
#[cfg(all(feature = "dynamic-module", not(target_arch = "wasm32")))]
mod dynamic_module;
