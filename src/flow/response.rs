//! Observing (and where needed editing) a provider response as it passes through.
//!
//! JSON bodies: a copy is kept, up to a limit, to read usage and error types at the end.
//! SSE streams: every chunk goes on as it arrives; an incremental parser sees the events
//! for usage, first-content timing and errors. Only when the gateway asked for usage on
//! the client's behalf is the chunk edited — the usage-only event is left out, and the
//! bytes of an event cut by the chunk boundary go out with the next chunk.

use crate::api::errors::GatewayError;
use crate::api::Api;
use crate::stream::anthropic::{text_delta, AnthropicStreamObserver};
use crate::stream::eventstream::EventStreamDecoder;
use crate::stream::openai::{EventVerdict, OpenAiStreamObserver};
use crate::stream::openai_chunk::TextChunk;
use crate::stream::sse::{SseEvent, SseParser};
use crate::tokens::usage::{self, Usage};
use crate::translate::anthropic::{self as tr, ChatToMessagesStream, MessagesToChatStream};
use crate::translate::bedrock::{self, ConverseStreamToChat};
use crate::translate::gemini::{self, GeminiStreamToChat};

/// How the gateway must handle the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapMode {
    /// Nothing to read.
    Skip,
    /// Read each chunk, pass it on unchanged.
    Observe,
    /// Read each chunk and pass on what `on_chunk` returns.
    Edit,
    /// Hold headers and body until the end, then replace the whole body (translation of
    /// a JSON answer: its length and maybe its status change).
    BufferWhole,
}

/// What is known about the response when its headers arrive.
pub struct ResponsePlan<'a> {
    pub client: Api,
    pub upstream: Api,
    pub content_type: &'a str,
    pub status: Option<u32>,
    /// The gateway added `include_usage`: its traces are removed from the stream.
    pub drop_injected_usage: bool,
    /// An OpenAI client asked for `stream_options.include_usage` (translated streams).
    pub client_include_usage: bool,
    pub model_for_client: &'a str,
    /// Bedrock's `x-amzn-ErrorType` response header.
    pub error_type: Option<String>,
    pub created_unix: u64,
    pub max_json: u64,
}

/// What a response chunk needs from the host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkResult<'a> {
    /// Replace the chunk with these bytes (the tap's buffer, which keeps its capacity
    /// from chunk to chunk).
    pub replace: Option<&'a [u8]>,
    /// This chunk carried the first content delta of the answer.
    pub first_content: bool,
}

/// A whole translated body, with the status to answer with.
#[derive(Debug, PartialEq, Eq)]
pub struct Translated {
    pub status: u32,
    pub body: Vec<u8>,
}

pub enum ResponseTap {
    Ignore,
    Json(Box<JsonTap>),
    Stream(Box<StreamTap>),
    /// AWS eventstream (Bedrock ConverseStream), translated to OpenAI SSE.
    EventStream(Box<EventStreamTap>),
}

pub struct EventStreamTap {
    decoder: EventStreamDecoder,
    translator: ConverseStreamToChat,
    failed: bool,
    out: Vec<u8>,
}

pub struct JsonTap {
    upstream: Api,
    body: Vec<u8>,
    overflow: bool,
    max: u64,
    /// `Some(client api)` when the body is translated for the client.
    translate_for: Option<Api>,
    status: u32,
    model_for_client: String,
    created_unix: u64,
    /// Usage read while translating (upstream APIs whose usage is only read then).
    translated_usage: Option<Usage>,
    error_type: Option<String>,
}

enum Observer {
    /// The stream translator itself tracks usage, content and errors.
    InTranslator,
    OpenAi(OpenAiStreamObserver),
    Anthropic(AnthropicStreamObserver),
}

enum Edit {
    GeminiToChat(GeminiStreamToChat),
    None,
    DropInjectedUsage,
    ToChat(MessagesToChatStream),
    ToMessages(ChatToMessagesStream),
}

pub struct StreamTap {
    parser: SseParser,
    observer: Observer,
    edit: Edit,
    out: Vec<u8>,
}

impl ResponseTap {
    pub fn new(plan: &ResponsePlan<'_>) -> ResponseTap {
        let ct = plan.content_type.to_ascii_lowercase();
        let translate = plan.client != plan.upstream;
        if ct.starts_with("application/vnd.amazon.eventstream") && plan.upstream == Api::Bedrock {
            ResponseTap::EventStream(Box::new(EventStreamTap {
                decoder: EventStreamDecoder::new(),
                translator: ConverseStreamToChat::new(
                    plan.model_for_client,
                    plan.created_unix,
                    plan.client_include_usage,
                ),
                failed: false,
                out: Vec::new(),
            }))
        } else if ct.starts_with("text/event-stream") {
            let observer = match plan.upstream {
                Api::OpenAi => Observer::OpenAi(OpenAiStreamObserver::new()),
                Api::Anthropic => Observer::Anthropic(AnthropicStreamObserver::new()),
                Api::Gemini | Api::Bedrock => Observer::InTranslator,
            };
            let edit = match (plan.client, plan.upstream) {
                (Api::OpenAi, Api::Anthropic) => Edit::ToChat(MessagesToChatStream::new(
                    plan.model_for_client,
                    "chatcmpl-gw",
                    plan.created_unix,
                    plan.client_include_usage,
                )),
                (Api::Anthropic, Api::OpenAi) => {
                    Edit::ToMessages(ChatToMessagesStream::new(plan.model_for_client, "msg_gw"))
                }
                (_, Api::Gemini) => Edit::GeminiToChat(GeminiStreamToChat::new(
                    plan.model_for_client,
                    plan.created_unix,
                    plan.client_include_usage,
                )),
                _ if plan.drop_injected_usage => Edit::DropInjectedUsage,
                _ => Edit::None,
            };
            ResponseTap::Stream(Box::new(StreamTap {
                parser: SseParser::new(),
                observer,
                edit,
                out: Vec::new(),
            }))
        } else if ct.contains("json") || (translate && !ct.starts_with("text/html")) {
            ResponseTap::Json(Box::new(JsonTap {
                upstream: plan.upstream,
                body: Vec::new(),
                overflow: false,
                max: plan.max_json,
                translate_for: translate.then_some(plan.client),
                status: plan.status.unwrap_or(200),
                model_for_client: plan.model_for_client.to_string(),
                created_unix: plan.created_unix,
                translated_usage: None,
                error_type: plan.error_type.clone(),
            }))
        } else {
            ResponseTap::Ignore
        }
    }

    /// The `content-type` the client must see when the tap changes the body's format:
    /// a Bedrock eventstream is translated to OpenAI SSE, so the upstream
    /// `application/vnd.amazon.eventstream` must not reach the client.
    pub fn client_content_type(&self) -> Option<&'static str> {
        match self {
            ResponseTap::EventStream(_) => Some("text/event-stream"),
            _ => None,
        }
    }

    pub fn mode(&self) -> TapMode {
        match self {
            ResponseTap::Ignore => TapMode::Skip,
            ResponseTap::Json(j) if j.translate_for.is_some() => TapMode::BufferWhole,
            ResponseTap::Json(j) if j.overflow => TapMode::Skip,
            ResponseTap::Json(_) => TapMode::Observe,
            ResponseTap::Stream(s) => match s.edit {
                Edit::None => TapMode::Observe,
                _ => TapMode::Edit,
            },
            ResponseTap::EventStream(_) => TapMode::Edit,
        }
    }

    /// One chunk of the body (modes `Observe` and `Edit`).
    pub fn on_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> ChunkResult<'_> {
        match self {
            ResponseTap::Ignore => ChunkResult::default(),
            ResponseTap::Json(j) => {
                j.keep(chunk);
                ChunkResult::default()
            }
            ResponseTap::Stream(s) => s.on_chunk(chunk, end_of_stream),
            ResponseTap::EventStream(s) => s.on_chunk(chunk, end_of_stream),
        }
    }

    /// The whole body (mode `BufferWhole`): the translated answer for the client.
    pub fn translate_whole(&mut self, body: &[u8]) -> Option<Translated> {
        match self {
            ResponseTap::Json(j) => {
                j.keep(body);
                j.translate()
            }
            _ => None,
        }
    }

    /// Usage reported by the provider so far (`None` when it reported none).
    pub fn usage(&self) -> Option<Usage> {
        match self {
            ResponseTap::Ignore => None,
            ResponseTap::Json(j) => match j.upstream {
                Api::OpenAi => usage::from_openai_json(&j.body),
                Api::Anthropic => usage::from_anthropic_json(&j.body),
                Api::Gemini | Api::Bedrock => j.translated_usage,
            },
            ResponseTap::EventStream(s) => s.translator.usage(),
            ResponseTap::Stream(s) => match &s.observer {
                Observer::OpenAi(o) => o.usage(),
                Observer::Anthropic(o) => o.usage(),
                Observer::InTranslator => match &s.edit {
                    Edit::GeminiToChat(t) => t.usage(),
                    _ => None,
                },
            },
        }
    }

    /// Estimated output tokens of a stream (from the streamed text).
    pub fn estimated_output(&self) -> Option<u64> {
        match self {
            ResponseTap::EventStream(s) => Some(s.translator.estimated_output_tokens()),
            ResponseTap::Stream(s) => Some(match &s.observer {
                Observer::OpenAi(o) => o.estimated_output_tokens(),
                Observer::Anthropic(o) => o.estimated_output_tokens(),
                Observer::InTranslator => match &s.edit {
                    Edit::GeminiToChat(t) => t.estimated_output_tokens(),
                    _ => 0,
                },
            }),
            _ => None,
        }
    }

    /// Error type from an error body or a mid-stream error event.
    pub fn error_type(&self) -> Option<String> {
        match self {
            ResponseTap::Ignore => None,
            ResponseTap::Json(j) => j
                .error_type
                .as_deref()
                .map(|t| t.split(':').next().unwrap_or(t).to_string())
                .or_else(|| crate::api::errors::upstream_error_type(&j.body)),
            ResponseTap::EventStream(s) => s.translator.error().map(str::to_string),
            ResponseTap::Stream(s) => match &s.observer {
                Observer::OpenAi(o) => o.error().map(str::to_string),
                Observer::Anthropic(o) => o.error().map(str::to_string),
                Observer::InTranslator => match &s.edit {
                    Edit::GeminiToChat(t) => t.error().map(str::to_string),
                    _ => None,
                },
            },
        }
    }
}

impl JsonTap {
    fn keep(&mut self, chunk: &[u8]) {
        if self.overflow {
            return;
        }
        if (self.body.len() + chunk.len()) as u64 > self.max {
            self.overflow = true;
            self.body = Vec::new();
        } else {
            self.body.extend_from_slice(chunk);
        }
    }

    fn translate(&mut self) -> Option<Translated> {
        let client = self.translate_for?;
        let status = self.status;
        let code = u16::try_from(status).unwrap_or(502);
        if self.overflow {
            let e = GatewayError::upstream(
                502,
                "the provider's answer exceeds max_response_bytes and cannot be translated",
            );
            return Some(Translated {
                status: 502,
                body: e.body_for(client),
            });
        }
        if status >= 400 && self.upstream == Api::Bedrock {
            let (status, body) =
                bedrock::bedrock_error_to_openai(code, &self.body, self.error_type.as_deref());
            return Some(Translated {
                status: u32::from(status),
                body,
            });
        }
        if status >= 400 {
            let body = match (client, self.upstream) {
                (_, Api::Gemini) => gemini::gemini_error_to_openai(code, &self.body),
                (Api::Anthropic, _) => tr::openai_error_to_anthropic(code, &self.body),
                _ => tr::anthropic_error_to_openai(code, &self.body),
            };
            return Some(Translated { status, body });
        }
        let (model, created) = (self.model_for_client.as_str(), self.created_unix);
        let result = match (client, self.upstream) {
            (_, Api::Gemini) => gemini::gemini_response_to_chat(&self.body, model, created),
            (_, Api::Bedrock) => bedrock::converse_response_to_chat(&self.body, model, created),
            (Api::Anthropic, _) => tr::chat_response_to_messages(&self.body, model),
            _ => tr::messages_response_to_chat(&self.body, model, created),
        };
        Some(match result {
            Ok((body, usage)) => {
                if matches!(self.upstream, Api::Gemini | Api::Bedrock) {
                    self.translated_usage = Some(usage);
                }
                Translated { status, body }
            }
            Err(e) => {
                let e = GatewayError::from_translate(e);
                Translated {
                    status: e.status,
                    body: e.body_for(client),
                }
            }
        })
    }
}

impl EventStreamTap {
    fn on_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> ChunkResult<'_> {
        self.out.clear();
        let before = self.translator.first_content_seen();
        if !self.failed {
            let translator = &mut self.translator;
            let out = &mut self.out;
            if let Err(e) = self.decoder.feed(chunk, |m| translator.on_message(m, out)) {
                self.failed = true;
                self.translator
                    .on_decode_error(&e.to_string(), &mut self.out);
            }
        }
        if end_of_stream {
            if !self.failed {
                if let Err(e) = self.decoder.finish() {
                    self.translator
                        .on_decode_error(&e.to_string(), &mut self.out);
                }
            }
            self.translator.finish(&mut self.out);
        }
        ChunkResult {
            replace: Some(&self.out),
            first_content: !before && self.translator.first_content_seen(),
        }
    }
}

impl StreamTap {
    fn on_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> ChunkResult<'_> {
        let mut first_content = false;
        let observer = &mut self.observer;
        let edit = &mut self.edit;
        let out = &mut self.out;
        out.clear();
        // Edited streams are about as long as they came (translated ones longer).
        out.reserve(chunk.len());
        let mut on_event = |ev: &SseEvent<'_>| {
            // An Anthropic text delta, or an OpenAI content chunk translated for an
            // Anthropic client, is read once, for the observer and the translator.
            let delta = match observer {
                Observer::Anthropic(_) => text_delta(ev.event, ev.data),
                _ => None,
            };
            let mut chunk = match (&observer, &mut *edit) {
                (Observer::OpenAi(_), Edit::ToMessages(t)) => t.read_chunk(ev.data),
                _ => None,
            };
            let (forward, first) = match observer {
                Observer::OpenAi(o) => {
                    let obs = o.observe_read(ev, chunk.as_ref().map(TextChunk::content_chunk));
                    (obs.verdict == EventVerdict::Forward, obs.first_content)
                }
                Observer::Anthropic(o) => (true, o.observe_read(ev, delta.as_ref())),
                Observer::InTranslator => (true, false),
            };
            first_content |= first;
            match edit {
                Edit::None => {}
                Edit::DropInjectedUsage => {
                    if forward {
                        // With include_usage OpenAI adds `"usage":null` to every chunk;
                        // the client did not ask for it, so it does not see it.
                        match strip_null_usage(ev.raw) {
                            Some((a, b)) => {
                                out.extend_from_slice(a);
                                out.extend_from_slice(b);
                            }
                            None => out.extend_from_slice(ev.raw),
                        }
                    }
                }
                Edit::ToChat(t) => {
                    if !ev.event.is_empty() || !ev.data.is_empty() {
                        t.on_event_read(ev.event, ev.data, delta.as_ref(), out);
                    }
                }
                Edit::ToMessages(t) => {
                    if !ev.data.is_empty() {
                        t.on_event_read(ev.data, chunk.take(), out);
                    }
                }
                Edit::GeminiToChat(t) => {
                    if !ev.data.is_empty() {
                        let before = t.first_content_seen();
                        t.on_event(ev.data, out);
                        first_content |= !before && t.first_content_seen();
                    }
                }
            }
        };
        self.parser.feed(chunk, &mut on_event);
        if end_of_stream {
            self.parser.finish(&mut on_event);
            match &mut self.edit {
                Edit::ToChat(t) => t.finish(&mut self.out),
                Edit::ToMessages(t) => t.finish(&mut self.out),
                Edit::GeminiToChat(t) => t.finish(&mut self.out),
                _ => {}
            }
        }
        let replace = match self.edit {
            Edit::None => None,
            // Unchanged chunks (nothing dropped, nothing held back) are left as they are.
            Edit::DropInjectedUsage if self.out.as_slice() == chunk => None,
            _ => Some(self.out.as_slice()),
        };
        ChunkResult {
            replace,
            first_content,
        }
    }
}

/// Splits `raw` around its last `"usage": null` member (with the comma that separates it
/// from the previous member), so that joining the two parts leaves the member out.
/// `None` when there is no such member. Inside JSON strings quotes are escaped, so the
/// pattern can only match a real member.
pub fn strip_null_usage(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    const KEY: &[u8] = b"\"usage\"";
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut search_end = raw.len();
    while let Some(key_at) = raw
        .get(..search_end)
        .and_then(|hay| hay.windows(KEY.len()).rposition(|w| w == KEY))
    {
        search_end = key_at;
        // After the key: ws ':' ws "null"
        let mut i = key_at + KEY.len();
        while raw.get(i).is_some_and(|b| ws(*b)) {
            i += 1;
        }
        if raw.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while raw.get(i).is_some_and(|b| ws(*b)) {
            i += 1;
        }
        if raw.get(i..i + 4) != Some(b"null") {
            continue;
        }
        let value_end = i + 4;
        // Before the key: ws ','
        let mut j = key_at;
        while j > 0 && raw.get(j - 1).is_some_and(|b| ws(*b)) {
            j -= 1;
        }
        if j > 0 && raw.get(j - 1) == Some(&b',') {
            return Some((raw.get(..j - 1)?, raw.get(value_end..)?));
        }
        // First member: drop the comma that follows instead.
        let mut k = value_end;
        while raw.get(k).is_some_and(|b| ws(*b)) {
            k += 1;
        }
        if raw.get(k) == Some(&b',') {
            return Some((raw.get(..key_at)?, raw.get(k + 1..)?));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(content_type: &str, drop: bool) -> ResponsePlan<'_> {
        ResponsePlan {
            client: Api::OpenAi,
            upstream: Api::OpenAi,
            content_type,
            status: Some(200),
            drop_injected_usage: drop,
            client_include_usage: false,
            model_for_client: "m",
            error_type: None,
            created_unix: 0,
            max_json: 1 << 20,
        }
    }

    fn strip(s: &str) -> String {
        match strip_null_usage(s.as_bytes()) {
            Some((a, b)) => format!(
                "{}{}",
                String::from_utf8_lossy(a),
                String::from_utf8_lossy(b)
            ),
            None => s.to_string(),
        }
    }

    #[test]
    fn null_usage_member_is_removed() {
        assert_eq!(
            strip("data: {\"id\":\"x\",\"choices\":[],\"usage\":null}\n\n"),
            "data: {\"id\":\"x\",\"choices\":[]}\n\n"
        );
        assert_eq!(
            strip("data: {\"a\":1 , \"usage\" : null }\n\n"),
            "data: {\"a\":1  }\n\n"
        );
        assert_eq!(
            strip("data: {\"usage\":null,\"a\":1}\n\n"),
            "data: {\"a\":1}\n\n"
        );
        // Not null, not a member, or inside a string: untouched.
        for s in [
            "data: {\"usage\":{\"prompt_tokens\":1}}\n\n",
            "data: {\"c\":\"say \\\"usage\\\":null\"}\n\n",
            "data: [DONE]\n\n",
            "data: {\"usage\":nullx}",
        ] {
            assert_eq!(strip(s), s, "{s}");
        }
    }

    fn stream_through(tap: &mut ResponseTap, input: &[u8], split: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = input.chunks(split.max(1)).collect();
        for (i, c) in chunks.iter().enumerate() {
            let r = tap.on_chunk(c, i + 1 == chunks.len());
            out.extend_from_slice(r.replace.unwrap_or(c));
        }
        out
    }

    #[test]
    fn bedrock_eventstream_is_announced_to_the_client_as_sse() {
        let mut p = plan("application/vnd.amazon.eventstream", false);
        p.upstream = Api::Bedrock;
        assert_eq!(
            ResponseTap::new(&p).client_content_type(),
            Some("text/event-stream")
        );
        for ct in ["text/event-stream", "application/json"] {
            let mut p = plan(ct, false);
            p.upstream = Api::Gemini;
            assert_eq!(ResponseTap::new(&p).client_content_type(), None);
        }
    }

    #[test]
    fn injected_usage_is_invisible_to_the_client_for_any_split() {
        let with = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n",
            "data: [DONE]\n\n"
        );
        let without = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n"
        );
        for split in 1..with.len() {
            let mut tap = ResponseTap::new(&plan("text/event-stream", true));
            let out = stream_through(&mut tap, with.as_bytes(), split);
            assert_eq!(String::from_utf8(out).unwrap(), without, "split {split}");
            let u = tap.usage().unwrap();
            assert_eq!((u.input, u.output, u.estimated), (5, 2, false));
        }
        // Not injected: the stream passes unchanged.
        let mut tap = ResponseTap::new(&plan("text/event-stream; charset=utf-8", false));
        assert_eq!(
            stream_through(&mut tap, with.as_bytes(), 7),
            with.as_bytes()
        );
    }

    /// An OpenAI stream translated for an Anthropic client is read once for the observer
    /// and the translator where it can be: the client gets what the translator writes
    /// alone, and the usage estimate and first content are the observer's alone, also
    /// for the chunks that only one of the two readers takes (reasoning, completion text,
    /// function calls, Responses API members); the usage is the same for both.
    #[test]
    fn a_stream_translated_for_anthropic_is_observed_as_untranslated() {
        let head =
            r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o""#;
        let events = [
            r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#,
            r#"{"index":0,"delta":{"reasoning":"weighing the question at some length first"}}"#,
            r#"{"index":0,"delta":{"content":"The answer"},"finish_reason":null}"#,
            r#"{"index":0,"text":" as a completion would have it, word after word"}"#,
            r#"{"index":0,"delta":{"content":" is 42","function_call":{"name":"f","arguments":"{}"}}}"#,
            r#"{"index":0,"delta":{"content":", said"},"text":null,"finish_reason":null}"#,
            r#"{"index":0,"delta":{"content":" the machine"},"finish_reason":"stop"}"#,
        ];
        let mut body = String::new();
        for (i, choice) in events.iter().enumerate() {
            let extra = if i == 2 {
                r#","type":"response.output_text.delta","delta":"more text from elsewhere, of some length""#
            } else {
                ""
            };
            body.push_str(&format!(
                "data: {{{head},\"choices\":[{choice}]{extra}}}\n\n"
            ));
        }
        body.push_str(&format!("data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":30,\"prompt_tokens_details\":{{\"cached_tokens\":4}}}}}}\n\n"));
        body.push_str("data: [DONE]\n\n");
        let mut alone = OpenAiStreamObserver::new();
        let mut translator = ChatToMessagesStream::new("m", "msg_gw");
        let (mut expected, mut firsts) = (Vec::new(), Vec::new());
        let mut parser = SseParser::new();
        let mut on_event = |ev: &SseEvent<'_>| {
            firsts.push(alone.observe(ev).first_content);
            if !ev.data.is_empty() {
                translator.on_event(ev.data, &mut expected);
            }
        };
        parser.feed(body.as_bytes(), &mut on_event);
        parser.finish(&mut on_event);
        translator.finish(&mut expected);
        assert_eq!(firsts.iter().position(|f| *f), Some(1));
        let estimate = alone.estimated_output_tokens();
        assert_eq!(
            alone.usage().map(|u| (u.input, u.output, u.cached_input)),
            Some((12, 30, 4))
        );
        assert!(String::from_utf8_lossy(&expected).contains(r#""output_tokens":30"#));
        for split in [1, 7, 64, body.len()] {
            let mut p = plan("text/event-stream", false);
            (p.client, p.upstream) = (Api::Anthropic, Api::OpenAi);
            let mut tap = ResponseTap::new(&p);
            let chunks: Vec<&[u8]> = body.as_bytes().chunks(split).collect();
            let (mut out, mut first_at) = (Vec::new(), Vec::new());
            for (i, c) in chunks.iter().enumerate() {
                let r = tap.on_chunk(c, i + 1 == chunks.len());
                if r.first_content {
                    first_at.push(out.len());
                }
                out.extend_from_slice(r.replace.unwrap_or(c));
            }
            assert_eq!(
                String::from_utf8(out).unwrap(),
                String::from_utf8_lossy(&expected),
                "split {split}"
            );
            assert_eq!(first_at.len(), 1, "split {split}");
            assert_eq!(tap.estimated_output(), Some(estimate), "split {split}");
            assert_eq!(tap.usage(), alone.usage(), "split {split}");
        }
    }

    #[test]
    fn json_copy_is_bounded() {
        let mut p = plan("application/json", false);
        p.max_json = 10;
        let mut tap = ResponseTap::new(&p);
        tap.on_chunk(b"{\"usage\":{\"prompt_tokens\":1}}", false);
        assert_eq!(tap.mode(), TapMode::Skip);
        assert_eq!(tap.usage(), None);
    }
}
