//! Serde wire types for the provider APIs the gateway translates between.
//!
//! Only the members the translators read or write are typed; every struct keeps
//! the rest of its members in `rest` (`#[serde(flatten)]`), so a payload that is
//! parsed and re-serialised for the same API on both sides loses nothing, and new
//! provider fields pass through untouched. Optional members are skipped when absent
//! so serialised output carries no spurious `null`s, except where the public API
//! itself always sends `null` (e.g. `finish_reason` in a chunk, `stop_sequence`).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod anthropic;
pub mod openai;

/// Unknown members of a wire object, kept verbatim.
pub type Rest = serde_json::Map<String, serde_json::Value>;
