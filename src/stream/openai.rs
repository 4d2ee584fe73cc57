//! Observer of an OpenAI chat/completions SSE stream (`chat.completion.chunk` and
//! streamed `text_completion` chunks).
//!
//! Feed it every event from [`crate::stream::sse::SseParser`]; it records what the gateway
//! needs (time to first content, usage, an output estimate, errors, end of stream)
//! and tells which event is the usage-only chunk that `stream_options.include_usage`
//! adds, so the filter can drop it when the client did not ask for it.
//!
//! Each chunk is parsed with small borrowed serde structs that read only
//! `choices[].delta.{content, reasoning_content, reasoning, refusal, tool_calls[].function.{name, arguments}, function_call}`,
//! `choices[].text`, `usage` and `error`; every other member is skipped without being
//! built. Strings are borrowed from the event unless they contain JSON escapes. A
//! member of an unexpected type is ignored rather than failing the chunk, and a
//! chunk that is not JSON is forwarded and otherwise ignored.
//!
//! Output tokens are estimated incrementally: every delta's text goes through one
//! [`TokenEstimator`], so the estimate equals
//! [`crate::tokens::estimate::estimate_text_tokens`] of all streamed text concatenated.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

use crate::fastjson::Str;
use crate::stream::openai_chunk::ContentChunk;
use crate::stream::sse::SseEvent;
use crate::tokens::estimate::TokenEstimator;
use crate::tokens::usage::{OpenAiUsage, Usage};

/// What the filter should do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventVerdict {
    /// Pass the event on unchanged.
    Forward,
    /// The usage-only chunk: `choices` empty (or absent) and `usage` present. Its
    /// usage has been recorded; the filter may drop the event.
    DropUsageOnly,
}

/// Result of [`OpenAiStreamObserver::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub verdict: EventVerdict,
    /// True for exactly one event per stream: the first one carrying content
    /// (the moment that ends time-to-first-token).
    pub first_content: bool,
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct OpenAiStreamObserver {
    first_content_seen: bool,
    usage: Option<Usage>,
    output_chars: u64,
    estimator: TokenEstimator,
    done: bool,
    error: Option<String>,
    content_chunks: u64,
    /// What the chunks so far have in common before `choices`.
    prefix: crate::stream::openai_chunk::ChunkPrefix,
}

impl OpenAiStreamObserver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Inspects one SSE event (data = JSON chunk or `[DONE]`). Events with empty data
    /// (keep-alive comments, fragments of oversize events) are forwarded and ignored.
    pub fn observe(&mut self, ev: &SseEvent<'_>) -> Observation {
        self.observe_read(ev, None)
    }

    /// [`Self::observe`] for an event a stricter reader has already read (`read`, what
    /// [`crate::stream::openai_chunk::content_chunk`] would answer), so that the OpenAI →
    /// Anthropic translator and this observer walk the chunk once.
    pub(crate) fn observe_read(
        &mut self,
        ev: &SseEvent<'_>,
        read: Option<ContentChunk<'_>>,
    ) -> Observation {
        let forward = Observation {
            verdict: EventVerdict::Forward,
            first_content: false,
        };
        let is_error_event = ev.event == "error";
        let data = ev.data.trim();
        if data.is_empty() && !is_error_event {
            return forward;
        }
        if data == "[DONE]" {
            self.done = true;
            return forward;
        }
        // The usual content chunk without serde; anything else with it.
        let read = read
            .or_else(|| crate::stream::openai_chunk::content_chunk_after(data, &mut self.prefix));
        let parsed = match read {
            Some(read) => Ok(Chunk::of_read(read)),
            None => serde_json::from_str(data),
        };
        let chunk: Chunk<'_> = match parsed {
            Ok(c) => c,
            Err(_) => {
                if is_error_event {
                    self.set_error(None);
                }
                return forward;
            }
        };
        if let Some(err) = chunk.error {
            self.set_error(Some(err));
        } else if is_error_event {
            self.set_error(None);
        }
        let has_usage = chunk.usage.is_some() || chunk.read_usage.is_some();
        if let Some(u) = chunk.read_usage.or_else(|| chunk_usage(chunk.usage)) {
            self.usage = Some(u);
        }
        let stats = chunk.choices.unwrap_or_default();
        let mut first_content = false;
        if let Some(response) = &chunk.response {
            if let Some(raw) = response.usage {
                if let Ok(u) = serde_json::from_str::<OpenAiUsage>(raw.get()) {
                    self.usage = Some(u.to_usage());
                }
            }
            if let Some(err) = response.error.filter(|e| e.get() != "null") {
                self.set_error(Some(err));
            }
        }
        let responses_delta = match (chunk.kind, chunk.delta) {
            (Some(kind), Some(raw))
                if kind.starts_with("response.") && kind.ends_with(".delta") =>
            {
                serde_json::from_str::<String>(raw.get())
                    .ok()
                    .filter(|d| !d.is_empty())
            }
            _ => None,
        };
        if let Some(text) = &responses_delta {
            self.output_chars = self
                .output_chars
                .saturating_add(text.chars().count() as u64);
            self.estimator.push(text);
            self.content_chunks = self.content_chunks.saturating_add(1);
            if !self.first_content_seen {
                self.first_content_seen = true;
                first_content = true;
            }
        }
        if stats.has_content {
            self.content_chunks = self.content_chunks.saturating_add(1);
            if !self.first_content_seen && !first_content {
                self.first_content_seen = true;
                first_content = true;
            }
        }
        let verdict = if stats.count == 0 && has_usage && chunk.error.is_none() {
            EventVerdict::DropUsageOnly
        } else {
            EventVerdict::Forward
        };
        // Text was collected into `stats` in order; feed it to the estimator.
        for piece in stats.texts() {
            self.output_chars = self
                .output_chars
                .saturating_add(piece.chars().count() as u64);
            self.estimator.push(piece);
        }
        Observation {
            verdict,
            first_content,
        }
    }

    /// True once a chunk with non-empty content, text, refusal, reasoning or tool call
    /// has been seen.
    pub fn first_content_seen(&self) -> bool {
        self.first_content_seen
    }

    /// The last usage reported in the stream (exact, `estimated == false`).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Characters of streamed output text: content, text, refusal, reasoning, tool
    /// call names and arguments.
    pub fn output_chars(&self) -> u64 {
        self.output_chars
    }

    /// Estimated tokens of the streamed output text (see [`crate::tokens::estimate`]).
    pub fn estimated_output_tokens(&self) -> u64 {
        self.estimator.estimate()
    }

    /// The reported usage, or else an estimate (`estimated == true`) from
    /// `estimated_input` (e.g. [`crate::tokens::estimate::estimate_request_input_tokens`] of
    /// the request) and the streamed output.
    pub fn usage_or_estimate(&self, estimated_input: u64) -> Usage {
        self.usage.unwrap_or(Usage {
            input: estimated_input,
            output: self.estimated_output_tokens(),
            estimated: true,
            ..Usage::default()
        })
    }

    /// `[DONE]` seen.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The first error seen (an `event: error` event or a chunk with an `error`
    /// member): its `type`, else its `code`, else `"error"`.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Number of chunks that carried content.
    pub fn content_chunks(&self) -> u64 {
        self.content_chunks
    }

    fn set_error(&mut self, err: Option<&RawValue>) {
        if self.error.is_some() {
            return;
        }
        let label = err
            .and_then(|raw| serde_json::from_str::<ErrorBody<'_>>(raw.get()).ok())
            .and_then(|e| {
                e.kind
                    .and_then(|k| k.0)
                    .filter(|k| !k.is_empty())
                    .map(|k| k.into_owned())
                    .or(e.code.and_then(|c| c.0))
            });
        self.error = Some(label.unwrap_or_else(|| "error".to_string()));
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Choices<'a>>,
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
    // Responses API events: `{"type":"response.output_text.delta","delta":"…"}`,
    // `{"type":"response.completed","response":{…,"usage":{…}}}`.
    #[serde(default, rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(default, borrow)]
    delta: Option<&'a RawValue>,
    #[serde(default, borrow)]
    response: Option<ResponseObject<'a>>,
    /// The usage [`crate::stream::openai_chunk::content_chunk`] read (then `usage` is `None`).
    #[serde(skip)]
    read_usage: Option<Usage>,
}

/// A chunk's `usage` member as serde reads it (`None` when it does not read).
fn chunk_usage(raw: Option<&RawValue>) -> Option<Usage> {
    let u = serde_json::from_str::<OpenAiUsage>(raw?.get()).ok()?;
    Some(u.to_usage())
}

/// A chunk as [`serde_reading`] reads it.
#[cfg(test)]
pub(crate) type Reading = Option<(usize, bool, Vec<String>, Option<Usage>, bool)>;

/// serde's reading of a chunk, for the fast reader's property test: the number of
/// choices, whether one carries content, the text pieces in order, the usage, and
/// whether the chunk has a usage that does not read, an error or Responses API members.
#[cfg(test)]
pub(crate) fn serde_reading(data: &str) -> Reading {
    let c: Chunk<'_> = serde_json::from_str(data).ok()?;
    let usage = chunk_usage(c.usage);
    let other = (c.usage.is_some() && usage.is_none())
        || c.error.is_some()
        || c.kind.is_some()
        || c.delta.is_some()
        || c.response.is_some();
    let choices = c.choices.unwrap_or_default();
    let texts = choices.texts().map(str::to_owned).collect();
    Some((choices.count, choices.has_content, texts, usage, other))
}

impl<'a> Chunk<'a> {
    fn of_read(read: ContentChunk<'a>) -> Self {
        Chunk {
            choices: Some(read.choices),
            usage: None,
            error: None,
            kind: None,
            delta: None,
            response: None,
            read_usage: read.usage,
        }
    }
}

#[derive(Deserialize, Default)]
struct ResponseObject<'a> {
    #[serde(default, borrow)]
    usage: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
}

/// `error` object: `{"type": ..., "code": ...}` (any other shape reads as empty).
#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Str<'a>>,
    code: Option<Code>,
}

/// An error `code`: a string or a number.
struct Code(Option<String>);

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error code")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Code, E> {
                Ok(Code((!s.is_empty()).then(|| s.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Code, E> {
                Ok(Code(Some(n.to_string())))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Code, E> {
                Ok(Code(Some(n.to_string())))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Code, E> {
                Ok(Code(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Code, E> {
                Ok(Code(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Code, E> {
                Ok(Code(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Code, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Code(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Code, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Code(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `choices` array, folded as it is read: how many choices, whether any carries
/// content, and the output text pieces in stream order. A chunk almost always has
/// one choice with one text piece, which is kept inline without allocating.
#[derive(Default)]
pub(crate) struct Choices<'a> {
    pub(crate) count: usize,
    pub(crate) has_content: bool,
    first: Option<Str<'a>>,
    more: Vec<Str<'a>>,
}

impl<'a> Choices<'a> {
    pub(crate) fn add(&mut self, s: Option<Str<'a>>) {
        let Some(s) = s else { return };
        if s.as_str().is_empty() {
            return;
        }
        self.has_content = true;
        if self.first.is_none() {
            self.first = Some(s);
        } else {
            self.more.push(s);
        }
    }

    pub(crate) fn texts(&self) -> impl Iterator<Item = &str> {
        self.first
            .iter()
            .chain(self.more.iter())
            .map(|s| s.as_str())
    }
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Lenient<Delta<'a>>>,
    #[serde(default, borrow)]
    text: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Str<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Str<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<Str<'a>>,
    #[serde(default, borrow)]
    refusal: Option<Str<'a>>,
    #[serde(default, borrow)]
    tool_calls: Option<Lenient<Vec<Lenient<ToolCall<'a>>>>>,
    #[serde(default, borrow)]
    function_call: Option<Lenient<Function<'a>>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(default, borrow)]
    function: Option<Lenient<Function<'a>>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(default, borrow)]
    name: Option<Str<'a>>,
    #[serde(default, borrow)]
    arguments: Option<Str<'a>>,
}

/// A value that reads as `None` instead of failing when it has another shape.
struct Lenient<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only objects and arrays can be T here; scalars are skipped.
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object or array")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(|t| Lenient(Some(t)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Lenient(Some(t)))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Choices<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("choices")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Choices::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut acc = Choices::default();
                while let Some(choice) = seq.next_element::<Lenient<Choice<'a>>>()? {
                    acc.count += 1;
                    let Some(choice) = choice.0 else { continue };
                    acc.add(choice.text);
                    let Some(Lenient(Some(delta))) = choice.delta else {
                        continue;
                    };
                    acc.add(delta.reasoning_content);
                    acc.add(delta.reasoning);
                    acc.add(delta.content);
                    acc.add(delta.refusal);
                    if let Some(Lenient(Some(f))) = delta.function_call {
                        acc.add(f.name);
                        acc.add(f.arguments);
                    }
                    let calls = delta.tool_calls.and_then(|t| t.0).unwrap_or_default();
                    for call in calls.into_iter().filter_map(|c| c.0) {
                        if let Some(Lenient(Some(f))) = call.function {
                            acc.add(f.name);
                            acc.add(f.arguments);
                        }
                    }
                }
                Ok(acc)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Choices::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod responses_api_tests {
    use super::*;
    use crate::stream::sse::SseParser;

    #[test]
    fn responses_stream_usage_and_first_content() {
        let stream = concat!(
            "event: response.created\n",
            "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
            "event: response.output_text.delta\n",
            "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}\n\n",
            "event: response.output_text.delta\n",
            "data: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\" world\"}\n\n",
            "event: response.completed\n",
            "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"error\":null,",
            "\"usage\":{\"input_tokens\":11,\"input_tokens_details\":{\"cached_tokens\":2},\"output_tokens\":3,",
            "\"output_tokens_details\":{\"reasoning_tokens\":1},\"total_tokens\":14}}}\n\n",
        );
        let mut obs = OpenAiStreamObserver::new();
        let mut parser = SseParser::new();
        let mut firsts = 0;
        let mut dropped = 0;
        parser.feed(stream.as_bytes(), |ev| {
            let o = obs.observe(ev);
            firsts += usize::from(o.first_content);
            dropped += usize::from(o.verdict == EventVerdict::DropUsageOnly);
        });
        assert_eq!((firsts, dropped), (1, 0));
        let u = obs.usage().unwrap();
        assert_eq!(
            (u.input, u.output, u.cached_input, u.reasoning),
            (11, 3, 2, 1)
        );
        assert_eq!(obs.error(), None);
        assert_eq!(obs.output_chars(), 11);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::sse::SseParser;
    use crate::tokens::estimate::estimate_text_tokens;
    use proptest::prelude::*;

    fn ev(data: &str) -> SseEvent<'_> {
        SseEvent {
            event: "",
            data,
            id: None,
            raw: data.as_bytes(),
        }
    }

    fn content_chunk(text: &str) -> String {
        let json = serde_json::to_string(text).unwrap();
        format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":{json}}},"finish_reason":null}}]}}"#
        )
    }

    const ROLE_CHUNK: &str = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
    const FINISH_CHUNK: &str = r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    const USAGE_CHUNK: &str = r#"{"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}"#;

    #[test]
    fn full_chat_stream() {
        let mut o = OpenAiStreamObserver::new();
        let r = o.observe(&ev(ROLE_CHUNK));
        assert_eq!(r.verdict, EventVerdict::Forward);
        assert!(!r.first_content);
        assert!(!o.first_content_seen());

        let r = o.observe(&ev(&content_chunk("Hello")));
        assert!(r.first_content);
        assert!(o.first_content_seen());
        let r = o.observe(&ev(&content_chunk(" world\n")));
        assert!(!r.first_content);
        assert_eq!(o.observe(&ev(FINISH_CHUNK)).verdict, EventVerdict::Forward);
        assert_eq!(o.usage(), None);

        let r = o.observe(&ev(USAGE_CHUNK));
        assert_eq!(r.verdict, EventVerdict::DropUsageOnly);
        assert!(!r.first_content);
        assert!(!o.done());
        o.observe(&ev("[DONE]"));
        assert!(o.done());

        assert_eq!(o.content_chunks(), 2);
        assert_eq!(o.output_chars(), "Hello world\n".chars().count() as u64);
        assert_eq!(
            o.estimated_output_tokens(),
            estimate_text_tokens("Hello world\n")
        );
        let u = o.usage().unwrap();
        assert_eq!(
            (u.input, u.output, u.cached_input, u.reasoning, u.estimated),
            (11, 7, 3, 2, false)
        );
        assert_eq!(o.usage_or_estimate(1000), u);
        assert_eq!(o.error(), None);
    }

    #[test]
    fn legacy_completions_text() {
        let mut o = OpenAiStreamObserver::new();
        let r = o.observe(&ev(
            r#"{"object":"text_completion","choices":[{"text":"Once","index":0,"logprobs":null,"finish_reason":null}]}"#,
        ));
        assert!(r.first_content);
        o.observe(&ev(
            r#"{"object":"text_completion","choices":[{"text":" upon","index":0}]}"#,
        ));
        assert_eq!(o.output_chars(), 9);
        assert_eq!(o.content_chunks(), 2);
    }

    #[test]
    fn tool_calls_and_reasoning_count_as_content() {
        let mut o = OpenAiStreamObserver::new();
        let r = o.observe(&ev(
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
        ));
        assert!(r.first_content);
        o.observe(&ev(
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
        ));
        assert_eq!(
            o.output_chars(),
            ("get_weather".len() + "{\"city\":".len()) as u64
        );

        let mut o = OpenAiStreamObserver::new();
        let r = o.observe(&ev(
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"Let me think"}}]}"#,
        ));
        assert!(r.first_content);
        o.observe(&ev(
            r#"{"choices":[{"index":0,"delta":{"reasoning":"..."}}]}"#,
        ));
        o.observe(&ev(r#"{"choices":[{"index":0,"delta":{"refusal":"No"}}]}"#));
        o.observe(&ev(
            r#"{"choices":[{"index":0,"delta":{"function_call":{"name":"f","arguments":"{}"}}}]}"#,
        ));
        assert_eq!(o.content_chunks(), 4);
        assert_eq!(o.output_chars(), 12 + 3 + 2 + 1 + 2);
    }

    #[test]
    fn empty_content_is_not_first_content() {
        let mut o = OpenAiStreamObserver::new();
        for data in [
            ROLE_CHUNK,
            r#"{"choices":[{"delta":{"content":null}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":""}}]}}]}"#,
            r#"{"choices":[{"text":""}]}"#,
            FINISH_CHUNK,
        ] {
            assert!(!o.observe(&ev(data)).first_content, "{data}");
        }
        assert!(!o.first_content_seen());
        assert_eq!(o.content_chunks(), 0);
    }

    #[test]
    fn usage_on_a_content_chunk_is_recorded_but_forwarded() {
        // vLLM `continuous_usage_stats`, and providers that put usage on the last
        // content chunk.
        let mut o = OpenAiStreamObserver::new();
        let r = o.observe(&ev(
            r#"{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#,
        ));
        assert_eq!(r.verdict, EventVerdict::Forward);
        let r = o.observe(&ev(
            r#"{"choices":[{"delta":{"content":"y"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
        ));
        assert_eq!(r.verdict, EventVerdict::Forward);
        assert_eq!(o.usage().map(|u| u.output), Some(2));
    }

    #[test]
    fn usage_only_variants() {
        let mut o = OpenAiStreamObserver::new();
        // `choices` absent or null counts as empty.
        assert_eq!(
            o.observe(&ev(
                r#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#
            ))
            .verdict,
            EventVerdict::DropUsageOnly
        );
        assert_eq!(
            o.observe(&ev(
                r#"{"choices":null,"usage":{"prompt_tokens":1,"completion_tokens":3}}"#
            ))
            .verdict,
            EventVerdict::DropUsageOnly
        );
        assert_eq!(o.usage().map(|u| u.output), Some(3));
        // `usage: null` is not a usage chunk.
        assert_eq!(
            o.observe(&ev(r#"{"choices":[],"usage":null}"#)).verdict,
            EventVerdict::Forward
        );
        assert_eq!(o.usage().map(|u| u.output), Some(3));
        // An error chunk is never dropped.
        assert_eq!(
            o.observe(&ev(r#"{"choices":[],"usage":{},"error":{"type":"x"}}"#))
                .verdict,
            EventVerdict::Forward
        );
    }

    #[test]
    fn errors() {
        let cases = [
            (
                "",
                r#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#,
                "server_error",
            ),
            (
                "",
                r#"{"error":{"message":"slow down","type":null,"code":"rate_limit_exceeded"}}"#,
                "rate_limit_exceeded",
            ),
            ("", r#"{"error":{"message":"x","code":500}}"#, "500"),
            ("", r#"{"error":"plain string"}"#, "error"),
            (
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                "overloaded_error",
            ),
            ("error", "not json", "error"),
            ("error", "", "error"),
            ("error", r#"{"message":"no error member"}"#, "error"),
        ];
        for (event, data, want) in cases {
            let mut o = OpenAiStreamObserver::new();
            let e = SseEvent {
                event,
                data,
                id: None,
                raw: b"",
            };
            assert_eq!(o.observe(&e).verdict, EventVerdict::Forward);
            assert_eq!(o.error(), Some(want), "{event} {data}");
        }
        // The first error is kept.
        let mut o = OpenAiStreamObserver::new();
        o.observe(&ev(r#"{"error":{"type":"first"}}"#));
        o.observe(&ev(r#"{"error":{"type":"second"}}"#));
        assert_eq!(o.error(), Some("first"));
        // `"error": null` is not an error.
        let mut o = OpenAiStreamObserver::new();
        o.observe(&ev(r#"{"choices":[],"error":null}"#));
        assert_eq!(o.error(), None);
    }

    #[test]
    fn ignores_noise() {
        let mut o = OpenAiStreamObserver::new();
        for data in [
            "",
            "   ",
            "not json",
            "{",
            "[]",
            "42",
            r#"{"choices":5}"#,
            r#"{"choices":[5,"x",null,{"delta":7}]}"#,
            r#"{"choices":[{"delta":{"content":5,"tool_calls":"x","function_call":1}}]}"#,
        ] {
            let r = o.observe(&ev(data));
            assert_eq!(r.verdict, EventVerdict::Forward, "{data}");
            assert!(!r.first_content, "{data}");
        }
        assert!(!o.done());
        assert_eq!(o.error(), None);
        assert_eq!(o.usage(), None);
        // Malformed members do not hide the rest of the chunk.
        let r = o.observe(&ev(
            r#"{"choices":[5,{"delta":7},{"delta":{"tool_calls":[1,{"function":2}]}},{"delta":{"content":"z"}}]}"#,
        ));
        assert!(r.first_content);
        assert_eq!(o.output_chars(), 1);
        let r = o.observe(&ev(
            r#"{"choices":[{"delta":{"content":"ok","tool_calls":"x"}}],"usage":{"prompt_tokens":"bad"}}"#,
        ));
        assert!(!r.first_content);
        assert_eq!(o.content_chunks(), 2);
        assert_eq!(r.verdict, EventVerdict::Forward);
    }

    #[test]
    fn escapes_and_unicode_are_counted_in_chars() {
        let mut o = OpenAiStreamObserver::new();
        o.observe(&ev(
            r#"{"choices":[{"delta":{"content":"a\nb\u00e9\"世"}}]}"#,
        ));
        assert_eq!(o.output_chars(), 6);
    }

    #[test]
    fn multiple_choices() {
        let mut o = OpenAiStreamObserver::new();
        o.observe(&ev(
            r#"{"choices":[{"index":0,"delta":{"content":"ab"}},{"index":1,"delta":{"content":"cde"}},{"index":2,"delta":{"content":"f"}}]}"#,
        ));
        assert_eq!(o.output_chars(), 6);
        assert_eq!(o.content_chunks(), 1);
    }

    #[test]
    fn estimate_when_no_usage() {
        let mut o = OpenAiStreamObserver::new();
        for piece in ["The", " quick", " brown", " fox"] {
            o.observe(&ev(&content_chunk(piece)));
        }
        let u = o.usage_or_estimate(42);
        assert!(u.estimated);
        assert_eq!(u.input, 42);
        assert_eq!(u.output, estimate_text_tokens("The quick brown fox"));
        assert!(u.output >= 4);
    }

    #[test]
    fn end_to_end_with_parser_drops_only_the_usage_chunk() {
        let mut input = String::new();
        input.push_str(": keep-alive\n\n");
        input.push_str(&format!("data: {ROLE_CHUNK}\n\n"));
        input.push_str(&format!("data: {}\r\n\r\n", content_chunk("Hi")));
        input.push_str(&format!("data: {FINISH_CHUNK}\n\n"));
        input.push_str(&format!("data: {USAGE_CHUNK}\n\n"));
        input.push_str("data: [DONE]\n\n");
        let expected_out = input.replace(&format!("data: {USAGE_CHUNK}\n\n"), "");

        for chunk_size in [1, 2, 3, 7, 64, 4096] {
            let mut p = SseParser::new();
            let mut o = OpenAiStreamObserver::new();
            let mut out = Vec::new();
            let mut firsts = 0;
            let mut handle = |e: &SseEvent<'_>| {
                let obs = o.observe(e);
                firsts += usize::from(obs.first_content);
                if obs.verdict == EventVerdict::Forward {
                    out.extend_from_slice(e.raw);
                }
            };
            for c in input.as_bytes().chunks(chunk_size) {
                p.feed(c, &mut handle);
            }
            p.finish(&mut handle);
            assert_eq!(firsts, 1);
            assert_eq!(String::from_utf8(out).unwrap(), expected_out);
            assert!(o.done());
            assert_eq!(o.usage().map(|u| u.total()), Some(18));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_any_data(event in "(|error|message)", data in "\\PC{0,200}") {
            let mut o = OpenAiStreamObserver::new();
            let e = SseEvent { event: &event, data: &data, id: None, raw: b"" };
            let _ = o.observe(&e);
        }

        #[test]
        fn never_panics_on_jsonish_data(data in "[\\[\\]{}\":,a-z0-9 ]{0,200}") {
            let mut o = OpenAiStreamObserver::new();
            let _ = o.observe(&ev(&data));
        }

        #[test]
        fn chars_and_estimate_match_concatenated_deltas(pieces in prop::collection::vec("\\PC{0,12}", 0..20)) {
            let mut o = OpenAiStreamObserver::new();
            let mut firsts = 0;
            for p in &pieces {
                firsts += usize::from(o.observe(&ev(&content_chunk(p))).first_content);
            }
            let all: String = pieces.concat();
            prop_assert_eq!(o.output_chars(), all.chars().count() as u64);
            prop_assert_eq!(o.estimated_output_tokens(), estimate_text_tokens(&all));
            prop_assert_eq!(firsts, usize::from(!all.is_empty()));
            prop_assert_eq!(o.content_chunks(), pieces.iter().filter(|p| !p.is_empty()).count() as u64);
        }
    }
}
