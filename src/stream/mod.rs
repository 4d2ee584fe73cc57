//! Streamed answers: framing ([`sse`], AWS [`eventstream`]) and the per-API observers
//! that read usage, first content and errors as the events pass ([`openai`],
//! [`anthropic`]; [`openai_chunk`] is the no-serde reader of the usual OpenAI chunk).

pub mod anthropic;
pub mod eventstream;
pub mod openai;
pub(crate) mod openai_chunk;
pub mod sse;
