//! Serde wire types for the provider APIs the gateway translates between.
//!
//! Only the members the translators read or write are typed; every struct keeps
//! the rest of its members in `rest` (`#[serde(flatten)]`), so a payload that is
//! parsed and re-serialised for the same API on both sides loses nothing, and new
//! provider fields pass through untouched. Optional members are skipped when absent
//! so serialised output carries no spurious `null`s, except where the public API
//! itself always sends `null` (e.g. `finish_reason` in a chunk, `stop_sequence`). Members
//! that carry long text (prompts, answers) are written by [`text::long`], which escapes
//! them many bytes per step instead of serde_json's one.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;

/// Unknown members of a wire object, kept verbatim.
pub type Rest = serde_json::Map<String, serde_json::Value>;

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    /// Parsing and re-serialising a payload for the same API loses nothing. (An
    /// explicit `null` for a typed optional member comes back absent, which both
    /// APIs treat alike; the inputs here use absent members.)
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) {
        let parsed: T = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), v);
    }

    #[test]
    fn unknown_members_round_trip() {
        round_trip::<super::openai::ChatCompletionRequest>(json!({
            "model": "gpt-4o", "future_param": {"x": 1}, "seed": 3, "max_tokens": 5,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi", "new": true},
                    {"type": "image_url", "image_url": {"url": "https://x", "detail": "low", "z": 1}}]},
                {"role": "assistant", "audio": {"id": "a"},
                 "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}", "k": 2}}]}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}, "strict": true}, "extra": 1}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}
        }));
        round_trip::<super::anthropic::MessagesRequest>(json!({
            "model": "claude", "max_tokens": 10, "service_tier": "auto", "mcp_servers": [],
            "system": [{"type": "text", "text": "s", "citations": null, "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "file", "file_id": "f1"}, "title": "t"},
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "r"}], "is_error": true}
            ]}],
            "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}
        }));
        round_trip::<super::anthropic::MessagesResponse>(json!({
            "id": "msg", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {"q": "x"}}],
            "stop_reason": "pause_turn", "stop_sequence": null, "container": null,
            "usage": {"input_tokens": 1, "output_tokens": 2, "server_tool_use": {"web_search_requests": 1}}
        }));
    }
}
