//! Anthropic Messages API wire types (`POST /v1/messages`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Rest;

/// Request body of `POST /v1/messages`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct MessagesRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    pub messages: Vec<Message>,
    /// Required by the API; optional here so a missing value is reported by the
    /// translator, not as a parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `system`: a string or an array of text blocks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(#[serde(serialize_with = "crate::fastjson::text::long")] String),
    Blocks(Vec<ContentBlock>),
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Message {
    pub role: String,
    pub content: MessageContent,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Message content: a string (one text block) or an array of blocks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(#[serde(serialize_with = "crate::fastjson::text::long")] String),
    Blocks(Vec<ContentBlock>),
}

/// A content block. Kept flat rather than as a tagged enum so that block types
/// this gateway does not know (documents, server tool results, ...) still parse
/// and round-trip through `rest`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ContentBlock {
    #[serde(rename = "type")]
    pub kind: String,
    /// `text` blocks.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::fastjson::text::long_opt"
    )]
    pub text: Option<String>,
    /// `image` (and `document`) blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ImageSource>,
    /// `tool_use` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// `tool_result` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ToolResultContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// `thinking` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock {
            kind: "text".to_string(),
            text: Some(text.into()),
            ..ContentBlock::default()
        }
    }
}

/// `tool_result.content`: a string or an array of (text / image) blocks.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(#[serde(serialize_with = "crate::fastjson::text::long")] String),
    Blocks(Vec<ContentBlock>),
}

/// `source` of an image block: `base64` (`media_type`, `data`) or `url` (`url`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ImageSource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A tool definition. Client tools have no `type` (or `"custom"`); server tools
/// (`web_search_20250305`, `bash_20250124`, ...) carry a versioned `type`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Tool {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `tool_choice`: `{"type": "auto" | "any" | "none" | "tool", "name"?, "disable_parallel_tool_use"?}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_parallel_tool_use: Option<bool>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Response body of a non-streamed `POST /v1/messages` (`type: "message"`); also the
/// `message` of a streamed `message_start` event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct MessagesResponse {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// Always serialised (`null` while streaming), as Anthropic does.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Always serialised.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: MessagesUsage,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `usage`: `input_tokens` excludes the cache reads and writes reported beside it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct MessagesUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One streamed event's data (`message_start`, `content_block_start`,
/// `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`,
/// `ping`, `error`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StreamEvent {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessagesResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_block: Option<ContentBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<StreamDelta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<MessagesUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `delta` of `content_block_delta` (`text_delta`, `input_json_delta`,
/// `thinking_delta`, `signature_delta`, ...) or of `message_delta`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StreamDelta {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_json: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// `Some(Value::Null)` serialises the explicit `null` Anthropic sends in
    /// `message_delta`; a `null` in input parses as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Error body: `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ErrorResponse {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub error: ErrorBody,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ErrorBody {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(flatten)]
    pub rest: Rest,
}
