//! Google Gemini API wire types: `models/{m}:generateContent` and
//! `models/{m}:streamGenerateContent?alt=sse` (AI Studio, `generativelanguage.googleapis.com`),
//! which are also the payloads of Vertex AI's
//! `projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`.
//!
//! The API's JSON names are lowerCamelCase. Google's JSON parser also accepts the
//! proto (snake_case) names, so the response types accept both through aliases;
//! what this module writes is always camelCase.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Rest;

/// Request body of `generateContent` / `streamGenerateContent` (the model is in the path).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    #[serde(default)]
    pub contents: Vec<Content>,
    #[serde(
        default,
        alias = "system_instruction",
        skip_serializing_if = "Option::is_none"
    )]
    pub system_instruction: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    #[serde(
        default,
        alias = "tool_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_config: Option<ToolConfig>,
    #[serde(
        default,
        alias = "generation_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub generation_config: Option<GenerationConfig>,
    #[serde(
        default,
        alias = "safety_settings",
        skip_serializing_if = "Option::is_none"
    )]
    pub safety_settings: Option<Value>,
    #[serde(
        default,
        alias = "cached_content",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_content: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// One turn: `role` is `user` or `model` (absent in `systemInstruction`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A part of a turn. The API's `Part` is a union (exactly one of `text`,
/// `inlineData`, `fileData`, `functionCall`, `functionResponse`, `executableCode`,
/// ...), plus the flags `thought` and `thoughtSignature`; it is kept flat so that
/// unknown kinds still parse and round-trip through `rest`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::fastjson::text::long_opt"
    )]
    pub text: Option<String>,
    /// `true` on a part that is a thought summary (thinking models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    /// Opaque signature of the model's reasoning, to be sent back unchanged.
    #[serde(
        default,
        alias = "thought_signature",
        skip_serializing_if = "Option::is_none"
    )]
    pub thought_signature: Option<String>,
    #[serde(
        default,
        alias = "inline_data",
        skip_serializing_if = "Option::is_none"
    )]
    pub inline_data: Option<Blob>,
    #[serde(default, alias = "file_data", skip_serializing_if = "Option::is_none")]
    pub file_data: Option<FileData>,
    #[serde(
        default,
        alias = "function_call",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_call: Option<FunctionCall>,
    #[serde(
        default,
        alias = "function_response",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_response: Option<FunctionResponse>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl Part {
    pub fn text(text: impl Into<String>) -> Self {
        Part {
            text: Some(text.into()),
            ..Part::default()
        }
    }
}

/// Inline bytes (`data` is base64).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob {
    #[serde(default, alias = "mime_type")]
    pub mime_type: String,
    #[serde(default)]
    pub data: String,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A reference to a file by URI.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    #[serde(default, alias = "mime_type", skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, alias = "file_uri")]
    pub file_uri: String,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A function call predicted by the model (`args` is a JSON object).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct FunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// The result of a function call (`response` must be a JSON object).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct FunctionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub response: Value,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(
        default,
        alias = "stop_sequences",
        skip_serializing_if = "Option::is_none"
    )]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(
        default,
        alias = "response_mime_type",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_mime_type: Option<String>,
    /// OpenAPI-subset schema of the answer.
    #[serde(
        default,
        alias = "response_schema",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_schema: Option<Value>,
    /// JSON Schema of the answer (exclusive with `responseSchema`).
    #[serde(
        default,
        alias = "response_json_schema",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_json_schema: Option<Value>,
    #[serde(
        default,
        alias = "candidate_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub candidate_count: Option<u32>,
    #[serde(
        default,
        alias = "max_output_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, alias = "top_p", skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, alias = "top_k", skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(
        default,
        alias = "thinking_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub thinking_config: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    #[serde(
        default,
        alias = "function_declarations",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_declarations: Option<Vec<FunctionDeclaration>>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeclaration {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// OpenAPI-subset schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// JSON Schema of the arguments (exclusive with `parameters`).
    #[serde(
        default,
        alias = "parameters_json_schema",
        skip_serializing_if = "Option::is_none"
    )]
    pub parameters_json_schema: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    #[serde(
        default,
        alias = "function_calling_config",
        skip_serializing_if = "Option::is_none"
    )]
    pub function_calling_config: Option<FunctionCallingConfig>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// `mode`: `AUTO`, `ANY`, `NONE` (or `VALIDATED`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(
        default,
        alias = "allowed_function_names",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_function_names: Option<Vec<String>>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Response body of `generateContent`, and of each event of `streamGenerateContent`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(
        default,
        alias = "prompt_feedback",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_feedback: Option<PromptFeedback>,
    #[serde(
        default,
        alias = "usage_metadata",
        skip_serializing_if = "Option::is_none"
    )]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(
        default,
        alias = "model_version",
        skip_serializing_if = "Option::is_none"
    )]
    pub model_version: Option<String>,
    #[serde(
        default,
        alias = "response_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_id: Option<String>,
    /// Present when the body (or a stream event) is an error instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// `STOP`, `MAX_TOKENS`, `SAFETY`, `RECITATION`, `BLOCKLIST`, ...; absent while
    /// a stream is still generating.
    #[serde(
        default,
        alias = "finish_reason",
        skip_serializing_if = "Option::is_none"
    )]
    pub finish_reason: Option<String>,
    #[serde(
        default,
        alias = "finish_message",
        skip_serializing_if = "Option::is_none"
    )]
    pub finish_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// Set when the prompt itself was blocked (no candidates then).
    #[serde(
        default,
        alias = "block_reason",
        skip_serializing_if = "Option::is_none"
    )]
    pub block_reason: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Token counts. `promptTokenCount` includes `cachedContentTokenCount`;
/// `thoughtsTokenCount` and `toolUsePromptTokenCount` are counted on top of
/// `candidatesTokenCount` and `promptTokenCount` in `totalTokenCount`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    #[serde(
        default,
        alias = "prompt_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub prompt_token_count: Option<u64>,
    #[serde(
        default,
        alias = "candidates_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub candidates_token_count: Option<u64>,
    #[serde(
        default,
        alias = "total_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_token_count: Option<u64>,
    #[serde(
        default,
        alias = "cached_content_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cached_content_token_count: Option<u64>,
    #[serde(
        default,
        alias = "thoughts_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub thoughts_token_count: Option<u64>,
    #[serde(
        default,
        alias = "tool_use_prompt_token_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub tool_use_prompt_token_count: Option<u64>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// Google API error body: `{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED", "details": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ErrorResponse {
    pub error: ErrorBody,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ErrorBody {
    /// The HTTP status code (a number; some proxies send a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
    #[serde(default)]
    pub message: String,
    /// The canonical gRPC status name, e.g. `INVALID_ARGUMENT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parsing and re-serialising a payload loses nothing.
    fn round_trip<T: serde::de::DeserializeOwned + Serialize>(v: Value) {
        let parsed: T = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), v);
    }

    #[test]
    fn unknown_members_round_trip() {
        round_trip::<GenerateContentRequest>(json!({
            "contents": [{"role": "user", "parts": [
                {"text": "hi", "mediaResolution": {"level": "MEDIA_RESOLUTION_LOW"}},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA", "displayName": "x"}},
                {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}, "videoMetadata": {"fps": 1}},
                {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
            ]}, {"role": "model", "parts": [
                {"functionCall": {"id": "a", "name": "f", "args": {"x": 1}}, "thoughtSignature": "c2ln"}
            ]}, {"role": "user", "parts": [
                {"functionResponse": {"id": "a", "name": "f", "response": {"ok": true}, "willContinue": false}}
            ]}],
            "systemInstruction": {"parts": [{"text": "s"}]},
            "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {}, "behavior": "BLOCKING"}]},
                      {"googleSearch": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]},
                           "retrievalConfig": {}},
            "generationConfig": {"maxOutputTokens": 5, "thinkingConfig": {"thinkingBudget": 0},
                                 "responseModalities": ["TEXT"], "mediaResolution": "MEDIA_RESOLUTION_LOW"},
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "cachedContent": "cachedContents/x",
            "labels": {"team": "a"}
        }));
        round_trip::<GenerateContentResponse>(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "t", "thought": true}]},
                "finishReason": "STOP", "index": 0, "avgLogprobs": -0.1,
                "safetyRatings": [], "citationMetadata": {"citations": []}}],
            "promptFeedback": {"blockReason": "OTHER", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 2, "totalTokenCount": 3,
                "trafficType": "ON_DEMAND", "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 1}]},
            "modelVersion": "gemini-2.5-flash", "responseId": "r", "createTime": "2025-01-01T00:00:00Z"
        }));
        round_trip::<ErrorResponse>(json!({"error": {"code": 429, "message": "m",
            "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "t"}]}}));
    }

    #[test]
    fn snake_case_names_are_accepted_on_input() {
        let r: GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{"content": {"parts": [{"function_call": {"name": "f"}, "thought_signature": "s"}]},
                "finish_reason": "MAX_TOKENS"}],
            "usage_metadata": {"prompt_token_count": 4, "thoughts_token_count": 2},
            "prompt_feedback": {"block_reason": "SAFETY"}
        }))
        .unwrap();
        let cand = &r.candidates[0];
        assert_eq!(cand.finish_reason.as_deref(), Some("MAX_TOKENS"));
        let part = &cand.content.as_ref().unwrap().parts[0];
        assert_eq!(part.function_call.as_ref().unwrap().name, "f");
        assert_eq!(part.thought_signature.as_deref(), Some("s"));
        let u = r.usage_metadata.unwrap();
        assert_eq!(
            (u.prompt_token_count, u.thoughts_token_count),
            (Some(4), Some(2))
        );
        assert_eq!(
            r.prompt_feedback.unwrap().block_reason.as_deref(),
            Some("SAFETY")
        );
    }
}
