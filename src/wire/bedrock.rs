//! Amazon Bedrock Converse API wire types (`POST /model/{modelId}/converse` and
//! `/converse-stream`). Member names are camelCase as on the wire.
//!
//! Unions (`ContentBlock`, `ToolResultContent`, `ToolChoice`, ...) are flat structs
//! with one optional member per variant, so variants this gateway does not know
//! (`document`, `video`, `guardContent`, `citationsContent`, ...) still parse and
//! round-trip through `rest`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Rest;

/// Request body of Converse / ConverseStream (the model id is in the path).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Vec<ContentBlock>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One conversation turn (`user` or `assistant`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A content block: exactly one member is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlock {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::fastjson::text::long_opt"
    )]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResultBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningContent>,
    /// `{"type": "default"}`: a prompt-cache checkpoint after the preceding blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_point: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock {
            text: Some(text.into()),
            ..ContentBlock::default()
        }
    }

    pub fn cache_point() -> Self {
        ContentBlock {
            cache_point: Some(serde_json::json!({"type": "default"})),
            ..ContentBlock::default()
        }
    }
}

/// `image`: `format` is `png | jpeg | gif | webp`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageBlock {
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub source: ImageSource,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `source` of an image: base64 `bytes` (in JSON) or an `s3Location` (kept in `rest`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock {
    #[serde(default)]
    pub tool_use_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub input: Value,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock {
    #[serde(default)]
    pub tool_use_id: String,
    #[serde(default)]
    pub content: Vec<ToolResultContent>,
    /// `success | error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One part of a tool result: exactly one member is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultContent {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::fastjson::text::long_opt"
    )]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageBlock>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `reasoningContent`: `reasoningText {text, signature?}` or `redactedContent` (bytes).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_text: Option<ReasoningText>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningText {
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    #[serde(default)]
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A tool: `toolSpec` (or `cachePoint`, kept in `rest`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_spec: Option<ToolSpec>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: InputSchema,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `inputSchema`: `{"json": <JSON Schema>}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputSchema {
    #[serde(default)]
    pub json: Value,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `toolChoice`: exactly one of `auto: {}`, `any: {}`, `tool: {name}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<SpecificToolChoice>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecificToolChoice {
    pub name: String,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Response body of Converse.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<ConverseOutput>,
    /// `end_turn | tool_use | max_tokens | stop_sequence | guardrail_intervened |
    /// content_filtered | model_context_window_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseOutput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `usage`. `inputTokens` excludes the tokens read from and written to the cache.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
    #[serde(flatten)]
    pub rest: Rest,
}

// ---------------------------------------------------------------------------
// ConverseStream event payloads (the JSON payload of each eventstream message;
// the event name is the message's `:event-type` header).
// ---------------------------------------------------------------------------

/// `messageStart`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStartEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `contentBlockStart`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStartEvent {
    #[serde(default)]
    pub content_block_index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<ContentBlockStart>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseStart>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    #[serde(default)]
    pub tool_use_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `contentBlockDelta`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDeltaEvent {
    #[serde(default)]
    pub content_block_index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<ContentBlockDelta>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use: Option<ToolUseDelta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<ReasoningDelta>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A fragment of a tool call's JSON input.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseDelta {
    #[serde(default)]
    pub input: String,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A reasoning fragment: `text`, `signature` or `redactedContent`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `messageStop`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStopEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `metadata`: usage and metrics, the last event of a stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Error body (HTTP error responses and stream exception payloads):
/// `{"message": ...}` (some services write `Message`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ErrorBody {
    #[serde(default, alias = "Message", skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `__type`: the error shape, sometimes with a namespace (`ns#ValidationException`).
    #[serde(default, rename = "__type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    /// Parsing and re-serialising a payload loses nothing (unknown members and union
    /// variants this gateway does not type go through `rest`).
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) {
        let parsed: T = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), v);
    }

    #[test]
    fn unknown_members_round_trip() {
        round_trip::<super::ConverseRequest>(json!({
            "messages": [
                {"role": "user", "content": [
                    {"text": "hi"},
                    {"document": {"format": "pdf", "name": "d", "source": {"bytes": "AAAA"}}},
                    {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k"}}}},
                    {"cachePoint": {"type": "default"}},
                    {"toolResult": {"toolUseId": "t", "content": [{"json": {"a": 1}}, {"text": "x"}], "status": "error"}}
                ]},
                {"role": "assistant", "content": [
                    {"reasoningContent": {"reasoningText": {"text": "r", "signature": "s"}}},
                    {"toolUse": {"toolUseId": "t", "name": "f", "input": {"q": 1}}}
                ]}
            ],
            "system": [{"text": "s"}, {"guardContent": {"text": {"text": "g"}}}],
            "inferenceConfig": {"maxTokens": 5, "temperature": 0.5, "topP": 0.9, "stopSequences": ["x"]},
            "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}, {"cachePoint": {"type": "default"}}],
                           "toolChoice": {"any": {}}},
            "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
            "additionalModelRequestFields": {"top_k": 3},
            "performanceConfig": {"latency": "optimized"}
        }));
        round_trip::<super::ConverseResponse>(json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0},
            "metrics": {"latencyMs": 10},
            "trace": {"guardrail": {}}
        }));
    }
}
