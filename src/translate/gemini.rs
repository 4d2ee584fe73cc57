//! OpenAI Chat Completions <-> Google Gemini `generateContent` translation.
//!
//! The same payloads serve the Gemini API (AI Studio,
//! `POST /v1beta/models/{model}:generateContent`) and Vertex AI
//! (`POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent`);
//! only the path and the credentials differ, and neither is built here.
//!
//! * A. an OpenAI client in front of a Gemini upstream: [`chat_request_to_gemini`],
//!   [`gemini_response_to_chat`], [`GeminiStreamToChat`] (for
//!   `:streamGenerateContent?alt=sse`, where each SSE `data:` is a whole
//!   `GenerateContentResponse` and the stream ends without a `[DONE]`).
//! * B. error bodies: [`gemini_error_to_openai`].
//!
//! Unknown members of the OpenAI request are not forwarded (Gemini rejects members
//! it does not know); see the function docs for what is mapped.

use serde_json::{json, Map, Value};

use super::{parse_json, to_json, TranslateError};
use crate::tokens::estimate::TokenEstimator;
use crate::tokens::usage::Usage;
use crate::wire::gemini as gm;
use crate::wire::openai as oa;

// ---------------------------------------------------------------------------
// A. OpenAI client -> Gemini upstream: request
// ---------------------------------------------------------------------------

/// Which Gemini members carry the JSON Schemas of tools and of `response_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaField {
    /// `parametersJsonSchema` / `responseJsonSchema`: the client's JSON Schema is sent
    /// verbatim (`additionalProperties`, `$ref`, `$defs`, `const`, ... are understood).
    /// Gemini 2.5 and later models.
    #[default]
    JsonSchema,
    /// `parameters` / `responseSchema`: Gemini's OpenAPI-3.0 subset. The schema is
    /// reduced to the keywords that subset knows (see [`openapi_schema`]); for older
    /// models that reject the JSON Schema members.
    OpenApi,
}

/// The thought signature Google documents for function calls the model did not
/// produce itself (history from another model or a client that dropped the
/// signature). Gemini 3 rejects a step whose first function call has none.
pub const SKIP_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Translates an OpenAI `chat/completions` request body into a Gemini
/// `GenerateContentRequest` body, with [`SchemaField::JsonSchema`]. Returns the body
/// and whether the client asked for a stream (the integrator then calls
/// `:streamGenerateContent?alt=sse` instead of `:generateContent`; the model is part
/// of the path, never of the body). See [`chat_request_to_gemini_with`].
pub fn chat_request_to_gemini(body: &[u8]) -> Result<(Vec<u8>, bool), TranslateError> {
    chat_request_to_gemini_with(body, SchemaField::default())
}

/// Translates an OpenAI `chat/completions` request into a Gemini request.
///
/// * `system` / `developer` messages (wherever they appear) -> `systemInstruction`
///   (one text part each).
/// * `user` -> `user`, `assistant` -> `model`; `tool` (and legacy `function`)
///   messages -> `user` turns of `functionResponse` parts; consecutive turns of the
///   same role are merged (parallel function responses must share one turn).
/// * content parts: `text`; `image_url` with a `data:<type>;base64,` URL ->
///   `inlineData`, with an `http(s)://` or `gs://` URL -> `fileData` (MIME type guessed
///   from the extension, `image/jpeg` otherwise); `input_audio` -> `inlineData`
///   (`audio/<format>`); `file` with base64 `file_data` -> `inlineData`.
/// * assistant `tool_calls` -> `functionCall` parts (`arguments` must be a JSON
///   object). A thought signature the client kept in Google's OpenAI-compatible
///   place (`tool_calls[].extra_content.google.thought_signature`) is sent back; the
///   first call of a turn without one gets [`SKIP_THOUGHT_SIGNATURE`].
/// * tool messages -> `functionResponse {name, response}`: the name is that of the
///   call with the same `tool_call_id` in an earlier assistant message (unknown id:
///   400); `response` is the content when it is a JSON object, else
///   `{"content": <text>}`.
/// * `generationConfig`: `maxOutputTokens` (`max_completion_tokens`, else
///   `max_tokens`), `temperature`, `topP`, `stopSequences` (`stop`),
///   `candidateCount` (`n`), `seed`, the extension `top_k` -> `topK`;
///   `response_format` `json_object` -> `responseMimeType: application/json`,
///   `json_schema` -> the same plus the schema (see [`SchemaField`]).
/// * `tools` (functions only) -> one `tools[0].functionDeclarations`; `tool_choice`
///   -> `toolConfig.functionCallingConfig.mode` `AUTO` | `ANY` | `NONE` (a named
///   function: `ANY` with `allowedFunctionNames`). Without tools, `tool_choice` is
///   dropped.
/// * Dropped (no Gemini equivalent): `user`, `parallel_tool_calls`,
///   `stream_options` (the integrator reads `include_usage` itself), penalties,
///   `logprobs`, `logit_bias`, `metadata`, `store`, `service_tier`, ...
pub fn chat_request_to_gemini_with(
    body: &[u8],
    schema_field: SchemaField,
) -> Result<(Vec<u8>, bool), TranslateError> {
    let req: oa::ChatCompletionRequest = parse_json(body, 400, "chat completion request")?;

    let mut system: Vec<gm::Part> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<gm::Part>)> = Vec::new();
    for (i, msg) in req.messages.iter().enumerate() {
        match msg.role.as_str() {
            "system" | "developer" => system.extend(text_only_parts(msg.content.as_ref(), i)?),
            "user" => push_turn(&mut turns, "user", user_parts(msg.content.as_ref(), i)?),
            "assistant" => push_turn(&mut turns, "model", assistant_parts(msg, i)?),
            "tool" => {
                let name = tool_call_name(&req.messages, i)?;
                push_turn(
                    &mut turns,
                    "user",
                    vec![function_response_part(name, msg, i)?],
                );
            }
            "function" => {
                let name = msg
                    .name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        TranslateError::bad_request(
                            "function message without `name`",
                            Some(&format!("messages[{i}].name")),
                        )
                    })?;
                push_turn(
                    &mut turns,
                    "user",
                    vec![function_response_part(name, msg, i)?],
                );
            }
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
            "messages must contain at least one non-empty user or assistant message",
            Some("messages"),
        ));
    }

    let contents = turns
        .into_iter()
        .map(|(role, parts)| gm::Content {
            role: Some(role.to_string()),
            parts,
            rest: Map::new(),
        })
        .collect();

    let system_instruction = (!system.is_empty()).then(|| gm::Content {
        role: None,
        parts: system,
        rest: Map::new(),
    });

    let declarations = match &req.tools {
        Some(tools) if !tools.is_empty() => Some(
            tools
                .iter()
                .enumerate()
                .map(|(j, t)| function_declaration(t, j, schema_field))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        _ => None,
    };
    let tool_config = match (&declarations, &req.tool_choice) {
        (Some(_), Some(choice)) => Some(gm::ToolConfig {
            function_calling_config: Some(function_calling_config(choice)?),
            rest: Map::new(),
        }),
        _ => None,
    };
    let tools = declarations.map(|d| {
        vec![gm::Tool {
            function_declarations: Some(d),
            rest: Map::new(),
        }]
    });

    let stop_sequences = match &req.stop {
        None => None,
        Some(oa::Stop::One(s)) if s.is_empty() => None,
        Some(oa::Stop::One(s)) => Some(vec![s.clone()]),
        Some(oa::Stop::Many(v)) if v.is_empty() => None,
        Some(oa::Stop::Many(v)) => Some(v.clone()),
    };

    let (response_mime_type, response_schema, response_json_schema) =
        response_format(req.response_format.as_ref(), schema_field)?;

    if req.n == Some(0) {
        return Err(TranslateError::bad_request(
            "n must be at least 1",
            Some("n"),
        ));
    }

    let config = gm::GenerationConfig {
        stop_sequences,
        response_mime_type,
        response_schema,
        response_json_schema,
        candidate_count: req.n.filter(|&n| n > 1),
        max_output_tokens: req.max_completion_tokens.or(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req
            .rest
            .get("top_k")
            .and_then(Value::as_u64)
            .and_then(|k| u32::try_from(k).ok()),
        seed: req.rest.get("seed").and_then(Value::as_i64),
        thinking_config: None,
        rest: Map::new(),
    };
    let generation_config = (config != gm::GenerationConfig::default()).then_some(config);

    let out = gm::GenerateContentRequest {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config,
        safety_settings: None,
        cached_content: None,
        rest: Map::new(),
    };
    Ok((to_json(&out)?, req.stream == Some(true)))
}

/// Appends `parts` to the conversation, merging into the previous turn when the
/// role repeats. Turns left without any part are skipped (Gemini rejects them).
fn push_turn(
    turns: &mut Vec<(&'static str, Vec<gm::Part>)>,
    role: &'static str,
    parts: Vec<gm::Part>,
) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last_role, last)) if *last_role == role => last.extend(parts),
        _ => turns.push((role, parts)),
    }
}

/// Content that may only hold text (system/developer messages). Empty texts are dropped.
fn text_only_parts(
    content: Option<&oa::MessageContent>,
    i: usize,
) -> Result<Vec<gm::Part>, TranslateError> {
    Ok(super::text_only(content, i)?
        .into_iter()
        .filter(|(t, _)| !t.is_empty())
        .map(|(t, _)| gm::Part::text(t))
        .collect())
}

/// Content of a user message: text, images, audio and files.
fn user_parts(
    content: Option<&oa::MessageContent>,
    i: usize,
) -> Result<Vec<gm::Part>, TranslateError> {
    let parts = match content {
        Some(oa::MessageContent::Parts(parts)) => parts,
        other => return text_only_parts(other, i),
    };
    let mut out = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let param = format!("messages[{i}].content[{j}]");
        match part.kind.as_str() {
            "text" => match part.text.as_deref() {
                Some("") => {}
                Some(t) => out.push(gm::Part::text(t)),
                None => {
                    return Err(TranslateError::bad_request(
                        "text part without `text`",
                        Some(&format!("{param}.text")),
                    ))
                }
            },
            "image_url" => {
                let url = part.image_url.as_ref().ok_or_else(|| {
                    TranslateError::bad_request(
                        "image_url part without `image_url`",
                        Some(&format!("{param}.image_url")),
                    )
                })?;
                let p = url_part(&url.url).map_err(|m| {
                    TranslateError::bad_request(m, Some(&format!("{param}.image_url.url")))
                })?;
                out.push(p);
            }
            "input_audio" => {
                let audio = part.rest.get("input_audio");
                let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
                let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str);
                match (data, format) {
                    (Some(data), Some(format)) if !data.is_empty() && !format.is_empty() => {
                        out.push(inline_part(&format!("audio/{format}"), data));
                    }
                    _ => {
                        return Err(TranslateError::bad_request(
                            "input_audio part needs `data` and `format`",
                            Some(&format!("{param}.input_audio")),
                        ))
                    }
                }
            }
            "file" => {
                let file_data = part
                    .rest
                    .get("file")
                    .and_then(|f| f.get("file_data"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        TranslateError::bad_request(
                            "only files given inline as a base64 data URL (`file.file_data`) are supported for this model",
                            Some(&format!("{param}.file")),
                        )
                    })?;
                let (mime, data) = parse_data_url(file_data).map_err(|m| {
                    TranslateError::bad_request(m, Some(&format!("{param}.file.file_data")))
                })?;
                out.push(inline_part(mime, data));
            }
            other => {
                return Err(TranslateError::bad_request(
                    format!("content part type `{other}` is not supported for this model"),
                    Some(&format!("{param}.type")),
                ))
            }
        }
    }
    Ok(out)
}

fn inline_part(mime_type: &str, data: &str) -> gm::Part {
    gm::Part {
        inline_data: Some(gm::Blob {
            mime_type: mime_type.to_string(),
            data: data.to_string(),
            rest: Map::new(),
        }),
        ..gm::Part::default()
    }
}

/// `data:<type>;base64,<data>` -> (type, data).
fn parse_data_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| "expected a base64 data URL".to_string())?;
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
    if data.is_empty() {
        return Err("data URL without data".to_string());
    }
    Ok((media_type, data))
}

/// A Gemini part for an OpenAI image URL: inline bytes for a data URL, a file
/// reference for an `http(s)://` or `gs://` URL.
fn url_part(url: &str) -> Result<gm::Part, String> {
    if url.starts_with("data:") {
        let (mime, data) = parse_data_url(url)?;
        return Ok(inline_part(mime, data));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("gs://") {
        return Ok(gm::Part {
            file_data: Some(gm::FileData {
                mime_type: Some(mime_from_extension(url).to_string()),
                file_uri: url.to_string(),
                rest: Map::new(),
            }),
            ..gm::Part::default()
        });
    }
    Err("image URL must be http(s), gs:// or a base64 data URL".to_string())
}

/// The MIME type of a file URL from its extension (query and fragment ignored);
/// `image/jpeg` when unknown.
fn mime_from_extension(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => return "image/jpeg",
    };
    match ext.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "bmp" => "image/bmp",
        "pdf" => "application/pdf",
        _ => "image/jpeg",
    }
}

fn assistant_parts(msg: &oa::ChatMessage, i: usize) -> Result<Vec<gm::Part>, TranslateError> {
    let mut out = Vec::new();
    match msg.content.as_ref() {
        None => {}
        Some(oa::MessageContent::Text(s)) if s.is_empty() => {}
        Some(oa::MessageContent::Text(s)) => out.push(gm::Part::text(s.as_str())),
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
                    Some(t) => out.push(gm::Part::text(t)),
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
        let param = format!("messages[{i}].tool_calls[{j}]");
        if call.function.name.is_empty() {
            return Err(TranslateError::bad_request(
                "tool call without a function name",
                Some(&format!("{param}.function.name")),
            ));
        }
        let args = super::parse_arguments(&call.function.arguments).map_err(|m| {
            TranslateError::bad_request(m, Some(&format!("{param}.function.arguments")))
        })?;
        let signature = call
            .rest
            .get("extra_content")
            .and_then(|e| e.get("google"))
            .and_then(|g| g.get("thought_signature"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| (j == 0).then(|| SKIP_THOUGHT_SIGNATURE.to_string()));
        out.push(gm::Part {
            function_call: Some(gm::FunctionCall {
                id: None,
                name: call.function.name.clone(),
                args: Some(args),
                rest: Map::new(),
            }),
            thought_signature: signature,
            ..gm::Part::default()
        });
    }
    Ok(out)
}

/// The function name of the tool call that message `i` (a `tool` message) answers:
/// the nearest earlier assistant message declaring its `tool_call_id` (ids may
/// repeat across turns, e.g. `call_0` in every turn).
fn tool_call_name(messages: &[oa::ChatMessage], i: usize) -> Result<&str, TranslateError> {
    let msg = messages.get(i);
    let id = msg
        .and_then(|m| m.tool_call_id.as_deref())
        .unwrap_or_default();
    let param = format!("messages[{i}].tool_call_id");
    if id.is_empty() {
        return Err(TranslateError::bad_request(
            "tool message without `tool_call_id`",
            Some(&param),
        ));
    }
    messages
        .get(..i)
        .unwrap_or_default()
        .iter()
        .rev()
        .filter(|m| m.role == "assistant")
        .flat_map(|m| m.tool_calls.iter().flatten())
        .find(|c| c.id == id)
        .map(|c| c.function.name.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            TranslateError::bad_request(
                format!("tool_call_id `{id}` does not match a tool call of an earlier assistant message"),
                Some(&param),
            )
        })
}

/// A `functionResponse` part for a tool (or function) message.
fn function_response_part(
    name: &str,
    msg: &oa::ChatMessage,
    i: usize,
) -> Result<gm::Part, TranslateError> {
    let text = match msg.content.as_ref() {
        None => String::new(),
        Some(oa::MessageContent::Text(s)) => s.clone(),
        Some(oa::MessageContent::Parts(parts)) => {
            let mut texts = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.kind.as_str(), part.text.as_deref()) {
                    ("text", Some(t)) => texts.push(t),
                    _ => {
                        return Err(TranslateError::bad_request(
                            format!(
                            "tool message content part type `{}` is not supported for this model",
                            part.kind
                        ),
                            Some(&format!("messages[{i}].content[{j}].type")),
                        ))
                    }
                }
            }
            texts.concat()
        }
    };
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "content": text }),
    };
    Ok(gm::Part {
        function_response: Some(gm::FunctionResponse {
            id: None,
            name: name.to_string(),
            response,
            rest: Map::new(),
        }),
        ..gm::Part::default()
    })
}

fn function_declaration(
    tool: &oa::Tool,
    j: usize,
    schema_field: SchemaField,
) -> Result<gm::FunctionDeclaration, TranslateError> {
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
    if f.name.is_empty() {
        return Err(TranslateError::bad_request(
            "function tool without a name",
            Some(&format!("tools[{j}].function.name")),
        ));
    }
    let schema = f.parameters.as_ref().filter(|p| !p.is_null());
    let (parameters, parameters_json_schema) = match (schema, schema_field) {
        (None, _) => (None, None),
        (Some(p), SchemaField::JsonSchema) => (None, Some(p.clone())),
        (Some(p), SchemaField::OpenApi) => (Some(openapi_schema(p)), None),
    };
    Ok(gm::FunctionDeclaration {
        name: f.name.clone(),
        description: f.description.clone().filter(|d| !d.is_empty()),
        parameters,
        parameters_json_schema,
        rest: Map::new(),
    })
}

fn function_calling_config(
    choice: &oa::ToolChoice,
) -> Result<gm::FunctionCallingConfig, TranslateError> {
    let (mode, names) = match choice {
        oa::ToolChoice::Mode(m) => match m.as_str() {
            "auto" => ("AUTO", None),
            "required" => ("ANY", None),
            "none" => ("NONE", None),
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
            if n.function.name.is_empty() {
                return Err(TranslateError::bad_request(
                    "tool_choice without a function name",
                    Some("tool_choice.function.name"),
                ));
            }
            ("ANY", Some(vec![n.function.name.clone()]))
        }
    };
    Ok(gm::FunctionCallingConfig {
        mode: Some(mode.to_string()),
        allowed_function_names: names,
        rest: Map::new(),
    })
}

type ResponseFormatFields = (Option<String>, Option<Value>, Option<Value>);

/// `response_format` -> (`responseMimeType`, `responseSchema`, `responseJsonSchema`).
fn response_format(
    format: Option<&oa::ResponseFormat>,
    schema_field: SchemaField,
) -> Result<ResponseFormatFields, TranslateError> {
    let Some(format) = format else {
        return Ok((None, None, None));
    };
    match format.kind.as_str() {
        "text" => Ok((None, None, None)),
        "json_object" => Ok((Some("application/json".to_string()), None, None)),
        "json_schema" => {
            let schema = format
                .rest
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .filter(|s| !s.is_null());
            let mime = Some("application/json".to_string());
            Ok(match (schema, schema_field) {
                (None, _) => (mime, None, None),
                (Some(s), SchemaField::JsonSchema) => (mime, None, Some(s.clone())),
                (Some(s), SchemaField::OpenApi) => (mime, Some(openapi_schema(s)), None),
            })
        }
        other => Err(TranslateError::bad_request(
            format!("response_format `{other}` is not supported for this model"),
            Some("response_format.type"),
        )),
    }
}

/// Reduces a JSON Schema to the OpenAPI-3.0 subset of Gemini's `Schema` object:
/// keeps `type`, `format`, `title`, `description`, `nullable`, `enum`, `items`,
/// `properties`, `required`, `anyOf` (`oneOf` becomes `anyOf`), `propertyOrdering`,
/// `minItems`/`maxItems`, `minProperties`/`maxProperties`, `minLength`/`maxLength`,
/// `pattern`, `minimum`/`maximum`, `default` and `example`; a type list with `"null"`
/// becomes `nullable: true`, `const` a one-value `enum`. Everything else
/// (`additionalProperties`, `$schema`, `$ref`, `$defs`, `strict`, ...) is dropped.
pub fn openapi_schema(schema: &Value) -> Value {
    const KEEP: &[&str] = &[
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "required",
        "propertyOrdering",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "default",
        "example",
    ];
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let mut non_null = types.iter().filter(|t| t.as_str() != Some("null"));
                    if let Some(t) = non_null.next() {
                        out.insert("type".to_string(), t.clone());
                    }
                    if types.iter().any(|t| t.as_str() == Some("null")) {
                        out.insert("nullable".to_string(), Value::Bool(true));
                    }
                }
                other => {
                    out.insert("type".to_string(), other.clone());
                }
            },
            "properties" => {
                if let Value::Object(props) = value {
                    let props = props
                        .iter()
                        .map(|(name, s)| (name.clone(), openapi_schema(s)))
                        .collect();
                    out.insert("properties".to_string(), Value::Object(props));
                }
            }
            "items" => {
                let item = match value {
                    Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
                    other => other.clone(),
                };
                if item.is_object() {
                    out.insert("items".to_string(), openapi_schema(&item));
                }
            }
            "anyOf" | "oneOf" => {
                if let Value::Array(options) = value {
                    out.insert(
                        "anyOf".to_string(),
                        Value::Array(options.iter().map(openapi_schema).collect()),
                    );
                }
            }
            "const" => {
                out.insert("enum".to_string(), Value::Array(vec![value.clone()]));
            }
            k if KEEP.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// A. Gemini upstream -> OpenAI client: response
// ---------------------------------------------------------------------------

/// Gemini `finishReason` -> OpenAI `finish_reason`. `STOP` of a candidate that
/// called functions is `tool_calls`.
fn finish_reason_for(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION"
        | "MODEL_ARMOR" => "content_filter",
        _ if called_tools => "tool_calls",
        // STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, ... and new values
        _ => "stop",
    }
}

/// Provider-neutral usage from Gemini `usageMetadata`.
///
/// `input` = `promptTokenCount` (which includes the cached tokens) +
/// `toolUsePromptTokenCount` (prompt tokens of server-side tools, billed as input);
/// `output` = `candidatesTokenCount` + `thoughtsTokenCount` (thinking is billed as
/// output, as OpenAI counts reasoning tokens); `cached_input` =
/// `cachedContentTokenCount`; `reasoning` = `thoughtsTokenCount`. So `input + output`
/// is Gemini's `totalTokenCount`.
pub fn usage_from_gemini(u: &gm::UsageMetadata) -> Usage {
    let thoughts = u.thoughts_token_count.unwrap_or(0);
    Usage {
        input: u
            .prompt_token_count
            .unwrap_or(0)
            .saturating_add(u.tool_use_prompt_token_count.unwrap_or(0)),
        output: u
            .candidates_token_count
            .unwrap_or(0)
            .saturating_add(thoughts),
        cached_input: u.cached_content_token_count.unwrap_or(0),
        cache_creation_input: 0,
        reasoning: thoughts,
        estimated: false,
    }
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
        completion_tokens_details: Some(oa::CompletionTokensDetails {
            reasoning_tokens: Some(u.reasoning),
            rest: Map::new(),
        }),
        rest: Map::new(),
    }
}

/// The chat completion id: `chatcmpl-<responseId>`, else `chatcmpl-gemini-<created>`.
fn completion_id(response_id: Option<&str>, created: u64) -> String {
    match response_id.filter(|r| !r.is_empty()) {
        Some(r) => format!("chatcmpl-{r}"),
        None => format!("chatcmpl-gemini-{created}"),
    }
}

/// An OpenAI tool call for a Gemini `functionCall` part. The id is the upstream's
/// when it sent one, else `call_<n>`; a thought signature is kept where Google's
/// OpenAI-compatible endpoint puts it (`extra_content.google.thought_signature`),
/// so a client that returns the tool call unchanged lets it reach the model again.
fn tool_call_for(call: &gm::FunctionCall, signature: Option<&str>, n: u32) -> oa::ToolCall {
    let mut rest = Map::new();
    if let Some(sig) = signature.filter(|s| !s.is_empty()) {
        rest.insert(
            "extra_content".to_string(),
            json!({"google": {"thought_signature": sig}}),
        );
    }
    oa::ToolCall {
        id: call
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{n}")),
        kind: "function".to_string(),
        function: oa::FunctionCall {
            name: call.name.clone(),
            arguments: arguments_string(call.args.as_ref()),
            rest: Map::new(),
        },
        rest,
    }
}

/// `functionCall.args` serialised as OpenAI's JSON-string arguments.
fn arguments_string(args: Option<&Value>) -> String {
    match args {
        None | Some(Value::Null) => "{}".to_string(),
        Some(v) => serde_json::to_string(v).unwrap_or_else(|_| "{}".to_string()),
    }
}

/// The message of a Google error object (`{"code","message","status"}`).
fn error_message(error: &Value) -> String {
    error
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .or_else(|| error.as_str())
        .unwrap_or("unknown error")
        .to_string()
}

/// Translates a Gemini `GenerateContentResponse` into an OpenAI `chat.completion`.
///
/// One choice per candidate: text parts joined into `content` (`null` when the
/// candidate only calls functions), `thought: true` parts into `reasoning_content`,
/// `functionCall` parts into `tool_calls` (see `tool_call_for`); other parts
/// (inline images, code execution) are dropped. `finishReason` as in
/// `finish_reason_for`. A prompt blocked by `promptFeedback.blockReason` gives one
/// choice with empty content and `finish_reason: "content_filter"`. Usage as in
/// [`usage_from_gemini`]; the returned [`Usage`] is all zero without `usageMetadata`.
pub fn gemini_response_to_chat(
    body: &[u8],
    model_for_client: &str,
    created_unix: u64,
) -> Result<(Vec<u8>, Usage), TranslateError> {
    let resp: gm::GenerateContentResponse = parse_json(body, 502, "Gemini response")?;
    if let Some(error) = &resp.error {
        return Err(TranslateError::bad_upstream(format!(
            "upstream error: {}",
            error_message(error)
        )));
    }

    let mut next_call = 0u32;
    let mut choices = Vec::new();
    for (position, cand) in resp.candidates.iter().enumerate() {
        let mut text = String::new();
        let mut has_text = false;
        let mut reasoning = String::new();
        let mut tool_calls = Vec::new();
        for part in cand.content.iter().flat_map(|c| c.parts.iter()) {
            if let Some(call) = &part.function_call {
                tool_calls.push(tool_call_for(
                    call,
                    part.thought_signature.as_deref(),
                    next_call,
                ));
                next_call = next_call.saturating_add(1);
            } else if let Some(t) = &part.text {
                if part.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    has_text = true;
                    text.push_str(t);
                }
            }
        }
        let called = !tool_calls.is_empty();
        let finish_reason = match cand.finish_reason.as_deref() {
            Some(r) => Some(finish_reason_for(r, called).to_string()),
            None if called => Some("tool_calls".to_string()),
            None => None,
        };
        choices.push(oa::Choice {
            index: cand
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX)),
            message: oa::ResponseMessage {
                role: "assistant".to_string(),
                content: (has_text || !called).then_some(text),
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                refusal: None,
                tool_calls: called.then_some(tool_calls),
                rest: Map::new(),
            },
            logprobs: None,
            finish_reason,
            rest: Map::new(),
        });
    }

    if choices.is_empty() {
        let blocked = resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
            .is_some();
        if !blocked {
            return Err(TranslateError::bad_upstream(
                "Gemini response has no candidates",
            ));
        }
        choices.push(oa::Choice {
            index: 0,
            message: oa::ResponseMessage {
                role: "assistant".to_string(),
                content: Some(String::new()),
                ..oa::ResponseMessage::default()
            },
            logprobs: None,
            finish_reason: Some("content_filter".to_string()),
            rest: Map::new(),
        });
    }

    let usage = resp
        .usage_metadata
        .as_ref()
        .map(usage_from_gemini)
        .unwrap_or_default();
    let out = oa::ChatCompletion {
        id: completion_id(resp.response_id.as_deref(), created_unix),
        object: "chat.completion".to_string(),
        created: created_unix,
        model: model_for_client.to_string(),
        choices,
        usage: resp.usage_metadata.as_ref().map(|_| openai_usage(&usage)),
        rest: Map::new(),
    };
    Ok((to_json(&out)?, usage))
}

// ---------------------------------------------------------------------------
// A. Gemini upstream -> OpenAI client: stream
// ---------------------------------------------------------------------------

/// Appends one OpenAI SSE event (`data: <json>\n\n`).
fn push_openai_sse<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    if let Ok(bytes) = serde_json::to_vec(value) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&bytes);
        out.extend_from_slice(b"\n\n");
    }
}

/// Per-candidate state of a stream.
#[derive(Debug, Clone, Copy, Default)]
struct ChoiceState {
    index: u32,
    tool_calls: u32,
    finished: bool,
}

/// Translates the events of `:streamGenerateContent?alt=sse` into OpenAI
/// `chat.completion.chunk` events.
///
/// Feed the `data` of every SSE event to [`on_event`](Self::on_event) (each is a
/// whole `GenerateContentResponse`: text deltas, whole function calls, and on the
/// last one `finishReason`; `usageMetadata` is cumulative, the last one wins). Call
/// [`finish`](Self::finish) when the upstream body ends: Gemini sends no `[DONE]`.
#[derive(Debug)]
pub struct GeminiStreamToChat {
    model: String,
    id: Option<String>,
    created: u64,
    include_usage: bool,
    usage: Option<gm::UsageMetadata>,
    choices: Vec<ChoiceState>,
    next_call: u32,
    finish_sent: bool,
    first_content_seen: bool,
    estimator: TokenEstimator,
    error: Option<String>,
    done: bool,
}

impl GeminiStreamToChat {
    /// `include_usage` mirrors the client's `stream_options.include_usage`: when set,
    /// a last chunk with empty `choices` carries the usage.
    pub fn new(model_for_client: &str, created_unix: u64, include_usage: bool) -> Self {
        GeminiStreamToChat {
            model: model_for_client.to_string(),
            id: None,
            created: created_unix,
            include_usage,
            usage: None,
            choices: Vec::new(),
            next_call: 0,
            finish_sent: false,
            first_content_seen: false,
            estimator: TokenEstimator::new(),
            error: None,
            done: false,
        }
    }

    /// Handles the data of one SSE event, appending OpenAI SSE bytes to `out`.
    /// Data that is not a JSON object is logged and ignored.
    pub fn on_event(&mut self, data: &str, out: &mut Vec<u8>) {
        if self.done || data.trim().is_empty() {
            return;
        }
        let resp: gm::GenerateContentResponse = match serde_json::from_str(data) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("ignoring unparseable Gemini stream event: {e}");
                return;
            }
        };
        if let Some(error) = &resp.error {
            let body = serde_json::to_vec(&json!({ "error": error })).unwrap_or_default();
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            let translated = gemini_error_to_openai(status, &body);
            self.error = Some(
                error
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_string(),
            );
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&translated);
            out.extend_from_slice(b"\n\n");
            self.done = true;
            return;
        }
        if self.id.is_none() {
            self.id = Some(completion_id(resp.response_id.as_deref(), self.created));
        }
        if let Some(u) = resp.usage_metadata {
            self.usage = Some(u);
        }

        for (position, cand) in resp.candidates.iter().enumerate() {
            let index = cand
                .index
                .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX));
            let slot = self.choice_slot(index, out);
            for part in cand.content.iter().flat_map(|c| c.parts.iter()) {
                if let Some(call) = &part.function_call {
                    let n = self.next_call;
                    self.next_call = n.saturating_add(1);
                    let call = tool_call_for(call, part.thought_signature.as_deref(), n);
                    let tool_index = self.choices.get(slot).map_or(0, |c| c.tool_calls);
                    if let Some(c) = self.choices.get_mut(slot) {
                        c.tool_calls = tool_index.saturating_add(1);
                    }
                    self.estimator.push(&call.function.name);
                    self.estimator.push(&call.function.arguments);
                    self.first_content_seen = true;
                    let chunk = oa::ToolCallChunk {
                        index: tool_index,
                        id: Some(call.id),
                        kind: Some("function".to_string()),
                        function: Some(oa::FunctionCallChunk {
                            name: Some(call.function.name),
                            arguments: Some(call.function.arguments),
                            rest: Map::new(),
                        }),
                        rest: call.rest,
                    };
                    let delta = oa::ChunkDelta {
                        tool_calls: Some(vec![chunk]),
                        ..oa::ChunkDelta::default()
                    };
                    self.push_chunk(out, index, delta, None);
                } else if let Some(t) = part.text.as_deref().filter(|t| !t.is_empty()) {
                    self.estimator.push(t);
                    self.first_content_seen = true;
                    let delta = if part.thought == Some(true) {
                        oa::ChunkDelta {
                            reasoning_content: Some(t.to_string()),
                            ..oa::ChunkDelta::default()
                        }
                    } else {
                        oa::ChunkDelta {
                            content: Some(t.to_string()),
                            ..oa::ChunkDelta::default()
                        }
                    };
                    self.push_chunk(out, index, delta, None);
                }
            }
            if let Some(reason) = cand.finish_reason.as_deref().filter(|r| !r.is_empty()) {
                let state = self.choices.get(slot).copied().unwrap_or_default();
                if !state.finished {
                    let finish = finish_reason_for(reason, state.tool_calls > 0).to_string();
                    self.push_chunk(out, index, oa::ChunkDelta::default(), Some(finish));
                    if let Some(c) = self.choices.get_mut(slot) {
                        c.finished = true;
                    }
                    self.finish_sent = true;
                }
            }
        }

        let blocked = resp
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
            .is_some();
        if blocked && resp.candidates.is_empty() && !self.finish_sent {
            let slot = self.choice_slot(0, out);
            if let Some(c) = self.choices.get_mut(slot) {
                c.finished = true;
            }
            self.push_chunk(
                out,
                0,
                oa::ChunkDelta::default(),
                Some("content_filter".to_string()),
            );
            self.finish_sent = true;
        }
    }

    /// Ends the stream when the upstream body ended. After a `finishReason` the
    /// stream is closed normally (usage chunk when `include_usage`, then
    /// `data: [DONE]`); before one, the client gets an error chunk, as the response
    /// is incomplete. Does nothing once closed.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.finish_sent {
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
        } else {
            self.error = Some("incomplete_stream".to_string());
            push_openai_sse(
                out,
                &json!({"error": {
                    "message": "upstream stream ended before the response was complete",
                    "type": "server_error", "param": null, "code": null,
                }}),
            );
        }
        self.done = true;
    }

    /// Usage of the last `usageMetadata` seen (`None` before any). Before a
    /// `finishReason` (stream cut, client gone) the cumulative counts are partial, so
    /// the usage is marked estimated, its output at least the streamed text's estimate.
    pub fn usage(&self) -> Option<Usage> {
        let mut u = usage_from_gemini(self.usage.as_ref()?);
        if !self.finish_sent {
            u.estimated = true;
            u.output = u.output.max(self.estimator.estimate());
        }
        Some(u)
    }

    /// True once a text, thought or function call delta has been emitted (time to
    /// first token).
    pub fn first_content_seen(&self) -> bool {
        self.first_content_seen
    }

    /// Estimated output tokens of everything streamed so far (for a stream that ends
    /// without usage).
    pub fn estimated_output_tokens(&self) -> u64 {
        self.estimator.estimate()
    }

    /// The Google error status (`RESOURCE_EXHAUSTED`, ...) of an error event, or
    /// `incomplete_stream` when the stream ended without a finish reason.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// True once the stream has been closed (`[DONE]` or an error chunk sent).
    pub fn done(&self) -> bool {
        self.done
    }

    /// The position in `choices` of candidate `index`; the first time, the role
    /// chunk of that choice is sent.
    fn choice_slot(&mut self, index: u32, out: &mut Vec<u8>) -> usize {
        if let Some(pos) = self.choices.iter().position(|c| c.index == index) {
            return pos;
        }
        self.choices.push(ChoiceState {
            index,
            ..ChoiceState::default()
        });
        let delta = oa::ChunkDelta {
            role: Some("assistant".to_string()),
            content: Some(String::new()),
            ..oa::ChunkDelta::default()
        };
        self.push_chunk(out, index, delta, None);
        self.choices.len().saturating_sub(1)
    }

    fn chunk_base(&self) -> oa::ChatCompletionChunk {
        oa::ChatCompletionChunk {
            id: self
                .id
                .clone()
                .unwrap_or_else(|| completion_id(None, self.created)),
            object: "chat.completion.chunk".to_string(),
            created: self.created,
            model: self.model.clone(),
            ..oa::ChatCompletionChunk::default()
        }
    }

    fn push_chunk(
        &self,
        out: &mut Vec<u8>,
        index: u32,
        delta: oa::ChunkDelta,
        finish_reason: Option<String>,
    ) {
        let chunk = oa::ChatCompletionChunk {
            choices: vec![oa::ChunkChoice {
                index,
                delta,
                finish_reason,
                rest: Map::new(),
            }],
            ..self.chunk_base()
        };
        push_openai_sse(out, &chunk);
    }
}

// ---------------------------------------------------------------------------
// B. Error bodies
// ---------------------------------------------------------------------------

/// OpenAI (`type`, `code`) for a Google canonical status (or, without one, the HTTP
/// status).
fn openai_error_kind(
    google_status: Option<&str>,
    http: u16,
    message: &str,
) -> (&'static str, String) {
    let from_http = || -> (&'static str, String) {
        let kind = match http {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            s if s >= 500 || s == 0 => "server_error",
            _ => "invalid_request_error",
        };
        let code = match http {
            401 => "invalid_api_key",
            403 => "permission_denied",
            404 => "not_found",
            429 => "rate_limit_exceeded",
            503 => "service_unavailable",
            504 => "timeout",
            s if s >= 500 || s == 0 => "internal_error",
            _ => "invalid_request_error",
        };
        (kind, code.to_string())
    };
    let (kind, code) = match google_status.unwrap_or_default() {
        // The Gemini API answers a bad key with 400 INVALID_ARGUMENT.
        "INVALID_ARGUMENT" if message.contains("API key not valid") => {
            ("authentication_error", "invalid_api_key")
        }
        "INVALID_ARGUMENT" => ("invalid_request_error", "invalid_argument"),
        "FAILED_PRECONDITION" => ("invalid_request_error", "failed_precondition"),
        "OUT_OF_RANGE" => ("invalid_request_error", "out_of_range"),
        "UNAUTHENTICATED" => ("authentication_error", "invalid_api_key"),
        "PERMISSION_DENIED" => ("permission_error", "permission_denied"),
        "NOT_FOUND" => ("invalid_request_error", "not_found"),
        "ALREADY_EXISTS" => ("invalid_request_error", "already_exists"),
        "RESOURCE_EXHAUSTED" => ("rate_limit_error", "rate_limit_exceeded"),
        "CANCELLED" => ("server_error", "cancelled"),
        "DEADLINE_EXCEEDED" => ("server_error", "timeout"),
        "UNAVAILABLE" => ("server_error", "service_unavailable"),
        "INTERNAL" => ("server_error", "internal_error"),
        "UNIMPLEMENTED" => ("invalid_request_error", "unsupported"),
        "ABORTED" => ("server_error", "aborted"),
        "DATA_LOSS" | "UNKNOWN" => ("server_error", "internal_error"),
        _ => return from_http(),
    };
    (kind, code.to_string())
}

/// Translates a Google error body (`{"error":{"code":429,"message":…,"status":"RESOURCE_EXHAUSTED"}}`,
/// also inside a one-element array, as `:streamGenerateContent` without `alt=sse`
/// sends it) into an OpenAI one (`{"error":{"message","type","param","code"}}`).
///
/// The `code` follows the Google status: `RESOURCE_EXHAUSTED` -> `rate_limit_exceeded`
/// (type `rate_limit_error`), `INVALID_ARGUMENT` -> `invalid_argument` (type
/// `invalid_request_error`; `invalid_api_key` / `authentication_error` for the Gemini
/// API's "API key not valid"), `UNAUTHENTICATED` -> `invalid_api_key`,
/// `PERMISSION_DENIED` -> `permission_denied`, `NOT_FOUND` -> `not_found`,
/// `UNAVAILABLE` -> `service_unavailable`, `DEADLINE_EXCEEDED` -> `timeout`,
/// `INTERNAL` -> `internal_error`, ...; without a status, the HTTP `status` decides.
/// A body that is not a Google error yields a generic error naming `status`.
pub fn gemini_error_to_openai(status: u16, body: &[u8]) -> Vec<u8> {
    let parsed: Option<gm::ErrorResponse> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .next()
            .and_then(|v| serde_json::from_value(v).ok()),
        Ok(v) => serde_json::from_value(v).ok(),
        Err(_) => None,
    };
    let (message, google_status, http) = match &parsed {
        Some(e) => {
            let http = match &e.error.code {
                Some(Value::Number(n)) => n.as_u64().and_then(|c| u16::try_from(c).ok()),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .unwrap_or(status);
            let message = if e.error.message.is_empty() {
                format!("upstream returned HTTP {status}")
            } else {
                e.error.message.clone()
            };
            (message, e.error.status.as_deref(), http)
        }
        None => (format!("upstream returned HTTP {status}"), None, status),
    };
    let (kind, code) = openai_error_kind(google_status, http, &message);
    let value = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    serde_json::to_vec(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn req(body: &str) -> Value {
        v(&chat_request_to_gemini(body.as_bytes()).unwrap().0)
    }

    #[test]
    fn stream_flag_is_returned_and_never_in_the_body() {
        let (body, stream) = chat_request_to_gemini(
            br#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        assert!(stream);
        let body = v(&body);
        assert!(body.get("stream").is_none());
        assert!(body.get("model").is_none());
        let (_, stream) =
            chat_request_to_gemini(br#"{"messages":[{"role":"user","content":"x"}]}"#).unwrap();
        assert!(!stream);
    }

    #[test]
    fn empty_generation_config_is_omitted() {
        let out = req(r#"{"messages":[{"role":"user","content":"x"}],"n":1,"stop":[]}"#);
        assert!(out.get("generationConfig").is_none(), "{out}");
        assert!(out.get("systemInstruction").is_none());
    }

    #[test]
    fn n_zero_is_rejected() {
        let e = chat_request_to_gemini(br#"{"messages":[{"role":"user","content":"x"}],"n":0}"#)
            .unwrap_err();
        assert_eq!((e.status, e.param.as_deref()), (400, Some("n")));
    }

    #[test]
    fn tool_message_with_json_object_content_is_the_response_itself() {
        let out = req(r#"{"messages":[
            {"role":"user","content":"q"},
            {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"a","content":"{\"ok\":true}"},
            {"role":"tool","tool_call_id":"a","content":"\"just a string\""}]}"#);
        let parts = &out["contents"][2]["parts"];
        assert_eq!(
            parts[0]["functionResponse"]["response"],
            json!({"ok": true})
        );
        assert_eq!(
            parts[1]["functionResponse"]["response"],
            json!({"content": "\"just a string\""})
        );
    }

    #[test]
    fn mime_guessing() {
        assert_eq!(mime_from_extension("https://x/a.PNG"), "image/png");
        assert_eq!(
            mime_from_extension("https://x/a.jpeg?x=1.png"),
            "image/jpeg"
        );
        assert_eq!(
            mime_from_extension("https://x.org/dir.d/file"),
            "image/jpeg"
        );
        assert_eq!(mime_from_extension("https://x/a.gif#frag.pdf"), "image/gif");
        assert_eq!(mime_from_extension("gs://b/doc.pdf"), "application/pdf");
        assert_eq!(mime_from_extension(""), "image/jpeg");
    }

    #[test]
    fn openapi_schema_keeps_property_names_and_drops_unknown_keywords() {
        let s = json!({"type": "object", "$defs": {}, "properties": {
            "$ref": {"type": "string"}, "x": {"type": ["null", "integer"]}}});
        assert_eq!(
            openapi_schema(&s),
            json!({"type": "object", "properties": {
                "$ref": {"type": "string"}, "x": {"type": "integer", "nullable": true}}})
        );
        assert_eq!(openapi_schema(&json!(true)), json!(true));
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason_for("STOP", false), "stop");
        assert_eq!(finish_reason_for("STOP", true), "tool_calls");
        assert_eq!(finish_reason_for("MAX_TOKENS", true), "length");
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
        ] {
            assert_eq!(finish_reason_for(r, false), "content_filter");
        }
        assert_eq!(finish_reason_for("MALFORMED_FUNCTION_CALL", false), "stop");
        assert_eq!(finish_reason_for("SOMETHING_NEW", false), "stop");
    }

    #[test]
    fn usage_counts_thoughts_as_output_and_tool_prompts_as_input() {
        let u = usage_from_gemini(&gm::UsageMetadata {
            prompt_token_count: Some(100),
            candidates_token_count: Some(10),
            thoughts_token_count: Some(5),
            tool_use_prompt_token_count: Some(7),
            cached_content_token_count: Some(60),
            total_token_count: Some(122),
            ..gm::UsageMetadata::default()
        });
        assert_eq!(
            (u.input, u.output, u.cached_input, u.reasoning, u.total()),
            (107, 15, 60, 5, 122)
        );
        let max = usage_from_gemini(&gm::UsageMetadata {
            prompt_token_count: Some(u64::MAX),
            tool_use_prompt_token_count: Some(1),
            ..gm::UsageMetadata::default()
        });
        assert_eq!(max.input, u64::MAX);
    }

    #[test]
    fn stream_state_accessors() {
        let mut s = GeminiStreamToChat::new("m", 1, false);
        let mut out = Vec::new();
        assert!(!s.first_content_seen());
        assert_eq!(s.usage(), None);
        s.on_event(
            r#"{"candidates":[{"content":{"parts":[{"text":""}]}}]}"#,
            &mut out,
        );
        assert!(!s.first_content_seen(), "an empty text is no content");
        s.on_event(
            r#"{"candidates":[{"content":{"parts":[{"text":"hello there"}]},"finishReason":"STOP"}],
                "usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2}}"#,
            &mut out,
        );
        assert!(s.first_content_seen());
        assert!(s.estimated_output_tokens() > 0);
        assert_eq!(
            s.usage().map(|u| (u.input, u.output, u.estimated)),
            Some((1, 2, false))
        );
        assert!(!s.done());
        s.finish(&mut out);
        assert!(s.done());
        let len = out.len();
        s.on_event(
            r#"{"candidates":[{"content":{"parts":[{"text":"late"}]}}]}"#,
            &mut out,
        );
        s.finish(&mut out);
        assert_eq!(out.len(), len, "nothing after close");
        assert!(String::from_utf8_lossy(&out).ends_with("data: [DONE]\n\n"));
        assert_eq!(s.error(), None);
    }

    #[test]
    fn usage_of_a_stream_cut_before_its_finish_reason_is_estimated() {
        let mut s = GeminiStreamToChat::new("m", 1, false);
        let mut out = Vec::new();
        s.on_event(
            r#"{"candidates":[{"content":{"parts":[{"text":"a fairly long piece of text"}]}}],
                "usageMetadata":{"promptTokenCount":40,"candidatesTokenCount":1,"cachedContentTokenCount":8}}"#,
            &mut out,
        );
        let u = s.usage().unwrap_or_default();
        assert!(u.estimated, "partial cumulative counts are not exact");
        assert_eq!((u.input, u.cached_input), (40, 8));
        assert_eq!(u.output, s.estimated_output_tokens().max(1));
        s.finish(&mut out);
        assert_eq!(s.error(), Some("incomplete_stream"));
        assert!(s.usage().is_some_and(|u| u.estimated));
    }

    #[test]
    fn stream_error_records_the_google_status() {
        let mut s = GeminiStreamToChat::new("m", 1, true);
        let mut out = Vec::new();
        s.on_event(
            r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
            &mut out,
        );
        assert_eq!(s.error(), Some("RESOURCE_EXHAUSTED"));
        assert!(s.done());
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(r#""code":"rate_limit_exceeded""#), "{text}");
        assert!(!text.contains("[DONE]"));
    }

    #[test]
    fn two_candidates_stream_as_two_choices_with_shared_call_ids() {
        let mut s = GeminiStreamToChat::new("m", 1, false);
        let mut out = Vec::new();
        s.on_event(
            r#"{"candidates":[
                {"index":0,"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP"},
                {"index":1,"content":{"parts":[{"functionCall":{"name":"g","args":{}}}]},"finishReason":"STOP"}]}"#,
            &mut out,
        );
        s.finish(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(r#""index":1,"delta":{"role":"assistant","content":""}"#));
        assert!(text.contains(r#""id":"call_0""#) && text.contains(r#""id":"call_1""#));
        assert_eq!(text.matches(r#""finish_reason":"tool_calls""#).count(), 2);
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
            Just("tool_call_id".to_string()),
            Just("id".to_string()),
            Just("function".to_string()),
            Just("arguments".to_string()),
            Just("name".to_string()),
            Just("image_url".to_string()),
            Just("url".to_string()),
            Just("tools".to_string()),
            Just("tool_choice".to_string()),
            Just("response_format".to_string()),
            Just("json_schema".to_string()),
            Just("schema".to_string()),
            Just("parameters".to_string()),
            Just("candidates".to_string()),
            Just("parts".to_string()),
            Just("functionCall".to_string()),
            Just("args".to_string()),
            Just("thought".to_string()),
            Just("finishReason".to_string()),
            Just("usageMetadata".to_string()),
            Just("promptTokenCount".to_string()),
            Just("promptFeedback".to_string()),
            Just("blockReason".to_string()),
            Just("index".to_string()),
            Just("error".to_string()),
            Just("code".to_string()),
            Just("status".to_string()),
            Just("message".to_string()),
            "[a-zA-Z_]{1,12}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            prop_oneof![
                Just("user".to_string()),
                Just("assistant".to_string()),
                Just("tool".to_string()),
                Just("system".to_string()),
                Just("function".to_string()),
                Just("text".to_string()),
                Just("image_url".to_string()),
                Just("json_schema".to_string()),
                Just("STOP".to_string()),
                Just("SAFETY".to_string()),
                Just("RESOURCE_EXHAUSTED".to_string()),
                Just("data:image/png;base64,AAAA".to_string()),
                Just("https://x/y.png".to_string()),
                Just("{\"a\":1}".to_string()),
                Just("call_0".to_string()),
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
        let _ = chat_request_to_gemini(bytes);
        let _ = chat_request_to_gemini_with(bytes, SchemaField::OpenApi);
        let _ = gemini_response_to_chat(bytes, "m", 0);
        let e = gemini_error_to_openai(500, bytes);
        assert!(serde_json::from_slice::<Value>(&e).is_ok());
        let text = String::from_utf8_lossy(bytes);
        let mut out = Vec::new();
        let mut s = GeminiStreamToChat::new("m", 0, true);
        s.on_event(&text, &mut out);
        s.on_event(&text, &mut out);
        s.finish(&mut out);
        let _ = (s.usage(), s.first_content_seen(), s.error());
        // Every emitted event is `data: <json>` or `data: [DONE]`.
        for event in String::from_utf8_lossy(&out).split_terminator("\n\n") {
            let data = event.strip_prefix("data: ").unwrap();
            assert!(data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok());
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            exercise(&bytes);
        }

        #[test]
        fn random_json_never_panics(value in arb_json()) {
            exercise(&serde_json::to_vec(&value).unwrap());
            // Also as the payload of plausible envelopes.
            for envelope in [
                json!({"messages": [value.clone()]}),
                json!({"messages": [{"role": "user", "content": [value.clone()]}]}),
                json!({"messages": [{"role": "assistant", "tool_calls": [value.clone()]},
                                    {"role": "tool", "tool_call_id": "call_0", "content": value.clone()}]}),
                json!({"messages": [{"role": "user", "content": "x"}], "tools": [value.clone()],
                       "tool_choice": value.clone(), "response_format": value.clone()}),
                json!({"messages": [{"role": "user", "content": "x"}],
                       "tools": [{"type": "function", "function": {"name": "f", "parameters": value.clone()}}],
                       "response_format": {"type": "json_schema", "json_schema": {"schema": value.clone()}}}),
                json!({"candidates": [value.clone()], "usageMetadata": value.clone()}),
                json!({"candidates": [{"content": {"parts": [value.clone()]}, "finishReason": value.clone()}]}),
                json!({"promptFeedback": value.clone()}),
                json!({"error": value.clone()}),
                json!([{"error": value.clone()}]),
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

        #[test]
        fn valid_requests_translate(texts in prop::collection::vec(".{0,40}", 1..6)) {
            let messages: Vec<Value> = texts.iter().enumerate().map(|(i, t)| json!({
                "role": if i % 2 == 0 { "user" } else { "assistant" }, "content": t,
            })).collect();
            let body = serde_json::to_vec(&json!({"messages": messages})).unwrap();
            match chat_request_to_gemini(&body) {
                Ok((out, _)) => {
                    let out = v(&out);
                    for c in out["contents"].as_array().unwrap() {
                        prop_assert!(!c["parts"].as_array().unwrap().is_empty());
                    }
                }
                Err(e) => prop_assert!(texts.iter().all(String::is_empty), "{e}"),
            }
        }
    }
}
