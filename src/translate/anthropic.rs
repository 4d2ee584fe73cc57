//! OpenAI Chat Completions <-> Anthropic Messages translation.
//!
//! * A: an OpenAI client in front of an Anthropic upstream:
//!   [`chat_request_to_messages`], [`messages_response_to_chat`], [`MessagesToChatStream`].
//! * B: an Anthropic client in front of an OpenAI(-compatible) upstream:
//!   [`messages_request_to_chat`], [`chat_response_to_messages`], [`ChatToMessagesStream`].
//! * C: error bodies: [`anthropic_error_to_openai`], [`openai_error_to_anthropic`].
//!
//! Unknown members of the source payload are not forwarded to the other API (each
//! rejects members it does not know); see the function docs for what is mapped.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{parse_json, to_json, TranslateError};
use crate::fastjson::walk::JsonStr;
use crate::stream::anthropic::{text_delta, DeltaKind, TextDelta};
use crate::stream::openai_chunk::{text_chunk_after, TextChunk, TextChunkPrefix};
use crate::tokens::usage::Usage;
use crate::wire::anthropic as an;
use crate::wire::openai as oa;

// ---------------------------------------------------------------------------
// A. OpenAI client -> Anthropic upstream
// ---------------------------------------------------------------------------

/// Translates an OpenAI `chat/completions` request body into an Anthropic
/// `messages` request body for `upstream_model`.
///
/// * `system` / `developer` messages (wherever they appear) -> `system`: a string
///   for a single text, text blocks otherwise (a part's `cache_control` is kept).
/// * consecutive messages of the same Anthropic role are merged (the API requires
///   alternation); `tool` messages become `tool_result` blocks of a user turn, placed
///   before any text of that turn.
/// * `image_url` parts: `http(s)` URLs -> `url` sources, `data:<type>;base64,` URLs ->
///   `base64` sources.
/// * assistant `tool_calls` -> `tool_use` blocks (`arguments` must be a JSON object).
/// * `max_completion_tokens`, else `max_tokens`, else `default_max_tokens`;
///   `stop` -> `stop_sequences`; `temperature`, `top_p`, `stream` as is;
///   `tools`, `tool_choice`, `parallel_tool_calls: false` -> `disable_parallel_tool_use`;
///   `user` -> `metadata.user_id`. The non-OpenAI extensions `top_k` and `thinking`
///   are passed through.
/// * `n > 1` and `response_format` other than `text` are rejected (400); other
///   OpenAI-only parameters (penalties, `seed`, `logprobs`, `stream_options`, ...)
///   are dropped.
///
/// The usual request (text messages, no tools) is translated without serde
/// (`chat_request`), to the same bytes; everything else, errors included, here.
pub fn chat_request_to_messages(
    body: &[u8],
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<Vec<u8>, TranslateError> {
    if let Some(out) =
        super::chat_request::chat_request_to_messages(body, upstream_model, default_max_tokens)
    {
        return Ok(out);
    }
    chat_request_to_messages_serde(body, upstream_model, default_max_tokens)
}

/// [`chat_request_to_messages`] with serde alone.
pub(crate) fn chat_request_to_messages_serde(
    body: &[u8],
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<Vec<u8>, TranslateError> {
    let req = super::parse_single_text_chat(body)?;

    let mut system: Vec<an::ContentBlock> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<an::ContentBlock>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role.as_str() {
            "system" | "developer" => {
                system.extend(text_only_blocks(msg.content.as_ref(), i)?);
            }
            "user" => push_turn(&mut turns, "user", user_blocks(msg, i)?),
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
        .map(|(role, mut blocks)| {
            if role == "user" {
                // tool_result blocks must lead the user turn that answers a tool call.
                blocks.sort_by_key(|b| b.kind != "tool_result");
            }
            an::Message {
                role: role.to_string(),
                content: blocks_to_content(blocks),
                rest: Map::new(),
            }
        })
        .collect();

    let system = match system.len() {
        0 => None,
        1 if is_plain_text(system.first()) => system
            .into_iter()
            .next()
            .and_then(|b| b.text)
            .map(an::SystemPrompt::Text),
        _ => Some(an::SystemPrompt::Blocks(system)),
    };

    let stop_sequences = match req.stop {
        None => None,
        Some(oa::Stop::One(s)) => Some(vec![s]),
        Some(oa::Stop::Many(v)) if v.is_empty() => None,
        Some(oa::Stop::Many(v)) => Some(v),
    };

    let tools = match &req.tools {
        Some(tools) if !tools.is_empty() => Some(
            tools
                .iter()
                .enumerate()
                .map(|(j, t)| openai_tool_to_anthropic(t, j))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };

    let tool_choice = if tools.is_some() {
        let mut choice = match &req.tool_choice {
            None => None,
            Some(c) => Some(openai_tool_choice_to_anthropic(c)?),
        };
        if req.parallel_tool_calls == Some(false) {
            let c = choice.get_or_insert_with(|| an::ToolChoice {
                kind: "auto".to_string(),
                ..an::ToolChoice::default()
            });
            if c.kind != "none" {
                c.disable_parallel_tool_use = Some(true);
            }
        }
        choice
    } else {
        None
    };

    let out = an::MessagesRequest {
        model: Some(upstream_model.to_string()),
        system,
        messages,
        max_tokens: Some(
            req.max_completion_tokens
                .or(req.max_tokens)
                .unwrap_or(default_max_tokens),
        ),
        stop_sequences,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req
            .rest
            .get("top_k")
            .and_then(Value::as_u64)
            .and_then(|k| u32::try_from(k).ok()),
        stream: req.stream,
        tools,
        tool_choice,
        metadata: req.user.map(|u| an::Metadata {
            user_id: Some(u),
            rest: Map::new(),
        }),
        thinking: req.rest.get("thinking").filter(|v| !v.is_null()).cloned(),
        rest: Map::new(),
    };
    to_json(&out)
}

/// Appends `blocks` to the conversation, merging into the previous turn when the
/// role repeats. Turns left without any block are skipped.
fn push_turn(
    turns: &mut Vec<(&'static str, Vec<an::ContentBlock>)>,
    role: &'static str,
    blocks: Vec<an::ContentBlock>,
) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last_role, last)) if *last_role == role => last.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

/// A text block with nothing but its text (may be written as a plain string).
fn is_plain_text(block: Option<&an::ContentBlock>) -> bool {
    matches!(block, Some(b) if b.kind == "text"
        && b.cache_control.is_none()
        && b.rest.is_empty()
        && b.text.is_some())
}

fn blocks_to_content(blocks: Vec<an::ContentBlock>) -> an::MessageContent {
    if blocks.len() == 1 && is_plain_text(blocks.first()) {
        if let Some(text) = blocks.into_iter().next().and_then(|b| b.text) {
            return an::MessageContent::Text(text);
        }
        return an::MessageContent::Blocks(Vec::new());
    }
    an::MessageContent::Blocks(blocks)
}

/// A text block from an OpenAI text part, keeping a `cache_control` marker.
fn text_block(text: &str, part: Option<&oa::ContentPart>) -> an::ContentBlock {
    let mut block = an::ContentBlock::text(text);
    block.cache_control = part
        .and_then(|p| p.rest.get("cache_control"))
        .filter(|v| !v.is_null())
        .cloned();
    block
}

/// Content that may only hold text (system/developer messages). Empty texts are dropped.
fn text_only_blocks(
    content: Option<&oa::MessageContent>,
    i: usize,
) -> Result<Vec<an::ContentBlock>, TranslateError> {
    Ok(super::text_only(content, i)?
        .into_iter()
        .filter(|(t, _)| !t.is_empty())
        .map(|(t, part)| text_block(t, part))
        .collect())
}

/// Content of a user message (or of a tool message): text and images.
fn user_content_blocks(
    content: Option<&oa::MessageContent>,
    i: usize,
) -> Result<Vec<an::ContentBlock>, TranslateError> {
    let parts = match content {
        Some(oa::MessageContent::Parts(parts)) => parts,
        other => return text_only_blocks(other, i),
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        match part.kind.as_str() {
            "text" => match part.text.as_deref() {
                Some("") => {}
                Some(t) => blocks.push(text_block(t, Some(part))),
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
                let source = image_source(&url.url)
                    .map_err(|m| TranslateError::bad_request(m, Some(&format!("{param}.url"))))?;
                let mut block = an::ContentBlock {
                    kind: "image".to_string(),
                    source: Some(source),
                    ..an::ContentBlock::default()
                };
                block.cache_control = part
                    .rest
                    .get("cache_control")
                    .filter(|v| !v.is_null())
                    .cloned();
                blocks.push(block);
            }
            other => {
                return Err(TranslateError::bad_request(
                    format!("content part type `{other}` is not supported for this model"),
                    Some(&format!("messages[{i}].content[{j}].type")),
                ))
            }
        }
    }
    Ok(blocks)
}

fn user_blocks(msg: &oa::ChatMessage, i: usize) -> Result<Vec<an::ContentBlock>, TranslateError> {
    user_content_blocks(msg.content.as_ref(), i)
}

/// An Anthropic image source from an OpenAI image URL.
fn image_source(url: &str) -> Result<an::ImageSource, String> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (header, data) = rest
            .split_once(',')
            .ok_or_else(|| "malformed data URL".to_string())?;
        let media_type = header
            .strip_suffix(";base64")
            .ok_or_else(|| "only base64 data URLs are supported".to_string())?;
        let media_type = media_type.split(';').next().unwrap_or_default();
        if media_type.is_empty() {
            return Err("data URL without a media type".to_string());
        }
        return Ok(an::ImageSource {
            kind: "base64".to_string(),
            media_type: Some(media_type.to_string()),
            data: Some(data.to_string()),
            ..an::ImageSource::default()
        });
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        return Ok(an::ImageSource {
            kind: "url".to_string(),
            url: Some(url.to_string()),
            ..an::ImageSource::default()
        });
    }
    Err("image URL must be http(s) or a base64 data URL".to_string())
}

fn assistant_blocks(
    msg: &oa::ChatMessage,
    i: usize,
) -> Result<Vec<an::ContentBlock>, TranslateError> {
    let mut blocks = Vec::new();
    match msg.content.as_ref() {
        None => {}
        Some(oa::MessageContent::Text(s)) if s.is_empty() => {}
        Some(oa::MessageContent::Text(s)) => blocks.push(text_block(s, None)),
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
                    Some(t) => blocks.push(text_block(t, Some(part))),
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
        blocks.push(an::ContentBlock {
            kind: "tool_use".to_string(),
            id: Some(call.id.clone()),
            name: Some(call.function.name.clone()),
            input: Some(input),
            ..an::ContentBlock::default()
        });
    }
    Ok(blocks)
}

fn tool_result_block(msg: &oa::ChatMessage, i: usize) -> Result<an::ContentBlock, TranslateError> {
    let id = super::tool_call_id(msg, i)?;
    let content = match msg.content.as_ref() {
        None => None,
        Some(oa::MessageContent::Text(s)) => Some(an::ToolResultContent::Text(s.clone())),
        Some(c @ oa::MessageContent::Parts(_)) => Some(an::ToolResultContent::Blocks(
            user_content_blocks(Some(c), i)?,
        )),
    };
    Ok(an::ContentBlock {
        kind: "tool_result".to_string(),
        tool_use_id: Some(id.to_string()),
        content,
        ..an::ContentBlock::default()
    })
}

fn openai_tool_to_anthropic(tool: &oa::Tool, j: usize) -> Result<an::Tool, TranslateError> {
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
    Ok(an::Tool {
        kind: None,
        name: f.name.clone(),
        description: f.description.clone(),
        input_schema: Some(
            f.parameters
                .clone()
                .filter(|p| !p.is_null())
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        ),
        cache_control: tool
            .rest
            .get("cache_control")
            .filter(|v| !v.is_null())
            .cloned(),
        rest: Map::new(),
    })
}

fn openai_tool_choice_to_anthropic(
    choice: &oa::ToolChoice,
) -> Result<an::ToolChoice, TranslateError> {
    let (kind, name) = match choice {
        oa::ToolChoice::Mode(m) => match m.as_str() {
            "auto" => ("auto", None),
            "required" => ("any", None),
            "none" => ("none", None),
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
            ("tool", Some(n.function.name.clone()))
        }
    };
    Ok(an::ToolChoice {
        kind: kind.to_string(),
        name,
        ..an::ToolChoice::default()
    })
}

/// Anthropic `stop_reason` -> OpenAI `finish_reason`.
pub(super) fn finish_reason_for(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new
        _ => "stop",
    }
}

/// Provider-neutral usage from Anthropic usage (whose `input_tokens` excludes cache
/// reads and writes).
fn usage_from_anthropic(u: &an::MessagesUsage) -> Usage {
    crate::tokens::usage::AnthropicUsage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cache_read_input_tokens: u.cache_read_input_tokens,
        cache_creation_input_tokens: u.cache_creation_input_tokens,
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

/// Translates an Anthropic `message` response into an OpenAI `chat.completion`.
///
/// Text blocks are joined into `content` (`null` when the reply only calls tools),
/// `thinking` blocks into `reasoning_content`, `tool_use` blocks become `tool_calls`.
/// `prompt_tokens` counts cache reads and writes; `cached_tokens` the reads. The
/// returned [`Usage`] has `cache_creation_input` set.
///
/// The usual answer (text blocks) is translated without serde (`messages_response`), to
/// the same bytes; everything else, errors included, here.
pub fn messages_response_to_chat(
    body: &[u8],
    model_for_client: &str,
    created_unix: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    if let Some(out) =
        super::messages_response::messages_response_to_chat(body, model_for_client, created_unix)
    {
        return Ok(out);
    }
    messages_response_to_chat_serde(body, model_for_client, created_unix)
}

/// [`messages_response_to_chat`] with serde alone.
pub(crate) fn messages_response_to_chat_serde(
    body: &[u8],
    model_for_client: &str,
    created_unix: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let resp: an::MessagesResponse = parse_json(body, 502, "Anthropic messages response")?;
    if resp.kind == "error" {
        let message = resp
            .rest
            .get("error")
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        return Err(TranslateError::bad_upstream(format!(
            "upstream error: {message}"
        )));
    }

    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in &resp.content {
        match block.kind.as_str() {
            "text" => {
                has_text = true;
                text.push_str(block.text.as_deref().unwrap_or_default());
            }
            "thinking" => reasoning.push_str(block.thinking.as_deref().unwrap_or_default()),
            "tool_use" => tool_calls.push(oa::ToolCall {
                id: block.id.clone().unwrap_or_default(),
                kind: "function".to_string(),
                function: oa::FunctionCall {
                    name: block.name.clone().unwrap_or_default(),
                    arguments: arguments_string(block.input.as_ref()),
                    rest: Map::new(),
                },
                rest: Map::new(),
            }),
            // redacted_thinking, server tool blocks, ...: nothing to show in OpenAI's shape
            _ => {}
        }
    }

    let usage = usage_from_anthropic(&resp.usage);
    let out = oa::ChatCompletion {
        id: resp.id,
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

/// A `tool_use` input serialised as OpenAI's JSON-string arguments.
fn arguments_string(input: Option<&Value>) -> String {
    match input {
        None | Some(Value::Null) => "{}".to_string(),
        Some(v) => serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string()),
    }
}

/// Appends one OpenAI SSE event (`data: <json>\n\n`).
fn push_openai_sse<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    if let Ok(bytes) = serde_json::to_vec(value) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&bytes);
        out.extend_from_slice(b"\n\n");
    }
}

/// OpenAI error object for an Anthropic error type.
fn openai_error_value(message: &str, anthropic_type: Option<&str>, status: u16) -> Value {
    let kind = match anthropic_type {
        Some("invalid_request_error" | "request_too_large" | "not_found_error") => {
            "invalid_request_error"
        }
        Some("authentication_error") => "authentication_error",
        Some("permission_error") => "permission_error",
        Some("rate_limit_error") => "rate_limit_error",
        Some("api_error" | "overloaded_error" | "timeout_error") => "server_error",
        _ if status >= 500 || status == 0 => "server_error",
        _ => "invalid_request_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": anthropic_type}})
}

/// Translates an Anthropic event stream into OpenAI `chat.completion.chunk` events.
///
/// Feed every SSE event with [`on_event`](Self::on_event); call
/// [`finish`](Self::finish) when the upstream body ends. Chunks share the id of the
/// Anthropic message (or `id_hint` when `message_start` carries none).
#[derive(Debug)]
pub struct MessagesToChatStream {
    model: String,
    id: String,
    created: u64,
    include_usage: bool,
    usage: Option<an::MessagesUsage>,
    /// (Anthropic block index, OpenAI tool call index) of each tool_use block.
    tool_blocks: Vec<(u32, u32)>,
    finish_sent: bool,
    done: bool,
    /// `data: {"id":…,"model":…,"choices":[{"index":0,"delta":{` of the text chunks,
    /// made on first use and again when the id changes.
    text_prefix: Vec<u8>,
}

impl MessagesToChatStream {
    /// `include_usage` mirrors the client's `stream_options.include_usage`: when
    /// set, a last chunk with empty `choices` carries the usage.
    pub fn new(
        model_for_client: &str,
        id_hint: &str,
        created_unix: u64,
        include_usage: bool,
    ) -> Self {
        MessagesToChatStream {
            model: model_for_client.to_string(),
            id: id_hint.to_string(),
            created: created_unix,
            include_usage,
            usage: None,
            tool_blocks: Vec::new(),
            finish_sent: false,
            done: false,
            text_prefix: Vec::new(),
        }
    }

    /// Handles one Anthropic SSE event (`event` is its `event:` name, may be empty;
    /// `data` its data), appending the OpenAI SSE bytes to `out`.
    pub fn on_event(&mut self, event: &str, data: &str, out: &mut Vec<u8>) {
        self.on_event_read(event, data, text_delta(event, data).as_ref(), out);
    }

    /// [`Self::on_event`] for an event already given to [`text_delta`] (`delta` is what
    /// it answered). Text deltas, most of a stream, are read and written without serde.
    pub(crate) fn on_event_read(
        &mut self,
        event: &str,
        data: &str,
        delta: Option<&TextDelta<'_>>,
        out: &mut Vec<u8>,
    ) {
        if self.done {
            return;
        }
        if let Some(d) = delta {
            if !d.text.text.is_empty() {
                let literal = d.text.is_plain().then_some(d.text.literal);
                let field = match d.kind {
                    DeltaKind::Text => TextField::Content,
                    DeltaKind::Thinking => TextField::Reasoning,
                };
                self.push_text(out, field, &d.text.text, literal);
            }
            return;
        }
        let ev: an::StreamEvent = match serde_json::from_str(data) {
            Ok(ev) => ev,
            Err(e) => {
                if event != "ping" {
                    log::warn!("ignoring unparseable Anthropic stream event `{event}`: {e}");
                }
                return;
            }
        };
        let kind = if event.is_empty() {
            ev.kind.as_str()
        } else {
            event
        };
        match kind {
            "message_start" => {
                if let Some(msg) = &ev.message {
                    if !msg.id.is_empty() && msg.id != self.id {
                        self.id = msg.id.clone();
                        self.text_prefix.clear();
                    }
                    self.merge_usage(&msg.usage);
                }
                let delta = oa::ChunkDelta {
                    role: Some("assistant".to_string()),
                    content: Some(String::new()),
                    ..oa::ChunkDelta::default()
                };
                self.push_chunk(out, delta, None);
            }
            "content_block_start" => {
                let Some(block) = &ev.content_block else {
                    return;
                };
                let index = ev.index.unwrap_or(0);
                match block.kind.as_str() {
                    "tool_use" => {
                        let tool_index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                        self.tool_blocks.push((index, tool_index));
                        let arguments = match &block.input {
                            Some(Value::Object(m)) if !m.is_empty() => {
                                arguments_string(block.input.as_ref())
                            }
                            _ => String::new(),
                        };
                        let call = oa::ToolCallChunk {
                            index: tool_index,
                            id: block.id.clone(),
                            kind: Some("function".to_string()),
                            function: Some(oa::FunctionCallChunk {
                                name: block.name.clone(),
                                arguments: Some(arguments),
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
                    "text" => {
                        if let Some(t) = block.text.as_deref().filter(|t| !t.is_empty()) {
                            self.push_content(out, t);
                        }
                    }
                    "thinking" => {
                        if let Some(t) = block.thinking.as_deref().filter(|t| !t.is_empty()) {
                            self.push_reasoning(out, t);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(delta) = &ev.delta else { return };
                match delta.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(t) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                            self.push_content(out, t);
                        }
                    }
                    Some("thinking_delta") => {
                        if let Some(t) = delta.thinking.as_deref().filter(|t| !t.is_empty()) {
                            self.push_reasoning(out, t);
                        }
                    }
                    Some("input_json_delta") => {
                        let index = ev.index.unwrap_or(0);
                        let Some(&(_, tool_index)) =
                            self.tool_blocks.iter().find(|(b, _)| *b == index)
                        else {
                            return;
                        };
                        let Some(json) = delta.partial_json.as_deref().filter(|j| !j.is_empty())
                        else {
                            return;
                        };
                        let call = oa::ToolCallChunk {
                            index: tool_index,
                            function: Some(oa::FunctionCallChunk {
                                name: None,
                                arguments: Some(json.to_string()),
                                rest: Map::new(),
                            }),
                            ..oa::ToolCallChunk::default()
                        };
                        let delta = oa::ChunkDelta {
                            tool_calls: Some(vec![call]),
                            ..oa::ChunkDelta::default()
                        };
                        self.push_chunk(out, delta, None);
                    }
                    // signature_delta, citations_delta, ...
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = &ev.usage {
                    self.merge_usage(u);
                }
                if let Some(reason) = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref()) {
                    let finish = finish_reason_for(reason).to_string();
                    self.push_chunk(out, oa::ChunkDelta::default(), Some(finish));
                    self.finish_sent = true;
                }
            }
            "message_stop" => self.close(out),
            "error" => {
                let (kind, message) = match &ev.error {
                    Some(e) => (Some(e.kind.as_str()), e.message.as_str()),
                    None => (None, "upstream stream error"),
                };
                push_openai_sse(out, &openai_error_value(message, kind, 0));
                self.done = true;
            }
            // ping, content_block_stop and unknown events carry nothing for the client
            _ => {}
        }
    }

    /// Ends the stream when the upstream body ended. After a `finish_reason` the
    /// stream is closed normally (usage chunk, `[DONE]`); before one, the client gets
    /// an error chunk, as the response is incomplete. Does nothing once closed.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.finish_sent {
            self.close(out);
        } else {
            push_openai_sse(
                out,
                &openai_error_value(
                    "upstream stream ended before the response was complete",
                    None,
                    502,
                ),
            );
            self.done = true;
        }
    }

    /// Exact usage reported by `message_start` and `message_delta` (`None` before either).
    pub fn usage(&self) -> Option<Usage> {
        self.usage.as_ref().map(usage_from_anthropic)
    }

    fn merge_usage(&mut self, u: &an::MessagesUsage) {
        let acc = self.usage.get_or_insert_with(an::MessagesUsage::default);
        // message_delta values are cumulative: a reported value replaces the previous one.
        if u.input_tokens.is_some() {
            acc.input_tokens = u.input_tokens;
        }
        if u.output_tokens.is_some() {
            acc.output_tokens = u.output_tokens;
        }
        if u.cache_read_input_tokens.is_some() {
            acc.cache_read_input_tokens = u.cache_read_input_tokens;
        }
        if u.cache_creation_input_tokens.is_some() {
            acc.cache_creation_input_tokens = u.cache_creation_input_tokens;
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

    fn push_content(&mut self, out: &mut Vec<u8>, text: &str) {
        self.push_text(out, TextField::Content, text, None);
    }

    fn push_reasoning(&mut self, out: &mut Vec<u8>, text: &str) {
        self.push_text(out, TextField::Reasoning, text, None);
    }

    /// Writes the chunk whose delta holds just `text` — the bytes serde_json writes for
    /// it (`push_chunk`), from a prefix made once per stream. `literal` is `text` as a
    /// JSON string literal without escapes, when the caller has one to copy.
    fn push_text(
        &mut self,
        out: &mut Vec<u8>,
        field: TextField,
        text: &str,
        literal: Option<&str>,
    ) {
        if self.text_prefix.is_empty() {
            let p = &mut self.text_prefix;
            p.extend_from_slice(b"data: {\"id\":");
            // Writing a string into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *p, &self.id);
            p.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
            p.extend_from_slice(self.created.to_string().as_bytes());
            p.extend_from_slice(b",\"model\":");
            let _ = serde_json::to_writer(&mut *p, &self.model);
            p.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{");
        }
        out.extend_from_slice(&self.text_prefix);
        out.extend_from_slice(match field {
            TextField::Content => b"\"content\":",
            TextField::Reasoning => b"\"reasoning_content\":",
        });
        match literal {
            Some(l) => out.extend_from_slice(l.as_bytes()),
            None => {
                let _ = serde_json::to_writer(&mut *out, text);
            }
        }
        out.extend_from_slice(b"},\"finish_reason\":null}]}\n\n");
    }
}

/// The delta member a text chunk fills.
#[derive(Debug, Clone, Copy)]
enum TextField {
    Content,
    Reasoning,
}

// ---------------------------------------------------------------------------
// B. Anthropic client -> OpenAI upstream
// ---------------------------------------------------------------------------

/// Which OpenAI member carries Anthropic's `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_completion_tokens`: current OpenAI name, required by reasoning models.
    #[default]
    MaxCompletionTokens,
    /// `max_tokens`: the deprecated name, for compatible servers that only know it.
    MaxTokens,
}

/// Translates an Anthropic `messages` request into an OpenAI `chat/completions`
/// request for `upstream_model`, sending `max_tokens` as `max_completion_tokens`.
/// See [`messages_request_to_chat_with`].
pub fn messages_request_to_chat(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    messages_request_to_chat_with(body, upstream_model, MaxTokensField::default())
}

/// Translates an Anthropic `messages` request into an OpenAI `chat/completions` request.
///
/// * `system` -> a leading system message (text parts when it has several blocks).
/// * text / image blocks -> content parts (base64 images become data URLs);
///   `tool_use` -> assistant `tool_calls`; `tool_result` -> `tool` messages placed
///   before the rest of their user turn; `thinking` blocks are dropped.
/// * `tools` (client tools only; server tools are rejected), `tool_choice`
///   (`any` -> `required`, `tool` -> named function), `disable_parallel_tool_use` ->
///   `parallel_tool_calls: false`, `stop_sequences` -> `stop`, `temperature`,
///   `top_p`, `metadata.user_id` -> `user`, `stream` -> `stream` with
///   `stream_options.include_usage`. `top_k` and `thinking` have no OpenAI
///   equivalent and are dropped.
///
/// The usual request (text turns, no tools) is translated without serde
/// (`messages_request`), to the same bytes; everything else, errors included, here.
pub fn messages_request_to_chat_with(
    body: &[u8],
    upstream_model: &str,
    max_tokens_field: MaxTokensField,
) -> Result<Vec<u8>, TranslateError> {
    if let Some(out) =
        super::messages_request::messages_request_to_chat(body, upstream_model, max_tokens_field)
    {
        return Ok(out);
    }
    messages_request_to_chat_serde(body, upstream_model, max_tokens_field)
}

/// [`messages_request_to_chat_with`] with serde alone.
pub(crate) fn messages_request_to_chat_serde(
    body: &[u8],
    upstream_model: &str,
    max_tokens_field: MaxTokensField,
) -> Result<Vec<u8>, TranslateError> {
    let req: an::MessagesRequest = parse_json(body, 400, "messages request")?;

    let mut messages = Vec::new();
    match &req.system {
        None => {}
        Some(an::SystemPrompt::Text(s)) if s.is_empty() => {}
        Some(an::SystemPrompt::Text(s)) => {
            messages.push(chat_message(
                "system",
                Some(oa::MessageContent::Text(s.clone())),
            ));
        }
        Some(an::SystemPrompt::Blocks(blocks)) => {
            let mut parts = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                match (b.kind.as_str(), b.text.as_deref()) {
                    ("text", Some(t)) => parts.push(text_part(t)),
                    _ => {
                        return Err(TranslateError::bad_request(
                            format!("system block type `{}` is not supported", b.kind),
                            Some(&format!("system[{j}].type")),
                        ))
                    }
                }
            }
            if let Some(content) = parts_to_content(parts) {
                messages.push(chat_message("system", Some(content)));
            }
        }
    }

    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role.as_str() {
            "user" => user_to_chat(&msg.content, i, &mut messages)?,
            "assistant" => messages.push(assistant_to_chat(&msg.content, i)?),
            other => {
                return Err(TranslateError::bad_request(
                    format!("unsupported message role `{other}`"),
                    Some(&format!("messages[{i}].role")),
                ))
            }
        }
    }

    let tools = match &req.tools {
        Some(tools) if !tools.is_empty() => Some(
            tools
                .iter()
                .enumerate()
                .map(|(j, t)| anthropic_tool_to_openai(t, j))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    let (tool_choice, parallel_tool_calls) = match (&tools, &req.tool_choice) {
        (Some(_), Some(c)) => {
            let choice = match c.kind.as_str() {
                "auto" => oa::ToolChoice::Mode("auto".to_string()),
                "any" => oa::ToolChoice::Mode("required".to_string()),
                "none" => oa::ToolChoice::Mode("none".to_string()),
                "tool" => {
                    let name = c.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
                        TranslateError::bad_request(
                            "tool_choice `tool` without `name`",
                            Some("tool_choice.name"),
                        )
                    })?;
                    oa::ToolChoice::Named(oa::NamedToolChoice {
                        kind: "function".to_string(),
                        function: oa::NamedFunction {
                            name,
                            rest: Map::new(),
                        },
                        rest: Map::new(),
                    })
                }
                other => {
                    return Err(TranslateError::bad_request(
                        format!("unknown tool_choice type `{other}`"),
                        Some("tool_choice.type"),
                    ))
                }
            };
            let parallel = (c.disable_parallel_tool_use == Some(true)).then_some(false);
            (Some(choice), parallel)
        }
        _ => (None, None),
    };

    let streaming = req.stream == Some(true);
    let (max_tokens, max_completion_tokens) = match max_tokens_field {
        MaxTokensField::MaxTokens => (req.max_tokens, None),
        MaxTokensField::MaxCompletionTokens => (None, req.max_tokens),
    };
    let out = oa::ChatCompletionRequest {
        model: Some(upstream_model.to_string()),
        messages,
        max_tokens,
        max_completion_tokens,
        stop: req
            .stop_sequences
            .filter(|s| !s.is_empty())
            .map(oa::Stop::Many),
        temperature: req.temperature,
        top_p: req.top_p,
        n: None,
        stream: req.stream,
        stream_options: streaming.then(|| oa::StreamOptions {
            include_usage: Some(true),
            rest: Map::new(),
        }),
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format: None,
        user: req.metadata.and_then(|m| m.user_id),
        rest: Map::new(),
    };
    to_json(&out)
}

fn chat_message(role: &str, content: Option<oa::MessageContent>) -> oa::ChatMessage {
    oa::ChatMessage {
        role: role.to_string(),
        content,
        ..oa::ChatMessage::default()
    }
}

fn text_part(text: &str) -> oa::ContentPart {
    oa::ContentPart {
        kind: "text".to_string(),
        text: Some(text.to_string()),
        ..oa::ContentPart::default()
    }
}

/// A single text part is sent as a plain string; no parts means no content.
fn parts_to_content(parts: Vec<oa::ContentPart>) -> Option<oa::MessageContent> {
    match parts.as_slice() {
        [] => None,
        [only] if only.kind == "text" => only.text.clone().map(oa::MessageContent::Text),
        _ => Some(oa::MessageContent::Parts(parts)),
    }
}

fn image_part(block: &an::ContentBlock, param: &str) -> Result<oa::ContentPart, TranslateError> {
    let source = block
        .source
        .as_ref()
        .ok_or_else(|| TranslateError::bad_request("image block without `source`", Some(param)))?;
    let url = match (
        source.kind.as_str(),
        &source.media_type,
        &source.data,
        &source.url,
    ) {
        ("base64", Some(mt), Some(data), _) => format!("data:{mt};base64,{data}"),
        ("url", _, _, Some(url)) => url.clone(),
        (other, ..) => {
            return Err(TranslateError::bad_request(
                format!("image source type `{other}` is not supported for this model"),
                Some(&format!("{param}.source")),
            ))
        }
    };
    Ok(oa::ContentPart {
        kind: "image_url".to_string(),
        image_url: Some(oa::ImageUrl {
            url,
            detail: None,
            rest: Map::new(),
        }),
        ..oa::ContentPart::default()
    })
}

/// A user turn: its `tool_result` blocks become `tool` messages, the rest one user message.
fn user_to_chat(
    content: &an::MessageContent,
    i: usize,
    messages: &mut Vec<oa::ChatMessage>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        an::MessageContent::Text(s) => {
            messages.push(chat_message(
                "user",
                Some(oa::MessageContent::Text(s.clone())),
            ));
            return Ok(());
        }
        an::MessageContent::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match block.kind.as_str() {
            "text" => parts.push(text_part(block.text.as_deref().unwrap_or_default())),
            "image" => parts.push(image_part(block, &param)?),
            "tool_result" => {
                let id = block
                    .tool_use_id
                    .clone()
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| {
                        TranslateError::bad_request(
                            "tool_result without `tool_use_id`",
                            Some(&format!("{param}.tool_use_id")),
                        )
                    })?;
                let text = match &block.content {
                    None => String::new(),
                    Some(an::ToolResultContent::Text(s)) => s.clone(),
                    Some(an::ToolResultContent::Blocks(inner)) => {
                        let mut texts = Vec::new();
                        for (k, b) in inner.iter().enumerate() {
                            match (b.kind.as_str(), b.text.as_deref()) {
                                ("text", Some(t)) => texts.push(t),
                                _ => {
                                    return Err(TranslateError::bad_request(
                                        format!(
                                            "tool_result content block type `{}` is not supported for this model",
                                            b.kind
                                        ),
                                        Some(&format!("{param}.content[{k}].type")),
                                    ))
                                }
                            }
                        }
                        texts.join("\n")
                    }
                };
                messages.push(oa::ChatMessage {
                    role: "tool".to_string(),
                    content: Some(oa::MessageContent::Text(text)),
                    tool_call_id: Some(id),
                    ..oa::ChatMessage::default()
                });
            }
            // Reasoning of earlier turns cannot be replayed to another provider.
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(TranslateError::bad_request(
                    format!("content block type `{other}` is not supported for this model"),
                    Some(&format!("{param}.type")),
                ))
            }
        }
    }
    if let Some(content) = parts_to_content(parts) {
        messages.push(chat_message("user", Some(content)));
    }
    Ok(())
}

fn assistant_to_chat(
    content: &an::MessageContent,
    i: usize,
) -> Result<oa::ChatMessage, TranslateError> {
    let blocks = match content {
        an::MessageContent::Text(s) => {
            return Ok(chat_message(
                "assistant",
                Some(oa::MessageContent::Text(s.clone())),
            ))
        }
        an::MessageContent::Blocks(blocks) => blocks,
    };
    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block.kind.as_str() {
            "text" => {
                has_text = true;
                text.push_str(block.text.as_deref().unwrap_or_default());
            }
            "tool_use" => tool_calls.push(oa::ToolCall {
                id: block.id.clone().unwrap_or_default(),
                kind: "function".to_string(),
                function: oa::FunctionCall {
                    name: block.name.clone().unwrap_or_default(),
                    arguments: arguments_string(block.input.as_ref()),
                    rest: Map::new(),
                },
                rest: Map::new(),
            }),
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(TranslateError::bad_request(
                    format!(
                        "assistant content block type `{other}` is not supported for this model"
                    ),
                    Some(&format!("messages[{i}].content[{j}].type")),
                ))
            }
        }
    }
    let content = (has_text || tool_calls.is_empty()).then_some(oa::MessageContent::Text(text));
    Ok(oa::ChatMessage {
        role: "assistant".to_string(),
        content,
        tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        ..oa::ChatMessage::default()
    })
}

fn anthropic_tool_to_openai(tool: &an::Tool, j: usize) -> Result<oa::Tool, TranslateError> {
    match tool.kind.as_deref() {
        None | Some("custom") => {}
        Some(other) => {
            return Err(TranslateError::bad_request(
                format!("server tool `{other}` is not supported for this model"),
                Some(&format!("tools[{j}].type")),
            ))
        }
    }
    Ok(oa::Tool {
        kind: "function".to_string(),
        function: Some(oa::FunctionDef {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: tool.input_schema.clone(),
            strict: None,
            rest: Map::new(),
        }),
        rest: Map::new(),
    })
}

/// OpenAI `finish_reason` -> Anthropic `stop_reason`.
pub(super) fn stop_reason_for(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic usage from provider-neutral usage (`input_tokens` excludes cache reads).
fn anthropic_usage(u: &Usage) -> an::MessagesUsage {
    an::MessagesUsage {
        input_tokens: Some(u.input.saturating_sub(u.cached_input)),
        cache_creation_input_tokens: Some(0),
        cache_read_input_tokens: Some(u.cached_input),
        output_tokens: Some(u.output),
        rest: Map::new(),
    }
}

fn usage_from_openai(u: &oa::ChatUsage) -> Usage {
    let input = u.prompt_tokens.unwrap_or(0);
    Usage {
        input,
        output: u
            .completion_tokens
            .unwrap_or_else(|| u.total_tokens.unwrap_or(0).saturating_sub(input)),
        cached_input: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        cache_creation_input: 0,
        reasoning: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
        estimated: false,
    }
}

/// The members of an OpenAI `chat.completion` that its Anthropic translation reads.
/// Reading the whole [`oa::ChatCompletion`] kept every other member in flattened `rest`
/// maps (each value buffered, then built) only to drop them, and refused an answer
/// whose unread members had unexpected types (a string `created`). Members not read
/// here are skipped as serde skips unknown ones: validated as JSON, not typed.
#[derive(Deserialize)]
struct CompletionRead {
    #[serde(default)]
    id: String,
    #[serde(default)]
    choices: Vec<ChoiceRead>,
    #[serde(default)]
    usage: Option<oa::ChatUsage>,
}

#[derive(Deserialize)]
struct ChoiceRead {
    #[serde(default)]
    message: MessageRead,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct MessageRead {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<oa::ToolCall>>,
}

/// Translates an OpenAI `chat.completion` into an Anthropic `message`.
///
/// `reasoning_content` -> a `thinking` block (empty signature), content -> a `text`
/// block, `refusal` -> a `text` block with `stop_reason: "refusal"`, `tool_calls` ->
/// `tool_use` blocks. The returned [`Usage`] is all zero when the upstream reported
/// none.
///
/// The usual answer (a text, no tool calls) is translated without serde
/// (`chat_response`), to the same bytes; everything else, errors included, here.
pub fn chat_response_to_messages(
    body: &[u8],
    model_for_client: &str,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    if let Some(out) = super::chat_response::chat_response_to_messages(body, model_for_client) {
        return Ok(out);
    }
    chat_response_to_messages_serde(body, model_for_client)
}

/// [`chat_response_to_messages`] with serde alone.
pub(crate) fn chat_response_to_messages_serde(
    body: &[u8],
    model_for_client: &str,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let resp: CompletionRead = parse_json(body, 502, "chat completion response")?;
    let choice = resp
        .choices
        .first()
        .ok_or_else(|| TranslateError::bad_upstream("chat completion response has no choices"))?;
    let msg = &choice.message;

    let mut content = Vec::new();
    if let Some(r) = msg.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
        content.push(an::ContentBlock {
            kind: "thinking".to_string(),
            thinking: Some(r.to_string()),
            signature: Some(String::new()),
            ..an::ContentBlock::default()
        });
    }
    if let Some(t) = msg.content.as_deref().filter(|t| !t.is_empty()) {
        content.push(an::ContentBlock::text(t));
    }
    let refusal = msg.refusal.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = refusal {
        content.push(an::ContentBlock::text(r));
    }
    for (j, call) in msg.tool_calls.iter().flatten().enumerate() {
        let input = super::parse_arguments(&call.function.arguments).map_err(|m| {
            TranslateError::bad_upstream(format!("choices[0].message.tool_calls[{j}]: {m}"))
        })?;
        content.push(an::ContentBlock {
            kind: "tool_use".to_string(),
            id: Some(call.id.clone()),
            name: Some(call.function.name.clone()),
            input: Some(input),
            ..an::ContentBlock::default()
        });
    }

    let stop_reason = if refusal.is_some() {
        "refusal"
    } else {
        stop_reason_for(choice.finish_reason.as_deref().unwrap_or_default())
    };
    let usage = resp
        .usage
        .as_ref()
        .map(usage_from_openai)
        .unwrap_or_default();
    let out = an::MessagesResponse {
        id: resp.id.clone(),
        kind: "message".to_string(),
        role: "assistant".to_string(),
        model: model_for_client.to_string(),
        content,
        stop_reason: Some(stop_reason.to_string()),
        stop_sequence: None,
        usage: anthropic_usage(&usage),
        rest: Map::new(),
    };
    Ok((to_json(&out)?, usage))
}

/// Appends one Anthropic SSE event (`event: <type>\ndata: <json>\n\n`).
/// Writes the `text_delta` event that [`push_anthropic_sse`] writes for `text` — the same
/// bytes, without building the event: its JSON literal is copied when it has no escapes
/// (serde_json would write it unchanged), else its value is written by serde_json.
fn push_text_delta(out: &mut Vec<u8>, index: u32, text: &JsonStr<'_>) {
    out.extend_from_slice(
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
    );
    out.extend_from_slice(index.to_string().as_bytes());
    out.extend_from_slice(b",\"delta\":{\"type\":\"text_delta\",\"text\":");
    if text.is_plain() {
        out.extend_from_slice(text.literal.as_bytes());
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text.text.as_ref());
    }
    out.extend_from_slice(b"}}\n\n");
}

fn push_anthropic_sse(out: &mut Vec<u8>, event: &an::StreamEvent) {
    if let Ok(bytes) = serde_json::to_vec(event) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&bytes);
        out.extend_from_slice(b"\n\n");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text(u32),
    Thinking(u32),
    /// (OpenAI tool call index, Anthropic block index)
    Tool(u32, u32),
}

impl OpenBlock {
    fn index(self) -> u32 {
        match self {
            OpenBlock::Text(i) | OpenBlock::Thinking(i) | OpenBlock::Tool(_, i) => i,
        }
    }
}

/// Translates an OpenAI chunk stream into Anthropic stream events.
///
/// Feed the data of every SSE event (including `[DONE]`) to
/// [`on_event`](Self::on_event); call [`finish`](Self::finish) when the upstream body
/// ends. `message_start` is sent with the first chunk; the closing `message_delta`
/// (stop reason and usage) waits for the usage chunk, i.e. for `[DONE]` or the end
/// of the body, so the upstream request should set `stream_options.include_usage`
/// (as [`messages_request_to_chat`] does).
#[derive(Debug)]
pub struct ChatToMessagesStream {
    model: String,
    id: String,
    started: bool,
    open: Option<OpenBlock>,
    next_block: u32,
    stop_reason: Option<&'static str>,
    usage: Option<Usage>,
    done: bool,
    /// Where the fast reader takes the next chunk up (the members before `choices`,
    /// which the chunks of one stream repeat).
    chunk_prefix: TextChunkPrefix,
}

impl ChatToMessagesStream {
    /// `id_hint` is the message id used when the upstream chunks carry none.
    pub fn new(model_for_client: &str, id_hint: &str) -> Self {
        ChatToMessagesStream {
            model: model_for_client.to_string(),
            id: id_hint.to_string(),
            started: false,
            open: None,
            next_block: 0,
            stop_reason: None,
            usage: None,
            done: false,
            chunk_prefix: TextChunkPrefix::default(),
        }
    }

    /// Handles the data of one OpenAI SSE event, appending Anthropic SSE bytes to `out`.
    pub fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        self.on_event_with(data, out, true);
    }

    /// [`Self::on_event`]; the usual content chunk is read and written without serde
    /// when `fast` (tests compare the two ways).
    fn on_event_with(&mut self, data: &str, out: &mut Vec<u8>, fast: bool) {
        let read = fast.then(|| self.read_chunk(data)).flatten();
        self.on_event_read(data, read, out);
    }

    /// The usual content chunk read without serde (`None` for any other event), to be
    /// given to [`Self::on_event_read`] and, as its [`TextChunk::content_chunk`], to the
    /// stream observer.
    pub(crate) fn read_chunk<'a>(&mut self, data: &'a str) -> Option<TextChunk<'a>> {
        text_chunk_after(data, &mut self.chunk_prefix)
    }

    /// [`Self::on_event`] for an event [`Self::read_chunk`] has read (`read`, what it
    /// answered).
    pub(crate) fn on_event_read(
        &mut self,
        data: &str,
        read: Option<TextChunk<'_>>,
        out: &mut Vec<u8>,
    ) {
        if self.done {
            return;
        }
        if data.trim() == "[DONE]" {
            self.close(out);
            return;
        }
        if let Some(chunk) = read {
            if let Some(id) = chunk.id.filter(|id| !id.text.is_empty() && !self.started) {
                self.id = id.text.into_owned();
            }
            if chunk.usage.is_some() {
                self.usage = chunk.usage;
            }
            self.start(out);
            if let Some(text) = chunk.content.filter(|t| !t.text.is_empty()) {
                let index = self.ensure_block(
                    out,
                    |o| matches!(o, OpenBlock::Text(_)),
                    |i| (OpenBlock::Text(i), an::ContentBlock::text("")),
                );
                push_text_delta(out, index, &text);
            }
            if let Some(reason) = chunk.finish_reason {
                if self.stop_reason != Some("refusal") {
                    self.stop_reason = Some(stop_reason_for(&reason.text));
                }
            }
            return;
        }
        let chunk: oa::ChatCompletionChunk = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("ignoring unparseable chat completion chunk: {e}");
                return;
            }
        };
        if let Some(err) = &chunk.error {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .unwrap_or("upstream stream error");
            self.push_error(out, "api_error", message);
            return;
        }
        if !chunk.id.is_empty() && !self.started {
            self.id = chunk.id.clone();
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(usage_from_openai(u));
        }
        self.start(out);
        for choice in chunk.choices.iter().filter(|c| c.index == 0) {
            let delta = &choice.delta;
            if let Some(r) = delta.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                let index = self.ensure_block(
                    out,
                    |o| matches!(o, OpenBlock::Thinking(_)),
                    |i| {
                        (
                            OpenBlock::Thinking(i),
                            an::ContentBlock {
                                kind: "thinking".to_string(),
                                thinking: Some(String::new()),
                                signature: Some(String::new()),
                                ..an::ContentBlock::default()
                            },
                        )
                    },
                );
                self.push_delta(
                    out,
                    index,
                    an::StreamDelta {
                        kind: Some("thinking_delta".to_string()),
                        thinking: Some(r.to_string()),
                        ..an::StreamDelta::default()
                    },
                );
            }
            for text in [delta.content.as_deref(), delta.refusal.as_deref()]
                .into_iter()
                .flatten()
                .filter(|t| !t.is_empty())
            {
                let index = self.ensure_block(
                    out,
                    |o| matches!(o, OpenBlock::Text(_)),
                    |i| (OpenBlock::Text(i), an::ContentBlock::text("")),
                );
                self.push_delta(
                    out,
                    index,
                    an::StreamDelta {
                        kind: Some("text_delta".to_string()),
                        text: Some(text.to_string()),
                        ..an::StreamDelta::default()
                    },
                );
            }
            if delta.refusal.as_deref().is_some_and(|r| !r.is_empty()) {
                self.stop_reason = Some("refusal");
            }
            for call in delta.tool_calls.iter().flatten() {
                let function = call.function.as_ref();
                let index = self.ensure_block(
                    out,
                    |o| matches!(o, OpenBlock::Tool(t, _) if t == call.index),
                    |i| {
                        (
                            OpenBlock::Tool(call.index, i),
                            an::ContentBlock {
                                kind: "tool_use".to_string(),
                                id: Some(call.id.clone().unwrap_or_else(|| format!("toolu_{i}"))),
                                name: Some(
                                    function.and_then(|f| f.name.clone()).unwrap_or_default(),
                                ),
                                input: Some(Value::Object(Map::new())),
                                ..an::ContentBlock::default()
                            },
                        )
                    },
                );
                if let Some(args) = function
                    .and_then(|f| f.arguments.as_deref())
                    .filter(|a| !a.is_empty())
                {
                    self.push_delta(
                        out,
                        index,
                        an::StreamDelta {
                            kind: Some("input_json_delta".to_string()),
                            partial_json: Some(args.to_string()),
                            ..an::StreamDelta::default()
                        },
                    );
                }
            }
            if let Some(reason) = choice.finish_reason.as_deref() {
                if self.stop_reason != Some("refusal") {
                    self.stop_reason = Some(stop_reason_for(reason));
                }
            }
        }
    }

    /// Ends the stream when the upstream body ended without `[DONE]`: after a
    /// `finish_reason` the message is closed normally (some compatible servers omit
    /// `[DONE]`); before one, an `error` event tells the client the response is
    /// incomplete. Does nothing once closed.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.stop_reason.is_some() {
            self.close(out);
        } else {
            self.push_error(
                out,
                "api_error",
                "upstream stream ended before the response was complete",
            );
        }
    }

    /// Usage reported by the upstream (its final chunk), `None` if none was seen.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = self.usage.unwrap_or_default();
        let message = an::MessagesResponse {
            id: self.id.clone(),
            kind: "message".to_string(),
            role: "assistant".to_string(),
            model: self.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: an::MessagesUsage {
                input_tokens: Some(usage.input.saturating_sub(usage.cached_input)),
                output_tokens: Some(usage.output),
                ..an::MessagesUsage::default()
            },
            rest: Map::new(),
        };
        push_anthropic_sse(
            out,
            &an::StreamEvent {
                kind: "message_start".to_string(),
                message: Some(message),
                ..an::StreamEvent::default()
            },
        );
    }

    /// Returns the index of the open block if `is_wanted`, else closes it and opens
    /// the block made by `make` (given the new index).
    fn ensure_block(
        &mut self,
        out: &mut Vec<u8>,
        is_wanted: impl Fn(OpenBlock) -> bool,
        make: impl FnOnce(u32) -> (OpenBlock, an::ContentBlock),
    ) -> u32 {
        if let Some(open) = self.open {
            if is_wanted(open) {
                return open.index();
            }
        }
        self.close_block(out);
        let index = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        let (open, block) = make(index);
        self.open = Some(open);
        push_anthropic_sse(
            out,
            &an::StreamEvent {
                kind: "content_block_start".to_string(),
                index: Some(index),
                content_block: Some(block),
                ..an::StreamEvent::default()
            },
        );
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            push_anthropic_sse(
                out,
                &an::StreamEvent {
                    kind: "content_block_stop".to_string(),
                    index: Some(open.index()),
                    ..an::StreamEvent::default()
                },
            );
        }
    }

    fn push_delta(&self, out: &mut Vec<u8>, index: u32, delta: an::StreamDelta) {
        push_anthropic_sse(
            out,
            &an::StreamEvent {
                kind: "content_block_delta".to_string(),
                index: Some(index),
                delta: Some(delta),
                ..an::StreamEvent::default()
            },
        );
    }

    fn push_error(&mut self, out: &mut Vec<u8>, kind: &str, message: &str) {
        push_anthropic_sse(
            out,
            &an::StreamEvent {
                kind: "error".to_string(),
                error: Some(an::ErrorBody {
                    kind: kind.to_string(),
                    message: message.to_string(),
                    rest: Map::new(),
                }),
                ..an::StreamEvent::default()
            },
        );
        self.done = true;
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_block(out);
        let usage = match &self.usage {
            Some(u) => anthropic_usage(u),
            None => an::MessagesUsage {
                output_tokens: Some(0),
                ..an::MessagesUsage::default()
            },
        };
        push_anthropic_sse(
            out,
            &an::StreamEvent {
                kind: "message_delta".to_string(),
                delta: Some(an::StreamDelta {
                    stop_reason: Some(self.stop_reason.unwrap_or("end_turn").to_string()),
                    stop_sequence: Some(Value::Null),
                    ..an::StreamDelta::default()
                }),
                usage: Some(usage),
                ..an::StreamEvent::default()
            },
        );
        push_anthropic_sse(
            out,
            &an::StreamEvent {
                kind: "message_stop".to_string(),
                ..an::StreamEvent::default()
            },
        );
        self.done = true;
    }
}

// ---------------------------------------------------------------------------
// C. Error bodies
// ---------------------------------------------------------------------------

/// Translates an Anthropic error body (`{"type":"error","error":{"type","message"}}`)
/// into an OpenAI one (`{"error":{"message","type","param","code"}}`), keeping the
/// Anthropic error type as `code`. A body that is not an Anthropic error yields a
/// generic error naming the upstream status.
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let value = match serde_json::from_slice::<an::ErrorResponse>(body) {
        Ok(e) if !e.error.message.is_empty() || !e.error.kind.is_empty() => {
            let kind = (!e.error.kind.is_empty()).then_some(e.error.kind.as_str());
            let message = if e.error.message.is_empty() {
                format!("upstream returned HTTP {status}")
            } else {
                e.error.message.clone()
            };
            openai_error_value(&message, kind, status)
        }
        _ => openai_error_value(&format!("upstream returned HTTP {status}"), None, status),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Anthropic error type for an HTTP status.
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        503 | 529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The message of an OpenAI(-compatible) error body: `error.message`, an `error`
/// string, a top-level `message` or `detail`, or the same inside a one-element array.
fn openai_error_message(value: &Value) -> Option<String> {
    match value {
        Value::Array(items) => items.first().and_then(openai_error_message),
        Value::Object(obj) => {
            let from_error = match obj.get("error") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(e @ Value::Object(_)) => {
                    e.get("message").and_then(Value::as_str).map(str::to_string)
                }
                _ => None,
            };
            from_error
                .or_else(|| {
                    obj.get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .or_else(|| {
                    obj.get("detail")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .filter(|m| !m.is_empty())
        }
        _ => None,
    }
}

/// Translates an OpenAI(-compatible) error body into an Anthropic one; the
/// Anthropic error type follows the HTTP status. A body without a recognisable
/// message yields a generic error naming the upstream status.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Vec<u8> {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| openai_error_message(&v))
        .unwrap_or_else(|| format!("upstream returned HTTP {status}"));
    let value = json!({
        "type": "error",
        "error": {"type": anthropic_error_type(status), "message": message},
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn tool_messages_then_user_text_are_one_user_turn_with_results_first() {
        let body = br#"{"messages":[
            {"role":"user","content":"q"},
            {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"user","content":"note"},
            {"role":"tool","tool_call_id":"a","content":"r"}]}"#;
        let out = v(&chat_request_to_messages(body, "m", 10).unwrap());
        let last = &out["messages"][2];
        assert_eq!(last["role"], "user");
        assert_eq!(last["content"][0]["type"], "tool_result");
        assert_eq!(last["content"][1]["text"], "note");
    }

    #[test]
    fn client_input_errors_name_the_param() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"messages":[{"role":"system","content":"s"}]}"#, "messages"),
            (br#"{"messages":[{"role":"critic","content":"s"}]}"#, "messages[0].role"),
            (
                br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x"}}]}]}"#,
                "messages[0].content[0].image_url.url",
            ),
            (
                br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}"#,
                "messages[0].content[0].image_url.url",
            ),
            (
                br#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}"#,
                "messages[0].content[0].type",
            ),
            (br#"{"messages":[{"role":"tool","content":"r"}]}"#, "messages[0].tool_call_id"),
            (
                br#"{"messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}"#,
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                br#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}"#,
                "tool_choice",
            ),
            (
                br#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#,
                "response_format",
            ),
        ];
        for (body, param) in cases {
            let err = chat_request_to_messages(body, "m", 10).unwrap_err();
            assert_eq!(err.status, 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(err.param.as_deref(), Some(*param), "{err}");
        }
    }

    #[test]
    fn tool_choice_without_tools_is_dropped_and_parallel_false_alone_sets_auto() {
        let body = br#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}"#;
        let out = v(&chat_request_to_messages(body, "m", 10).unwrap());
        assert!(out.get("tool_choice").is_none());
        let body = br#"{"messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false,
            "tools":[{"type":"function","function":{"name":"f"}}]}"#;
        let out = v(&chat_request_to_messages(body, "m", 10).unwrap());
        assert_eq!(
            out["tool_choice"],
            json!({"type":"auto","disable_parallel_tool_use":true})
        );
    }

    #[test]
    fn extensions_top_k_and_thinking_pass_through() {
        let body = br#"{"messages":[{"role":"user","content":"x"}],"top_k":5,
            "thinking":{"type":"enabled","budget_tokens":2048}}"#;
        let out = v(&chat_request_to_messages(body, "m", 10).unwrap());
        assert_eq!(out["top_k"], 5);
        assert_eq!(out["thinking"]["budget_tokens"], 2048);
    }

    #[test]
    fn translate_error_bodies() {
        let e = TranslateError::bad_request("n > 1", Some("n"));
        let o = v(&e.to_openai_body());
        assert_eq!(o["error"]["param"], "n");
        assert_eq!(o["error"]["type"], "invalid_request_error");
        let a = v(&e.to_anthropic_body());
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "invalid_request_error");
        let a = v(&TranslateError::bad_upstream("x").to_anthropic_body());
        assert_eq!(a["error"]["type"], "api_error");
    }

    #[test]
    fn streams_ignore_events_after_close_and_finish_is_idempotent() {
        let mut s = MessagesToChatStream::new("m", "id", 0, false);
        let mut out = Vec::new();
        s.on_event("message_stop", r#"{"type":"message_stop"}"#, &mut out);
        let len = out.len();
        s.on_event(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            &mut out,
        );
        s.finish(&mut out);
        s.finish(&mut out);
        assert_eq!(out.len(), len);
        assert_eq!(out, b"data: [DONE]\n\n");

        let mut s = ChatToMessagesStream::new("m", "id");
        let mut out = Vec::new();
        s.on_event("[DONE]", &mut out);
        let len = out.len();
        s.on_event("[DONE]", &mut out);
        s.finish(&mut out);
        assert_eq!(out.len(), len);
        assert!(String::from_utf8_lossy(&out)
            .ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    }

    #[test]
    fn stream_event_type_is_taken_from_data_when_the_event_line_is_missing() {
        let mut s = MessagesToChatStream::new("m", "id", 0, false);
        let mut out = Vec::new();
        s.on_event(
            "",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            &mut out,
        );
        assert!(String::from_utf8_lossy(&out).contains(r#""content":"x""#));
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
            Just("input".to_string()),
            Just("image_url".to_string()),
            Just("url".to_string()),
            Just("source".to_string()),
            Just("tools".to_string()),
            Just("tool_choice".to_string()),
            Just("system".to_string()),
            Just("usage".to_string()),
            Just("choices".to_string()),
            Just("delta".to_string()),
            Just("index".to_string()),
            Just("stop".to_string()),
            Just("n".to_string()),
            Just("error".to_string()),
            Just("message".to_string()),
            Just("tool_call_id".to_string()),
            "[a-z_]{1,12}",
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
                Just("tool_use".to_string()),
                Just("tool_result".to_string()),
                Just("function".to_string()),
                Just("data:image/png;base64,AAAA".to_string()),
                Just("https://x/y.png".to_string()),
                Just("{\"a\":1}".to_string()),
                Just("[DONE]".to_string()),
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
        let _ = chat_request_to_messages(bytes, "m", 16);
        let _ = messages_response_to_chat(bytes, "m", 0);
        let _ = messages_request_to_chat(bytes, "m");
        let _ = chat_response_to_messages(bytes, "m");
        let _ = anthropic_error_to_openai(500, bytes);
        let _ = openai_error_to_anthropic(500, bytes);
        let text = String::from_utf8_lossy(bytes);
        let mut out = Vec::new();
        let mut a = MessagesToChatStream::new("m", "id", 0, true);
        for event in [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "message_delta",
            "error",
            "",
        ] {
            a.on_event(event, &text, &mut out);
        }
        a.finish(&mut out);
        let _ = a.usage();
        let mut b = ChatToMessagesStream::new("m", "id");
        b.on_event(&text, &mut out);
        b.on_event(&text, &mut out);
        b.finish(&mut out);
        let _ = b.usage();
    }

    /// A translator in the middle of a stream (after `message_start`).
    fn started_stream() -> MessagesToChatStream {
        let mut t = MessagesToChatStream::new("my-\"claude\"", "hint", 1_700_000_000, true);
        let start = r#"{"type":"message_start","message":{"id":"msg_é1","type":"message","role":"assistant","content":[],"model":"claude-x","usage":{"input_tokens":3,"output_tokens":1}}}"#;
        t.on_event("message_start", start, &mut Vec::new());
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Text chunks are written byte for byte as serde_json writes the chunk.
        #[test]
        fn text_chunks_are_written_as_serde_writes_them(
            id in "\\PC{0,12}",
            model in "\\PC{0,12}",
            created in any::<u64>(),
            text in prop_oneof!["\\PC{0,20}", "[a-z\"\\\\\u{0}-\u{1f}\u{7f}é]{0,20}"],
        ) {
            let mut t = MessagesToChatStream::new(&model, &id, created, false);
            let (mut fast, mut serde) = (Vec::new(), Vec::new());
            t.push_content(&mut fast, &text);
            t.push_chunk(&mut serde, oa::ChunkDelta { content: Some(text.clone()), ..Default::default() }, None);
            t.push_reasoning(&mut fast, &text);
            t.push_chunk(&mut serde, oa::ChunkDelta { reasoning_content: Some(text.clone()), ..Default::default() }, None);
            prop_assert_eq!(String::from_utf8_lossy(&fast), String::from_utf8_lossy(&serde));
        }

        /// An event the fast reader reads translates exactly as when serde reads it,
        /// and so does the rest of the stream.
        #[test]
        fn text_deltas_translate_as_with_serde((event, data) in crate::stream::anthropic::tests::arb_event()) {
            let mut out = [Vec::new(), Vec::new()];
            for (fast, out) in [true, false].into_iter().zip(out.iter_mut()) {
                let mut t = started_stream();
                let delta = fast.then(|| text_delta(&event, &data)).flatten();
                t.on_event_read(&event, &data, delta.as_ref(), out);
                t.on_event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#, out);
                t.finish(out);
            }
            prop_assert_eq!(String::from_utf8_lossy(&out[0]), String::from_utf8_lossy(&out[1]), "{} {}", event, data);
        }
    }

    /// Translates `events` (OpenAI SSE data) with the fast reader allowed or not.
    fn to_messages(events: &[&str], fast: bool) -> String {
        let mut t = ChatToMessagesStream::new("claude-client", "msg_gw");
        let mut out = Vec::new();
        for e in events {
            t.on_event_with(e, &mut out, fast);
        }
        t.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn openai_content_chunks_translate_without_serde_as_with_it() {
        let head = r#""id":"chatcmpl-9","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini","system_fingerprint":"fp_1""#;
        let chunk = |choice: &str, tail: &str| format!("{{{head},\"choices\":[{choice}]{tail}}}");
        let events = [
            chunk(
                r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
                r#","usage":null"#,
            ),
            chunk(
                r#"{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}"#,
                r#","usage":null"#,
            ),
            chunk(
                r#"{"index":0,"delta":{"content":" w\u00f6rld \"q\" \/ 🦀\n"},"finish_reason":null}"#,
                "",
            ),
            chunk(
                r#"{"delta":{"content":"!","reasoning_content":null,"tool_calls":null},"index":0}"#,
                r#","obfuscation":"ab""#,
            ),
            chunk(
                r#"{"index":0,"delta":{},"logprobs":null,"finish_reason":"length"}"#,
                r#","usage":null"#,
            ),
            format!(
                r#"{{{head},"choices":[],"usage":{{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{{"cached_tokens":4}}}}}}"#
            ),
            "[DONE]".to_string(),
        ];
        // Read with serde: a refusal, and usage under the Responses API's names.
        let serde_only = [
            chunk(r#"{"index":0,"delta":{"refusal":"no"}}"#, ""),
            format!(r#"{{{head},"choices":[],"usage":{{"input_tokens":1}}}}"#),
        ];
        for e in &serde_only {
            assert!(crate::stream::openai_chunk::text_chunk(e).is_none(), "{e}");
            let events = [events[0].as_str(), e, "[DONE]"];
            assert_eq!(to_messages(&events, true), to_messages(&events, false));
        }
        let other_choice = chunk(
            r#"{"index":1,"delta":{"content":"not for this client"}}"#,
            "",
        );
        assert!(crate::stream::openai_chunk::text_chunk(&other_choice).is_none());
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        assert_eq!(
            to_messages(&[events[0], &other_choice], true),
            to_messages(&[events[0], &other_choice], false)
        );
        for e in &events[..6] {
            assert!(
                crate::stream::openai_chunk::text_chunk(e).is_some(),
                "not read without serde: {e}"
            );
        }
        for e in &events[6..] {
            assert!(
                crate::stream::openai_chunk::text_chunk(e).is_none(),
                "read without serde: {e}"
            );
        }
        let fast = to_messages(&events, true);
        assert_eq!(fast, to_messages(&events, false));
        assert!(fast.contains(r#""id":"chatcmpl-9""#), "{fast}");
        assert!(
            fast.contains(r#"{"type":"text_delta","text":"Hello"}"#),
            "{fast}"
        );
        assert!(fast.contains(r#""output_tokens":3"#), "{fast}");
        assert!(fast.contains(r#""stop_reason":"max_tokens""#), "{fast}");
        let without_usage_chunk = [&events[..5], &events[6..]].concat();
        assert!(
            !to_messages(&without_usage_chunk, true).contains(r#""output_tokens":3"#),
            "the usage comes from the usage chunk"
        );
    }

    /// OpenAI chunks, mostly the usual content chunk (so that the comparison below has
    /// something to compare), sometimes with what the fast reader must leave to serde.
    fn openai_chunk() -> impl Strategy<Value = String> {
        use prop::sample::select;
        let text = select(vec![
            r#""""#,
            r#""Hello""#,
            r#"" wörld 🦀""#,
            r#""a\nb \"q\" \\ \/ \u00e9\ud83d\ude00""#,
            "null",
            "5",
        ]);
        let delta_member = prop_oneof![
            6 => text.prop_map(|t| format!(r#""content":{t}"#)),
            2 => select(vec![r#""role":"assistant""#, r#""role":null"#, r#""refusal":null"#,
                r#""reasoning_content":null"#, r#""tool_calls":null"#, r#""other":[1,{"x":true}]"#,
                r#""reasoning":null"#, r#""function_call":null"#])
                .prop_map(str::to_owned),
            1 => select(vec![r#""refusal":"no""#, r#""reasoning_content":"hm""#, r#""role":5"#,
                r#""tool_calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{}"}}]"#,
                r#""reasoning":"hm""#, r#""function_call":{"name":"f","arguments":"{}"}"#,
                // serde refuses these (`role` is a `String`, `x` goes to a `Value`).
                r#""role":"\ud800""#, r#""x":-1e400"#])
                .prop_map(str::to_owned),
        ];
        let delta = prop::collection::vec(delta_member, 0..4)
            .prop_map(|m| format!(r#""delta":{{{}}}"#, m.join(",")));
        let choice_member = prop_oneof![
            6 => delta,
            3 => select(vec![r#""index":0"#, r#""finish_reason":null"#, r#""logprobs":null"#,
                r#""text":null"#])
                .prop_map(str::to_owned),
            2 => select(vec![r#""index":1"#, r#""index":00"#, r#""index":0.0"#,
                r#""finish_reason":"stop""#, r#""finish_reason":"length""#, r#""delta":null"#,
                r#""text":"t""#, r#""finish_reason":"tool_calls""#, r#""finish_reason":"\u0073top""#,
                r#""finish_reason":5"#, r#""x":[1e400]"#, r#""logprobs":"\ud800""#])
                .prop_map(str::to_owned),
        ];
        let choice =
            prop::collection::vec(choice_member, 0..4).prop_map(|m| format!("{{{}}}", m.join(",")));
        let choices = prop_oneof![
            8 => choice.prop_map(|c| format!(r#""choices":[{c}]"#)),
            1 => select(vec![r#""choices":[]"#, r#""choices":null"#,
                r#""choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]"#])
                .prop_map(str::to_owned),
        ];
        let other = prop_oneof![
            2 => select(vec![
                r#""usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":1,"audio_tokens":0},"completion_tokens_details":null}"#,
                r#""usage":{"prompt_tokens":null,"total_tokens":5,"x":{"y":[1]}}"#,
                r#""usage":{"input_tokens":2,"output_tokens":1}"#,
                r#""usage":{"prompt_tokens":1.5}"#,
                r#""usage":{"prompt_tokens":3,"prompt_tokens":3}"#,
                r#""usage":{"completion_tokens_details":{"reasoning_tokens":-1}}"#,
                // Unknown members are kept in `rest` maps: read as into a `Value`.
                r#""usage":{"prompt_tokens":2,"cost":1e400}"#,
                r#""usage":{"prompt_tokens_details":{"cached_tokens":1,"audio_tokens":"\ud800"}}"#,
                r#""usage":{"completion_tokens_details":{"audio_tokens":[1,"\ud83d\ude00",-2.5]}}"#,
            ]),
            8 => select(vec![r#""id":"chatcmpl-1""#, r#""id":"c\u0068at""#, r#""id":"""#,
                r#""object":"chat.completion.chunk""#, r#""created":1767225600"#, r#""model":"gpt-4o""#,
                r#""system_fingerprint":"fp_1""#, r#""usage":null"#, r#""error":null"#]),
            1 => select(vec![r#""created":-1"#, r#""created":1.5"#, r#""created":18446744073709551616"#,
                r#""model":null"#, r#""id":5"#, r#""error":{"message":"boom"}"#,
                r#""usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}"#, r#""\u0069d":"x""#,
                r#""type":"response.output_text.delta""#, r#""delta":"d""#, r#""response":{}"#,
                r#""x":1e400"#, r#""x":{"y":"\ud800"}"#, r#""object":"\ud800""#, r#""model":"a\udc00""#]),
        ]
        .prop_map(str::to_owned);
        (
            choices,
            prop::collection::vec(other, 0..5),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(c, mut m, at)| {
                m.insert(at.index(m.len() + 1), c);
                format!("{{{}}}", m.join(","))
            })
    }

    /// Two chunks of one stream: the second with the first's members before `choices`.
    fn openai_chunk_pair() -> impl Strategy<Value = (String, String)> {
        (openai_chunk(), openai_chunk()).prop_map(|(a, b)| {
            let head = |c: &str| c.find(r#""choices":"#).map(|at| at + r#""choices":"#.len());
            let second = match (head(&a), head(&b)) {
                (Some(i), Some(j)) => format!("{}{}", &a[..i], &b[j..]),
                _ => b,
            };
            (a, second)
        })
    }

    /// The comparison of two chunks of one stream is only as good as how often the
    /// second is taken up at `choices`.
    #[test]
    fn generated_next_chunks_are_often_taken_up_at_choices() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let taken_up = (0..1000)
            .filter(|_| {
                let (a, b) = openai_chunk_pair().new_tree(&mut runner).unwrap().current();
                crate::stream::openai_chunk::tests::next_text_chunk_reads_as_alone(&a, &b).unwrap()
            })
            .count();
        assert!(taken_up > 50, "{taken_up} of 1000 taken up");
    }

    /// The comparison below is only as good as what the fast reader accepts.
    #[test]
    fn generated_openai_chunks_are_often_read_without_serde() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut read, mut finish, mut usage) = (0, 0, 0);
        // 2,000 draws: the deterministic draws differ between targets (32-bit `usize` on
        // wasm32), and a smaller sample left the counts near the bounds on one of them.
        for _ in 0..2000 {
            let data = openai_chunk().new_tree(&mut runner).unwrap().current();
            if let Some(c) = crate::stream::openai_chunk::text_chunk(&data) {
                read += 1;
                finish += usize::from(c.finish_reason.is_some());
                usage += usize::from(c.usage.is_some());
            }
        }
        assert!(
            read > 400 && finish > 30 && usage > 30,
            "{read} of 2000 read without serde, {finish} with a finish reason, {usage} with usage"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Two chunks of one stream (the second starting as the first, so that the fast
        /// reader takes it up at `choices`), also with a byte inserted anywhere: read as
        /// alone, and translated to the same Anthropic events with or without the fast
        /// reader.
        #[test]
        fn chunks_of_one_stream_translate_as_with_serde(
            (a, b) in openai_chunk_pair(),
            junk in prop::sample::select(vec!["", "", "", " ", "\"", "}", ",", "\\", "0"]),
            at in any::<prop::sample::Index>(),
        ) {
            let b = crate::stream::openai_chunk::tests::insert_at(&b, at, junk);
            crate::stream::openai_chunk::tests::next_text_chunk_reads_as_alone(&a, &b)?;
            for data in [&a, &b] {
                crate::stream::openai_chunk::tests::text_chunk_reads_as_content_chunk(data)?;
            }
            prop_assert_eq!(to_messages(&[&a, &b], true), to_messages(&[&a, &b], false), "{} then {}", a, b);
        }
    }

    proptest! {
        /// Two chunks (the first one starts the message), also with a byte inserted anywhere,
        /// then the end: the same Anthropic events with or without the fast reader.
        #[test]
        fn openai_chunks_translate_as_with_serde(
            a in openai_chunk(),
            b in openai_chunk(),
            junk in prop::sample::select(vec!["", "", "", " ", "\"", "}", ",", "\\", "0"]),
            at in any::<prop::sample::Index>(),
        ) {
            let b = crate::stream::openai_chunk::tests::insert_at(&b, at, junk);
            for events in [[a.as_str(), b.as_str(), "[DONE]"], [a.as_str(), b.as_str(), ""]] {
                prop_assert_eq!(to_messages(&events, true), to_messages(&events, false), "{} / {}", a, b);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            exercise(&bytes);
        }

        #[test]
        fn random_json_never_panics(value in arb_json()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            exercise(&bytes);
            // Also as the payload of a plausible envelope.
            for envelope in [
                json!({"messages": [value.clone()]}),
                json!({"messages": [{"role": "user", "content": [value.clone()]}]}),
                json!({"messages": [{"role": "assistant", "tool_calls": [value.clone()]}]}),
                json!({"choices": [{"message": value.clone(), "delta": value.clone()}]}),
                json!({"type": "content_block_delta", "index": 0, "delta": value.clone()}),
                json!({"content": [value.clone()], "usage": value.clone()}),
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
