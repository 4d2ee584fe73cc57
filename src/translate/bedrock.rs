//! OpenAI Chat Completions <-> Amazon Bedrock Converse translation.
//!
//! An OpenAI client in front of a Bedrock upstream:
//! * requests: [`chat_request_to_converse`] (the model id goes in the path:
//!   `/model/{modelId}/converse` or `/model/{modelId}/converse-stream`);
//! * responses: [`converse_response_to_chat`];
//! * streams: [`ConverseStreamToChat`] over messages of the
//!   [`EventStreamDecoder`](crate::stream::eventstream::EventStreamDecoder);
//! * errors: [`bedrock_error_to_openai`].
//!
//! Unknown members of the OpenAI request are not forwarded (Bedrock rejects members it
//! does not know); see the function docs for what is mapped.

use serde_json::{json, Map, Value};

use super::{parse_json, to_json, TranslateError};
use crate::stream::eventstream::Message as EventMessage;
use crate::tokens::usage::Usage;
use crate::wire::bedrock as br;
use crate::wire::openai as oa;

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// Translates an OpenAI `chat/completions` request body into a Bedrock Converse
/// request body. Returns the body and whether the client asked to stream (then the
/// request goes to `/converse-stream`).
///
/// * `system` / `developer` messages (wherever they appear) -> `system` text blocks.
/// * consecutive messages of the same role are merged; `tool` messages become
///   `toolResult` blocks of a user turn, placed before any other block of that turn.
/// * `image_url` parts must be `data:image/{png,jpeg,gif,webp};base64,` URLs (Bedrock
///   takes image bytes, not URLs); an `http(s)` URL is a 400.
/// * assistant `tool_calls` -> `toolUse` blocks (`arguments` must be a JSON object).
/// * a part's `cache_control` -> a `cachePoint` block after it.
/// * `max_completion_tokens` (else `max_tokens`), `temperature`, `top_p`, `stop` ->
///   `inferenceConfig`; `tools` -> `toolConfig.tools[].toolSpec`; `tool_choice`
///   `auto`/`required`/named -> `auto`/`any`/`tool`; `tool_choice: "none"` drops the
///   tools (Converse has no "none"; a conversation that already holds tool calls then
///   needs the tools, which Bedrock reports as a 400).
/// * the non-OpenAI extensions `top_k` and `thinking` go to
///   `additionalModelRequestFields` (as Anthropic models on Bedrock read them).
/// * `n > 1` and a `response_format` other than `text` are rejected (400); other
///   OpenAI-only parameters (`user`, penalties, `seed`, `parallel_tool_calls`,
///   `stream_options`, ...) are dropped.
pub fn chat_request_to_converse(body: &[u8]) -> Result<(Vec<u8>, bool), TranslateError> {
    let req = super::parse_single_text_chat(body)?;

    let mut system: Vec<br::ContentBlock> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<br::ContentBlock>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role.as_str() {
            "system" | "developer" => system.extend(text_only_blocks(msg.content.as_ref(), i)?),
            "user" => push_turn(&mut turns, "user", content_blocks(msg.content.as_ref(), i)?),
            "assistant" => push_turn(&mut turns, "assistant", assistant_blocks(msg, i)?),
            "tool" => push_turn(&mut turns, "user", vec![tool_result_block(msg, i)?]),
            other => {
                return Err(TranslateError::bad_request(
                    format!("unsupported message role `{other}`"),
                    Some(&format!("messages[{i}].role")),
                ))
            }
        }
    }
    if turns.is_empty() {
        return Err(TranslateError::bad_request(
            "messages must contain at least one user or assistant message",
            Some("messages"),
        ));
    }
    let messages = turns
        .into_iter()
        .map(|(role, mut content)| {
            if role == "user" {
                // toolResult blocks lead the user turn that answers the tool calls.
                content.sort_by_key(|b| b.tool_result.is_none());
            }
            br::Message {
                role: role.to_string(),
                content,
                rest: Map::new(),
            }
        })
        .collect();

    let stop_sequences = match req.stop {
        None => None,
        Some(oa::Stop::One(s)) => Some(vec![s]),
        Some(oa::Stop::Many(v)) if v.is_empty() => None,
        Some(oa::Stop::Many(v)) => Some(v),
    };
    let inference = br::InferenceConfig {
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences,
        rest: Map::new(),
    };
    let inference_config = (inference != br::InferenceConfig::default()).then_some(inference);

    let tool_config = match &req.tools {
        Some(tools) if !tools.is_empty() => {
            let tools = tools
                .iter()
                .enumerate()
                .map(|(j, t)| openai_tool_to_bedrock(t, j))
                .collect::<Result<Vec<_>, _>>()?;
            match &req.tool_choice {
                None => Some((tools, None)),
                Some(c) => openai_tool_choice_to_bedrock(c)?.map(|c| (tools, c)),
            }
        }
        _ => None,
    }
    .map(|(tools, tool_choice)| br::ToolConfig {
        tools,
        tool_choice,
        rest: Map::new(),
    });

    let mut additional = Map::new();
    for key in ["top_k", "thinking"] {
        if let Some(v) = req.rest.get(key).filter(|v| !v.is_null()) {
            additional.insert(key.to_string(), v.clone());
        }
    }

    let out = br::ConverseRequest {
        messages,
        system: (!system.is_empty()).then_some(system),
        inference_config,
        tool_config,
        additional_model_request_fields: (!additional.is_empty())
            .then_some(Value::Object(additional)),
        rest: Map::new(),
    };
    Ok((to_json(&out)?, req.stream == Some(true)))
}

/// Appends `blocks` to the conversation, merging into the previous turn when the role
/// repeats. Turns without any block are skipped.
fn push_turn(
    turns: &mut Vec<(&'static str, Vec<br::ContentBlock>)>,
    role: &'static str,
    blocks: Vec<br::ContentBlock>,
) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last_role, last)) if *last_role == role => last.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// Whether an OpenAI part asks for a cache checkpoint after it.
fn wants_cache_point(part: &oa::ContentPart) -> bool {
    part.rest.get("cache_control").is_some_and(|v| !v.is_null())
}

/// Content that may only hold text (system/developer messages). Empty texts are dropped.
fn text_only_blocks(
    content: Option<&oa::MessageContent>,
    i: usize,
) -> Result<Vec<br::ContentBlock>, TranslateError> {
    let mut blocks = Vec::new();
    for (t, part) in super::text_only(content, i)? {
        if !t.is_empty() {
            blocks.push(br::ContentBlock::text(t));
        }
        if part.is_some_and(wants_cache_point) {
            blocks.push(br::ContentBlock::cache_point());
        }
    }
    Ok(blocks)
}

/// Content of a user (or tool) message: text and images.
fn content_blocks(
    content: Option<&oa::MessageContent>,
    i: usize,
) -> Result<Vec<br::ContentBlock>, TranslateError> {
    let parts = match content {
        Some(oa::MessageContent::Parts(parts)) => parts,
        other => return text_only_blocks(other, i),
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        match part.kind.as_str() {
            "text" => match part.text.as_deref() {
                Some(t) => {
                    if !t.is_empty() {
                        blocks.push(br::ContentBlock::text(t));
                    }
                }
                None => {
                    return Err(TranslateError::bad_request(
                        "text part without `text`",
                        Some(&format!("messages[{i}].content[{j}].text")),
                    ))
                }
            },
            "image_url" => {
                let param = format!("messages[{i}].content[{j}].image_url");
                let url = part.image_url.as_ref().ok_or_else(|| {
                    TranslateError::bad_request("image_url part without `image_url`", Some(&param))
                })?;
                let image = image_block(&url.url)
                    .map_err(|m| TranslateError::bad_request(m, Some(&format!("{param}.url"))))?;
                blocks.push(br::ContentBlock {
                    image: Some(image),
                    ..br::ContentBlock::default()
                });
            }
            other => {
                return Err(TranslateError::bad_request(
                    format!("content part type `{other}` is not supported for this model"),
                    Some(&format!("messages[{i}].content[{j}].type")),
                ))
            }
        }
        if wants_cache_point(part) {
            blocks.push(br::ContentBlock::cache_point());
        }
    }
    Ok(blocks)
}

/// A Bedrock image block from an OpenAI image URL (base64 data URLs only).
fn image_block(url: &str) -> Result<br::ImageBlock, String> {
    let Some(rest) = url.strip_prefix("data:") else {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            return Err(
                "image URLs are not supported for this model (Bedrock needs the image bytes): \
                 send the image as a base64 data URL"
                    .to_string(),
            );
        }
        return Err("image URL must be a base64 data URL".to_string());
    };
    let (header, data) = rest
        .split_once(',')
        .ok_or_else(|| "malformed data URL".to_string())?;
    let media_type = header
        .strip_suffix(";base64")
        .ok_or_else(|| "only base64 data URLs are supported".to_string())?;
    let media_type = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let format = match media_type.as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "" => return Err("data URL without a media type".to_string()),
        other => {
            return Err(format!(
                "image type `{other}` is not supported (png, jpeg, gif, webp)"
            ))
        }
    };
    if data.is_empty() {
        return Err("data URL without data".to_string());
    }
    Ok(br::ImageBlock {
        format: format.to_string(),
        source: br::ImageSource {
            bytes: Some(data.to_string()),
            rest: Map::new(),
        },
        rest: Map::new(),
    })
}

fn assistant_blocks(
    msg: &oa::ChatMessage,
    i: usize,
) -> Result<Vec<br::ContentBlock>, TranslateError> {
    let mut blocks = Vec::new();
    match msg.content.as_ref() {
        None => {}
        Some(oa::MessageContent::Text(s)) if s.is_empty() => {}
        Some(oa::MessageContent::Text(s)) => blocks.push(br::ContentBlock::text(s.clone())),
        Some(oa::MessageContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                // Assistant parts are `text` or `refusal` (whose string is in `refusal`).
                let text = match part.kind.as_str() {
                    "text" => part.text.as_deref(),
                    "refusal" => part.rest.get("refusal").and_then(Value::as_str),
                    other => {
                        return Err(TranslateError::bad_request(
                            format!("assistant content part type `{other}` is not supported"),
                            Some(&format!("messages[{i}].content[{j}].type")),
                        ))
                    }
                };
                match text {
                    Some("") => {}
                    Some(t) => blocks.push(br::ContentBlock::text(t)),
                    None => {
                        return Err(TranslateError::bad_request(
                            "content part without text",
                            Some(&format!("messages[{i}].content[{j}]")),
                        ))
                    }
                }
            }
        }
    }
    for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
        let param = format!("messages[{i}].tool_calls[{j}].function.arguments");
        let input = super::parse_arguments(&call.function.arguments)
            .map_err(|m| TranslateError::bad_request(m, Some(&param)))?;
        blocks.push(br::ContentBlock {
            tool_use: Some(br::ToolUseBlock {
                tool_use_id: call.id.clone(),
                name: call.function.name.clone(),
                input,
                rest: Map::new(),
            }),
            ..br::ContentBlock::default()
        });
    }
    Ok(blocks)
}

fn tool_result_block(msg: &oa::ChatMessage, i: usize) -> Result<br::ContentBlock, TranslateError> {
    let id = super::tool_call_id(msg, i)?;
    let content = content_blocks(msg.content.as_ref(), i)?
        .into_iter()
        .filter_map(|b| match (b.text, b.image) {
            (Some(text), _) => Some(br::ToolResultContent {
                text: Some(text),
                ..br::ToolResultContent::default()
            }),
            (None, Some(image)) => Some(br::ToolResultContent {
                image: Some(image),
                ..br::ToolResultContent::default()
            }),
            // cache points have no place inside a tool result
            (None, None) => None,
        })
        .collect();
    Ok(br::ContentBlock {
        tool_result: Some(br::ToolResultBlock {
            tool_use_id: id.to_string(),
            content,
            status: None,
            rest: Map::new(),
        }),
        ..br::ContentBlock::default()
    })
}

fn openai_tool_to_bedrock(tool: &oa::Tool, j: usize) -> Result<br::Tool, TranslateError> {
    if tool.kind != "function" {
        return Err(TranslateError::bad_request(
            format!("tool type `{}` is not supported for this model", tool.kind),
            Some(&format!("tools[{j}].type")),
        ));
    }
    let f = tool.function.as_ref().ok_or_else(|| {
        TranslateError::bad_request(
            "function tool without `function`",
            Some(&format!("tools[{j}].function")),
        )
    })?;
    Ok(br::Tool {
        tool_spec: Some(br::ToolSpec {
            name: f.name.clone(),
            description: f.description.clone().filter(|d| !d.is_empty()),
            input_schema: br::InputSchema {
                json: f
                    .parameters
                    .clone()
                    .filter(|p| !p.is_null())
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                rest: Map::new(),
            },
            rest: Map::new(),
        }),
        rest: Map::new(),
    })
}

/// `Ok(None)` for `"none"`: the request is sent without tools.
fn openai_tool_choice_to_bedrock(
    choice: &oa::ToolChoice,
) -> Result<Option<Option<br::ToolChoice>>, TranslateError> {
    let empty = || Some(Value::Object(Map::new()));
    let out = match choice {
        oa::ToolChoice::Mode(m) => match m.as_str() {
            "auto" => br::ToolChoice {
                auto: empty(),
                ..br::ToolChoice::default()
            },
            "required" => br::ToolChoice {
                any: empty(),
                ..br::ToolChoice::default()
            },
            "none" => return Ok(None),
            other => {
                return Err(TranslateError::bad_request(
                    format!("unknown tool_choice `{other}`"),
                    Some("tool_choice"),
                ))
            }
        },
        oa::ToolChoice::Named(n) => {
            if n.kind != "function" {
                return Err(TranslateError::bad_request(
                    format!("tool_choice type `{}` is not supported", n.kind),
                    Some("tool_choice.type"),
                ));
            }
            br::ToolChoice {
                tool: Some(br::SpecificToolChoice {
                    name: n.function.name.clone(),
                    rest: Map::new(),
                }),
                ..br::ToolChoice::default()
            }
        }
    };
    Ok(Some(Some(out)))
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// Bedrock `stopReason` -> OpenAI `finish_reason`.
fn finish_reason_for(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence and anything new
        _ => "stop",
    }
}

/// Provider-neutral usage from Bedrock usage (whose `inputTokens` excludes cache reads
/// and writes).
pub fn usage_from_bedrock(u: &br::TokenUsage) -> Usage {
    crate::tokens::usage::AnthropicUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
        cache_creation_input_tokens: u.cache_write_input_tokens,
    }
    .to_usage()
}

/// OpenAI `usage` from provider-neutral usage.
fn openai_usage(u: &Usage) -> oa::ChatUsage {
    oa::ChatUsage {
        prompt_tokens: Some(u.input),
        completion_tokens: Some(u.output),
        total_tokens: Some(u.total()),
        prompt_tokens_details: Some(oa::PromptTokensDetails {
            cached_tokens: Some(u.cached_input),
            rest: Map::new(),
        }),
        completion_tokens_details: None,
        rest: Map::new(),
    }
}

/// A tool input serialised as OpenAI's JSON-string arguments.
fn arguments_string(input: &Value) -> String {
    match input {
        Value::Null => "{}".to_string(),
        v => serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string()),
    }
}

/// A deterministic completion id for a response body that carries none.
fn derived_id(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hash: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("chatcmpl-{}", hash.get(..24).unwrap_or(&hash))
}

/// Translates a Converse response into an OpenAI `chat.completion`, with an id derived
/// from the body (Converse responses carry none); see
/// [`converse_response_to_chat_with_id`] to use e.g. the `x-amzn-RequestId`.
pub fn converse_response_to_chat(
    body: &[u8],
    model_for_client: &str,
    created_unix: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    converse_response_to_chat_with_id(body, model_for_client, created_unix, &derived_id(body))
}

/// Translates a Converse response into an OpenAI `chat.completion` with the given id.
///
/// Text blocks are joined into `content` (`null` when the reply only calls tools),
/// `reasoningContent.reasoningText` into `reasoning_content`, `toolUse` blocks become
/// `tool_calls` (`arguments` = the JSON of `input`). `prompt_tokens` counts cache reads
/// and writes, `cached_tokens` the reads; the returned [`Usage`] has
/// `cache_creation_input` = `cacheWriteInputTokens`.
pub fn converse_response_to_chat_with_id(
    body: &[u8],
    model_for_client: &str,
    created_unix: u64,
    id: &str,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let resp: br::ConverseResponse = parse_json(body, 502, "Bedrock Converse response")?;
    let message = resp
        .output
        .as_ref()
        .and_then(|o| o.message.as_ref())
        .ok_or_else(|| TranslateError::bad_upstream("Converse response without output.message"))?;

    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        if let Some(t) = &block.text {
            has_text = true;
            text.push_str(t);
        }
        if let Some(r) = block
            .reasoning_content
            .as_ref()
            .and_then(|r| r.reasoning_text.as_ref())
        {
            reasoning.push_str(&r.text);
        }
        if let Some(u) = &block.tool_use {
            tool_calls.push(oa::ToolCall {
                id: u.tool_use_id.clone(),
                kind: "function".to_string(),
                function: oa::FunctionCall {
                    name: u.name.clone(),
                    arguments: arguments_string(&u.input),
                    rest: Map::new(),
                },
                rest: Map::new(),
            });
        }
    }

    let usage = resp
        .usage
        .as_ref()
        .map(usage_from_bedrock)
        .unwrap_or_default();
    let out = oa::ChatCompletion {
        id: id.to_string(),
        object: "chat.completion".to_string(),
        created: created_unix,
        model: model_for_client.to_string(),
        choices: vec![oa::Choice {
            index: 0,
            message: oa::ResponseMessage {
                role: "assistant".to_string(),
                content: (has_text || tool_calls.is_empty()).then_some(text),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                refusal: None,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                rest: Map::new(),
            },
            logprobs: None,
            finish_reason: resp
                .stop_reason
                .as_deref()
                .map(|r| finish_reason_for(r).to_string()),
            rest: Map::new(),
        }],
        usage: Some(openai_usage(&usage)),
        rest: Map::new(),
    };
    Ok((to_json(&out)?, usage))
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// HTTP status, OpenAI error type and OpenAI error code of a Bedrock error type (as in
/// `x-amzn-ErrorType` or a stream's `:exception-type`; compared case-insensitively).
/// Statuses are those of the Bedrock Runtime API reference.
fn error_class(error_type: &str) -> Option<(u16, &'static str, Option<&'static str>)> {
    let t = error_type.to_ascii_lowercase();
    Some(match t.as_str() {
        "validationexception" => (400, "invalid_request_error", None),
        "servicequotaexceededexception" => (400, "invalid_request_error", None),
        "accessdeniedexception" => (403, "permission_error", None),
        "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "expiredtokenexception"
        | "missingauthenticationtokenexception"
        | "incompletesignatureexception" => (403, "authentication_error", None),
        "resourcenotfoundexception" => (404, "invalid_request_error", None),
        "modeltimeoutexception" => (408, "server_error", None),
        "modelerrorexception" | "modelstreamerrorexception" => (424, "server_error", None),
        "throttlingexception" => (429, "rate_limit_error", Some("rate_limit_exceeded")),
        "modelnotreadyexception" => (429, "server_error", None),
        "internalserverexception" => (500, "server_error", None),
        "serviceunavailableexception" => (503, "server_error", None),
        _ => return None,
    })
}

/// OpenAI error type for a status without a known Bedrock error type.
fn error_kind_for_status(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if !(400..500).contains(&s) => "server_error",
        _ => "invalid_request_error",
    }
}

/// The bare error type: `ValidationException:http://internal...` and
/// `com.amazon.coral#ValidationException` -> `ValidationException`.
fn bare_error_type(raw: &str) -> &str {
    let t = raw.split(':').next().unwrap_or(raw);
    t.rsplit('#').next().unwrap_or(t).trim()
}

/// Translates a Bedrock error response (`{"message": ...}`, error type in the
/// `x-amzn-ErrorType` header or the body's `__type`) into an OpenAI error
/// (`{"error":{"message","type","param":null,"code"}}`) and the status for the client.
///
/// The status follows the error type (ThrottlingException 429, ValidationException
/// 400, AccessDeniedException 403, ResourceNotFoundException 404,
/// ModelTimeoutException 408, ModelErrorException 424, ModelNotReadyException 429,
/// InternalServerException 500, ServiceUnavailableException 503, ...); an unknown
/// type keeps the upstream status (502 if that is not an error status). `code` is
/// `rate_limit_exceeded` for throttling, else the Bedrock error type.
pub fn bedrock_error_to_openai(
    status: u16,
    body: &[u8],
    error_type_header: Option<&str>,
) -> (u16, Vec<u8>) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |names: &[&str]| -> Option<String> {
        let obj = parsed.as_ref()?.as_object()?;
        names
            .iter()
            .find_map(|n| obj.get(*n).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let error_type = error_type_header
        .map(bare_error_type)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .or_else(|| field(&["__type", "code", "Code"]).map(|t| bare_error_type(&t).to_string()));
    let message = field(&["message", "Message"])
        .unwrap_or_else(|| format!("upstream returned HTTP {status}"));
    let (status, value) = openai_error(status, error_type.as_deref(), &message);
    (status, serde_json::to_vec(&value).unwrap_or_default())
}

/// Status for the client and OpenAI error object of a Bedrock error.
fn openai_error(status: u16, error_type: Option<&str>, message: &str) -> (u16, Value) {
    let class = error_type.and_then(error_class);
    let (status, kind, code) = match class {
        Some((s, kind, code)) => (
            s,
            kind,
            code.map(str::to_string).or(error_type.map(str::to_string)),
        ),
        None => {
            let s = if (400..=599).contains(&status) {
                status
            } else {
                502
            };
            (s, error_kind_for_status(s), error_type.map(str::to_string))
        }
    };
    let value = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, value)
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/// Appends one OpenAI SSE event (`data: <json>\n\n`).
fn push_openai_sse<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    if let Ok(bytes) = serde_json::to_vec(value) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&bytes);
        out.extend_from_slice(b"\n\n");
    }
}

/// Translates the messages of a ConverseStream body (decoded with
/// [`EventStreamDecoder`](crate::stream::eventstream::EventStreamDecoder)) into OpenAI
/// `chat.completion.chunk` SSE events.
///
/// Feed every message to [`on_message`](Self::on_message); call
/// [`on_decode_error`](Self::on_decode_error) if the decoder fails and
/// [`finish`](Self::finish) when the upstream body ends. `messageStop` sends the
/// `finish_reason`; the following `metadata` event (usage) closes the stream: a usage
/// chunk when `include_usage`, then `data: [DONE]`. An exception message
/// (`:message-type` `exception`/`error`) becomes an error chunk
/// `data: {"error":{...}}` and ends the stream.
#[derive(Debug)]
pub struct ConverseStreamToChat {
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    usage: Option<br::TokenUsage>,
    /// (Bedrock content block index, OpenAI tool call index) of each toolUse block.
    tool_blocks: Vec<(u32, u32)>,
    finish_sent: bool,
    done: bool,
    /// Streamed text (content, tool arguments, reasoning), for an output estimate.
    estimator: crate::tokens::estimate::TokenEstimator,
    first_content: bool,
    error: Option<String>,
}

impl ConverseStreamToChat {
    /// True once a delta with content has been seen (time to first token).
    pub fn first_content_seen(&self) -> bool {
        self.first_content
    }

    /// Output tokens estimated from the streamed text (when `metadata` never comes).
    pub fn estimated_output_tokens(&self) -> u64 {
        self.estimator.estimate()
    }

    /// The exception or error type the stream ended with.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// `include_usage` mirrors the client's `stream_options.include_usage`. The chunk
    /// id is `chatcmpl-bedrock-<created>` unless set with [`with_id`](Self::with_id).
    pub fn new(model_for_client: &str, created_unix: u64, include_usage: bool) -> Self {
        ConverseStreamToChat {
            model: model_for_client.to_string(),
            id: format!("chatcmpl-bedrock-{created_unix}"),
            created: created_unix,
            include_usage,
            usage: None,
            tool_blocks: Vec::new(),
            finish_sent: false,
            done: false,
            estimator: crate::tokens::estimate::TokenEstimator::new(),
            first_content: false,
            error: None,
        }
    }

    /// Sets the id of every chunk (e.g. `chatcmpl-<x-amzn-RequestId>`).
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = id.to_string();
        self
    }

    /// Whether the stream has been closed (`[DONE]` or an error chunk sent).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Exact usage reported by the `metadata` event (`None` before it).
    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(usage_from_bedrock)
    }

    /// Handles one eventstream message, appending OpenAI SSE bytes to `out`.
    pub fn on_message(&mut self, msg: &EventMessage<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match msg.message_type() {
            Some("exception") => {
                let kind = msg.exception_type().unwrap_or("exception");
                self.error.get_or_insert_with(|| kind.to_string());
                let message = serde_json::from_slice::<Value>(msg.payload)
                    .ok()
                    .and_then(|v| {
                        ["message", "Message"]
                            .iter()
                            .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_string))
                    })
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("upstream stream exception `{kind}`"));
                self.push_error(out, Some(kind), &message);
                return;
            }
            Some("error") => {
                let code = msg.header_str(":error-code");
                self.error
                    .get_or_insert_with(|| code.unwrap_or("error").to_string());
                let message = msg
                    .header_str(":error-message")
                    .filter(|m| !m.is_empty())
                    .unwrap_or("upstream stream error");
                self.push_error(out, code, message);
                return;
            }
            // `event`, or no type: an event
            _ => {}
        }
        let event = msg.event_type().unwrap_or_default();
        let payload = msg.payload;
        match event {
            "messageStart" => {
                let delta = oa::ChunkDelta {
                    role: Some("assistant".to_string()),
                    content: Some(String::new()),
                    ..oa::ChunkDelta::default()
                };
                self.push_chunk(out, delta, None);
            }
            "contentBlockStart" => {
                let Some(ev) = parse_event::<br::ContentBlockStartEvent>(event, payload) else {
                    return;
                };
                let Some(tool) = ev.start.and_then(|s| s.tool_use) else {
                    return;
                };
                let tool_index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                self.tool_blocks.push((ev.content_block_index, tool_index));
                let call = oa::ToolCallChunk {
                    index: tool_index,
                    id: Some(tool.tool_use_id),
                    kind: Some("function".to_string()),
                    function: Some(oa::FunctionCallChunk {
                        name: Some(tool.name),
                        arguments: Some(String::new()),
                        rest: Map::new(),
                    }),
                    rest: Map::new(),
                };
                let delta = oa::ChunkDelta {
                    tool_calls: Some(vec![call]),
                    ..oa::ChunkDelta::default()
                };
                self.push_chunk(out, delta, None);
            }
            "contentBlockDelta" => {
                let Some(ev) = parse_event::<br::ContentBlockDeltaEvent>(event, payload) else {
                    return;
                };
                let Some(delta) = ev.delta else { return };
                for text in [
                    delta.text.as_deref(),
                    delta.tool_use.as_ref().map(|t| t.input.as_str()),
                    delta
                        .reasoning_content
                        .as_ref()
                        .and_then(|r| r.text.as_deref()),
                ]
                .into_iter()
                .flatten()
                .filter(|t| !t.is_empty())
                {
                    self.estimator.push(text);
                    self.first_content = true;
                }
                if let Some(t) = delta.text.filter(|t| !t.is_empty()) {
                    self.push_delta(
                        out,
                        oa::ChunkDelta {
                            content: Some(t),
                            ..oa::ChunkDelta::default()
                        },
                    );
                }
                if let Some(t) = delta
                    .reasoning_content
                    .and_then(|r| r.text)
                    .filter(|t| !t.is_empty())
                {
                    self.push_delta(
                        out,
                        oa::ChunkDelta {
                            reasoning_content: Some(t),
                            ..oa::ChunkDelta::default()
                        },
                    );
                }
                if let Some(input) = delta.tool_use.map(|u| u.input).filter(|i| !i.is_empty()) {
                    let Some(&(_, tool_index)) = self
                        .tool_blocks
                        .iter()
                        .find(|(b, _)| *b == ev.content_block_index)
                    else {
                        return;
                    };
                    let call = oa::ToolCallChunk {
                        index: tool_index,
                        function: Some(oa::FunctionCallChunk {
                            name: None,
                            arguments: Some(input),
                            rest: Map::new(),
                        }),
                        ..oa::ToolCallChunk::default()
                    };
                    self.push_delta(
                        out,
                        oa::ChunkDelta {
                            tool_calls: Some(vec![call]),
                            ..oa::ChunkDelta::default()
                        },
                    );
                }
            }
            "messageStop" => {
                let reason = parse_event::<br::MessageStopEvent>(event, payload)
                    .and_then(|e| e.stop_reason)
                    .unwrap_or_default();
                let finish = finish_reason_for(&reason).to_string();
                self.push_chunk(out, oa::ChunkDelta::default(), Some(finish));
                self.finish_sent = true;
            }
            "metadata" => {
                if let Some(u) =
                    parse_event::<br::MetadataEvent>(event, payload).and_then(|e| e.usage)
                {
                    self.usage = Some(u);
                }
                if self.finish_sent {
                    self.close(out);
                }
            }
            // contentBlockStop and unknown events carry nothing for the client
            _ => {}
        }
    }

    /// Reports a framing error of the upstream body (e.g. an
    /// [`EventStreamError`](crate::stream::eventstream::EventStreamError)) as an error chunk
    /// and ends the stream. Does nothing once closed.
    pub fn on_decode_error(&mut self, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.push_error(
            out,
            None,
            &format!("invalid upstream event stream: {message}"),
        );
    }

    /// Ends the stream when the upstream body ended. After a `finish_reason` the stream
    /// is closed normally (usage chunk if known and asked for, `[DONE]`); before one,
    /// the client gets an error chunk, as the response is incomplete. Does nothing once
    /// closed.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.finish_sent {
            self.close(out);
        } else {
            self.push_error(
                out,
                None,
                "upstream stream ended before the response was complete",
            );
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            if let Some(u) = self.usage() {
                let chunk = oa::ChatCompletionChunk {
                    usage: Some(openai_usage(&u)),
                    ..self.chunk_base()
                };
                push_openai_sse(out, &chunk);
            }
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn push_error(&mut self, out: &mut Vec<u8>, error_type: Option<&str>, message: &str) {
        let (_, value) = openai_error(502, error_type, message);
        push_openai_sse(out, &value);
        self.done = true;
    }

    fn chunk_base(&self) -> oa::ChatCompletionChunk {
        oa::ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_string(),
            created: self.created,
            model: self.model.clone(),
            ..oa::ChatCompletionChunk::default()
        }
    }

    fn push_chunk(&self, out: &mut Vec<u8>, delta: oa::ChunkDelta, finish_reason: Option<String>) {
        let chunk = oa::ChatCompletionChunk {
            choices: vec![oa::ChunkChoice {
                index: 0,
                delta,
                finish_reason,
                rest: Map::new(),
            }],
            ..self.chunk_base()
        };
        push_openai_sse(out, &chunk);
    }

    fn push_delta(&self, out: &mut Vec<u8>, delta: oa::ChunkDelta) {
        self.push_chunk(out, delta, None);
    }
}

/// Parses an event payload; an unparseable one is logged and skipped.
fn parse_event<T: serde::de::DeserializeOwned>(event: &str, payload: &[u8]) -> Option<T> {
    match serde_json::from_slice(payload) {
        Ok(v) => Some(v),
        Err(e) => {
            log::warn!("ignoring unparseable Bedrock stream event `{event}`: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::eventstream::{encode_message, EventStreamDecoder, HeaderValue};
    use proptest::prelude::*;

    fn v(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn req(body: &str) -> Value {
        v(&chat_request_to_converse(body.as_bytes()).unwrap().0)
    }

    #[test]
    fn stream_flag_and_minimal_body() {
        let (body, stream) = chat_request_to_converse(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert!(stream);
        assert_eq!(
            v(&body),
            json!({"messages":[{"role":"user","content":[{"text":"hi"}]}]})
        );
    }

    #[test]
    fn tool_choice_none_drops_tools_and_no_tools_drops_choice() {
        let out = req(
            r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"none",
            "tools":[{"type":"function","function":{"name":"f"}}]}"#,
        );
        assert!(out.get("toolConfig").is_none());
        let out = req(r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}"#);
        assert!(out.get("toolConfig").is_none());
    }

    #[test]
    fn extensions_go_to_additional_fields() {
        let out = req(r#"{"messages":[{"role":"user","content":"x"}],"top_k":5,
            "thinking":{"type":"enabled","budget_tokens":2048},"seed":1,"user":"u"}"#);
        assert_eq!(
            out["additionalModelRequestFields"],
            json!({"top_k":5,"thinking":{"type":"enabled","budget_tokens":2048}})
        );
        assert!(out.get("seed").is_none() && out.get("user").is_none());
    }

    #[test]
    fn client_input_errors_name_the_param() {
        let cases: &[(&str, &str)] = &[
            (r#"{"messages":[]}"#, "messages"),
            (
                r#"{"messages":[{"role":"critic","content":"s"}]}"#,
                "messages[0].role",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/tiff;base64,AAAA"}}]}]}"#,
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}"#,
                "messages[0].content[0].image_url.url",
            ),
            (
                r#"{"messages":[{"role":"tool","content":"r"}]}"#,
                "messages[0].tool_call_id",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search"}]}"#,
                "tools[0].type",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}"#,
                "tool_choice",
            ),
        ];
        for (body, param) in cases {
            let err = chat_request_to_converse(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(err.param.as_deref(), Some(*param), "{err}");
        }
    }

    #[test]
    fn response_id_is_derived_or_given() {
        let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":"end_turn"}"#;
        let (a, _) = converse_response_to_chat(body, "m", 1).unwrap();
        let (b, _) = converse_response_to_chat(body, "m", 1).unwrap();
        assert_eq!(a, b);
        assert!(v(&a)["id"].as_str().unwrap().starts_with("chatcmpl-"));
        let (c, u) = converse_response_to_chat_with_id(body, "m", 1, "chatcmpl-req1").unwrap();
        assert_eq!(v(&c)["id"], "chatcmpl-req1");
        assert_eq!(u, Usage::default());
        let err = converse_response_to_chat(br#"{"stopReason":"end_turn"}"#, "m", 1).unwrap_err();
        assert_eq!(err.status, 502);
    }

    #[test]
    fn error_type_sources() {
        let (s, b) = bedrock_error_to_openai(
            400,
            br#"{"message":"bad"}"#,
            Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        );
        assert_eq!(s, 400);
        assert_eq!(v(&b)["error"]["code"], "ValidationException");
        let (s, b) = bedrock_error_to_openai(
            400,
            br#"{"__type":"com.amazon.coral.availability#ThrottlingException","Message":"slow down"}"#,
            None,
        );
        assert_eq!(s, 429);
        assert_eq!(
            v(&b),
            json!({"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}})
        );
        let (s, b) = bedrock_error_to_openai(418, b"<html>", None);
        assert_eq!(s, 418);
        assert_eq!(v(&b)["error"]["message"], "upstream returned HTTP 418");
        let (s, _) = bedrock_error_to_openai(200, b"", Some("SomethingNewException"));
        assert_eq!(s, 502);
    }

    fn frame(headers: &[(&str, &str)], payload: &str) -> Vec<u8> {
        let h: Vec<(&str, HeaderValue<'_>)> = headers
            .iter()
            .map(|(n, v)| (*n, HeaderValue::String(v)))
            .collect();
        encode_message(&h, payload.as_bytes()).unwrap()
    }

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        frame(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload,
        )
    }

    fn run(body: &[u8], include_usage: bool) -> (String, Option<Usage>) {
        let mut s = ConverseStreamToChat::new("m", 7, include_usage).with_id("id");
        let mut out = Vec::new();
        let mut d = EventStreamDecoder::new();
        let mut msgs_out = Vec::new();
        let r = d.feed(body, |m| s.on_message(m, &mut msgs_out));
        out.extend(msgs_out);
        if let Err(e) = r.and(d.finish()) {
            s.on_decode_error(&e.to_string(), &mut out);
        }
        s.finish(&mut out);
        (String::from_utf8(out).unwrap(), s.usage())
    }

    #[test]
    fn stream_closes_after_metadata_and_ignores_later_events() {
        let mut body = event("messageStart", r#"{"role":"assistant"}"#);
        body.extend(event("messageStop", r#"{"stopReason":"end_turn"}"#));
        body.extend(event(
            "metadata",
            r#"{"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7},"metrics":{"latencyMs":1}}"#,
        ));
        body.extend(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"late"}}"#,
        ));
        let (out, usage) = run(&body, false);
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert!(!out.contains("late"));
        assert_eq!(out.matches("[DONE]").count(), 1);
        assert_eq!(usage.map(|u| (u.input, u.output)), Some((3, 4)));
    }

    #[test]
    fn decode_errors_and_error_messages_end_the_stream() {
        let mut body = event("messageStart", r#"{"role":"assistant"}"#);
        let mut bad = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        body.extend(bad);
        let (out, _) = run(&body, true);
        assert!(out.contains("invalid upstream event stream"), "{out}");
        assert!(!out.contains("[DONE]"));

        let body = frame(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            "",
        );
        let (out, _) = run(&body, true);
        assert_eq!(
            out,
            "data: {\"error\":{\"code\":\"InternalFailure\",\"message\":\"boom\",\"param\":null,\"type\":\"server_error\"}}\n\n"
        );
    }

    #[test]
    fn finish_after_stop_without_metadata_closes_normally() {
        let mut body = event("messageStart", r#"{"role":"assistant"}"#);
        body.extend(event("messageStop", r#"{"stopReason":"max_tokens"}"#));
        let (out, usage) = run(&body, true);
        assert!(out.contains(r#""finish_reason":"length""#));
        assert!(out.ends_with("data: [DONE]\n\n"));
        assert_eq!(usage, None);
    }

    /// Arbitrary JSON values, biased towards the shapes the translators look at.
    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("role".to_string()),
            Just("content".to_string()),
            Just("type".to_string()),
            Just("messages".to_string()),
            Just("text".to_string()),
            Just("tool_calls".to_string()),
            Just("function".to_string()),
            Just("arguments".to_string()),
            Just("image_url".to_string()),
            Just("url".to_string()),
            Just("tools".to_string()),
            Just("tool_choice".to_string()),
            Just("tool_call_id".to_string()),
            Just("output".to_string()),
            Just("message".to_string()),
            Just("toolUse".to_string()),
            Just("input".to_string()),
            Just("usage".to_string()),
            Just("inputTokens".to_string()),
            Just("stopReason".to_string()),
            Just("delta".to_string()),
            Just("start".to_string()),
            Just("contentBlockIndex".to_string()),
            Just("reasoningContent".to_string()),
            Just("__type".to_string()),
            "[a-zA-Z_]{1,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            prop_oneof![
                Just("user".to_string()),
                Just("assistant".to_string()),
                Just("tool".to_string()),
                Just("system".to_string()),
                Just("text".to_string()),
                Just("image_url".to_string()),
                Just("function".to_string()),
                Just("data:image/png;base64,AAAA".to_string()),
                Just("https://x/y.png".to_string()),
                Just("{\"a\":1}".to_string()),
                Just("end_turn".to_string()),
                Just("tool_use".to_string()),
                ".{0,12}",
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn exercise(bytes: &[u8]) {
        let _ = chat_request_to_converse(bytes);
        let _ = converse_response_to_chat(bytes, "m", 0);
        let _ = bedrock_error_to_openai(500, bytes, None);
        let _ = bedrock_error_to_openai(400, bytes, std::str::from_utf8(bytes).ok());
        let text = std::str::from_utf8(bytes).unwrap_or("x");
        let mut s = ConverseStreamToChat::new("m", 0, true);
        let mut out = Vec::new();
        for kind in [
            "messageStart",
            "contentBlockStart",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata",
        ] {
            let msg = EventMessage {
                headers: vec![(":event-type", HeaderValue::String(kind))],
                payload: bytes,
            };
            s.on_message(&msg, &mut out);
        }
        let msg = EventMessage {
            headers: vec![
                (":message-type", HeaderValue::String("exception")),
                (":exception-type", HeaderValue::String(text)),
            ],
            payload: bytes,
        };
        s.on_message(&msg, &mut out);
        s.finish(&mut out);
        let _ = s.usage();
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            exercise(&bytes);
        }

        #[test]
        fn random_json_never_panics(value in arb_json()) {
            exercise(&serde_json::to_vec(&value).unwrap());
            for envelope in [
                json!({"messages": [value.clone()]}),
                json!({"messages": [{"role": "user", "content": [value.clone()]}]}),
                json!({"messages": [{"role": "assistant", "tool_calls": [value.clone()]}]}),
                json!({"messages": [{"role": "user", "content": "x"}], "tools": [value.clone()], "tool_choice": value.clone()}),
                json!({"output": {"message": {"content": [value.clone()]}}, "usage": value.clone()}),
                json!({"contentBlockIndex": 0, "delta": value.clone(), "start": value.clone()}),
            ] {
                exercise(&serde_json::to_vec(&envelope).unwrap());
            }
        }

        #[test]
        fn deeply_nested_json_never_panics(depth in 1usize..4000) {
            let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            exercise(body.as_bytes());
            let body = format!("{{\"messages\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            exercise(body.as_bytes());
        }
    }
}
