//! The common OpenAI stream chunk, read without serde.
//!
//! Nearly every event of a chat/completions stream is one shape:
//! `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[{"index":0,
//! "delta":{"content":"…"},"logprobs":null,"finish_reason":null}],"usage":null}`. serde
//! reads it member by member, decoding every key and skipping every value it does not
//! need (~5,000 instructions an event natively, ~9,000 in Wasm, the largest cost of a
//! streamed answer). [`content_chunk`] walks the same bytes once with [`json_scan`]'s
//! validating skips and collects exactly what [`crate::stream::openai`]'s serde reader would:
//! the number of choices and their text pieces, in the same order.
//!
//! The usage chunk that ends a stream (`"choices":[],"usage":{…}`) is read too, its
//! usage as [`crate::tokens::usage::OpenAiUsage`] reads it.
//!
//! It accepts only what it can read with certainty and answers `None` for everything
//! else — a non-null `error`, a usage object it cannot read, Responses API members
//! (`type`, `delta`, `response`), tool or function calls, escaped keys, duplicate
//! members, values of an unexpected type, invalid JSON — and the caller then parses the
//! event with serde, so results never differ (a property test holds the two readers to
//! the same answer).

use crate::fastjson::copy::dropped;
use crate::fastjson::walk::{
    null, object, object_resumed, skip_member, starts_with, string, string_or_null, unsigned, ws,
    JsonStr, KnownKeys,
};
use crate::fastjson::Str;
use crate::stream::openai::Choices;
use crate::tokens::usage::{chat_usage_at, openai_usage_at, Usage};

/// The start of the last chunk read, through the first byte of its `choices` value:
/// the members before `choices` (id, object, created, model, system fingerprint), which
/// the chunks of one stream repeat byte for byte. The walk over those bytes decides
/// nothing but that they are valid and hold no `usage`, `error` or second `choices`, and
/// ends at that byte whatever follows it; so a chunk that starts with the same bytes is
/// read from its `choices` on.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChunkPrefix(Vec<u8>);

/// Longer prefixes (a chunk with a huge id) are not kept.
const MAX_PREFIX: usize = 4096;

/// What the stream observer reads of a chunk: its choices and its usage.
#[derive(Default)]
pub(crate) struct ContentChunk<'a> {
    pub choices: Choices<'a>,
    /// `None` for a `null` or absent `usage`.
    pub usage: Option<Usage>,
}

/// The choices and usage of a chunk that has no error or Responses API member; `None`
/// when the chunk is anything else (see the module documentation).
#[cfg(test)]
pub(crate) fn content_chunk(data: &str) -> Option<ContentChunk<'_>> {
    content_chunk_after(data, &mut ChunkPrefix::default())
}

/// [`content_chunk`] of the next chunk of a stream: taken up at `choices` when the chunk
/// starts with `prefix`, which is updated otherwise.
pub(crate) fn content_chunk_after<'a>(
    data: &'a str,
    prefix: &mut ChunkPrefix,
) -> Option<ContentChunk<'a>> {
    let b = data.as_bytes();
    let mut choices: Option<Choices<'_>> = None;
    let mut read_usage = None;
    let (mut usage, mut error) = (false, false);
    let mut choices_at = None;
    let member = |key: &[u8], i: usize| {
        Some(match key {
            b"choices" if choices.is_none() => {
                if !usage && !error {
                    choices_at = Some(i);
                }
                let (c, end) = choice_array(data, i)?;
                choices = Some(c);
                end
            }
            b"usage" if !usage => {
                usage = true;
                match null(b, i) {
                    Some(end) => end,
                    None => {
                        let (u, end) = openai_usage_at(b, i)?;
                        read_usage = Some(u);
                        end
                    }
                }
            }
            // Only `null` is read here: an error object goes to serde.
            b"error" if !error => {
                error = true;
                null(b, i)?
            }
            b"choices" | b"usage" | b"error" | b"type" | b"delta" | b"response" => return None,
            _ => skip_member(b, i)?,
        })
    };
    let resume_at = (prefix.0.len().checked_sub(1)).filter(|_| starts_with(b, &prefix.0));
    let end = match resume_at {
        Some(at) => object_resumed(b, b"choices", at, member)?,
        None => object(b, ws(b, 0), member)?,
    };
    if ws(b, end) != b.len() {
        return None;
    }
    if let (None, Some(at @ ..=MAX_PREFIX)) = (resume_at, choices_at) {
        prefix.0.clear();
        prefix.0.extend_from_slice(b.get(..=at)?);
    }
    Some(ContentChunk {
        choices: choices.unwrap_or_default(),
        usage: read_usage,
    })
}

/// `choices`: `null` (no choices) or an array of choice objects (`null` elements count
/// as choices without text, as serde's lenient reader has it).
fn choice_array(data: &str, i: usize) -> Option<(Choices<'_>, usize)> {
    let b = data.as_bytes();
    let mut acc = Choices::default();
    if let Some(end) = null(b, i) {
        return Some((acc, end));
    }
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut i = ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some((acc, i + 1));
    }
    loop {
        acc.count += 1;
        i = match null(b, i) {
            Some(end) => end,
            None => choice(data, i, &mut acc)?,
        };
        i = ws(b, i);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b']') => return Some((acc, i + 1)),
            _ => return None,
        }
    }
}

/// One choice object: its `text` and its `delta`'s text pieces, added in serde's order
/// (text, then reasoning_content, reasoning, content, refusal).
fn choice<'a>(data: &'a str, i: usize, acc: &mut Choices<'a>) -> Option<usize> {
    let b = data.as_bytes();
    let mut text: Option<Option<Str<'a>>> = None;
    let mut delta: Option<Option<[Option<Str<'a>>; 4]>> = None;
    let end = object(b, i, |key, i| {
        Some(match key {
            b"text" if text.is_none() => {
                let (s, end) = string_or_null(data, i)?;
                text = Some(s);
                end
            }
            b"delta" if delta.is_none() => match null(b, i) {
                Some(end) => {
                    delta = Some(None);
                    end
                }
                None => {
                    let (pieces, end) = delta_object(data, i)?;
                    delta = Some(Some(pieces));
                    end
                }
            },
            b"text" | b"delta" => return None,
            _ => skip_member(b, i)?,
        })
    })?;
    acc.add(text.flatten());
    if let Some(pieces) = delta.flatten() {
        for piece in pieces {
            acc.add(piece);
        }
    }
    Some(end)
}

/// A `delta` object: reasoning_content, reasoning, content and refusal, in that order.
/// Tool and function calls (unless `null`) are left to serde.
fn delta_object(data: &str, i: usize) -> Option<([Option<Str<'_>>; 4], usize)> {
    let b = data.as_bytes();
    let mut pieces: [Option<Option<Str<'_>>>; 4] = [None, None, None, None];
    let mut calls = [false, false];
    let end = object(b, i, |key, i| {
        let slot = match key {
            b"reasoning_content" => 0,
            b"reasoning" => 1,
            b"content" => 2,
            b"refusal" => 3,
            b"tool_calls" | b"function_call" => {
                let seen = calls.get_mut(usize::from(key == b"function_call"))?;
                if *seen {
                    return None;
                }
                *seen = true;
                return null(b, i);
            }
            _ => return skip_member(b, i),
        };
        let place = pieces.get_mut(slot)?;
        if place.is_some() {
            return None;
        }
        let (s, end) = string_or_null(data, i)?;
        *place = Some(s);
        Some(end)
    })?;
    Some((pieces.map(Option::flatten), end))
}

/// The usual chunk as the OpenAI → Anthropic stream translator reads it
/// (`translate::anthropic::ChatToMessagesStream`, whose serde types are stricter than the
/// observer's): its id, the text and finish reason of its one choice, and its usage.
pub(crate) struct TextChunk<'a> {
    pub id: Option<JsonStr<'a>>,
    /// False for `"choices":[]` (the usage chunk).
    pub has_choice: bool,
    /// `None` for a `null` or absent `content`.
    pub content: Option<JsonStr<'a>>,
    /// `None` for a `null` or absent `finish_reason`.
    pub finish_reason: Option<JsonStr<'a>>,
    /// `None` for a `null` or absent `usage`.
    pub usage: Option<Usage>,
}

/// Reads `{"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,"delta":
/// {"role":…,"content":"…"},"finish_reason":null}],"usage":null}` as the translator's
/// serde types would, members in any order: `id`, `object` and `model` strings,
/// `created` a `u64`, no choice or exactly one with index 0 (or none given) whose
/// `finish_reason` is a string or `null` and whose `text` is `null`, a delta whose
/// `role` and `content` are strings or `null` and whose `reasoning_content`,
/// `reasoning`, `refusal`, `tool_calls` and `function_call` are `null`; `usage` `null`
/// or an object of counts ([`crate::tokens::usage::chat_usage_at`]), `error` `null`; no
/// Responses API member (`type`, `delta`, `response`). `None` for anything else — an
/// error, a tool call, refusal or reasoning text, several choices, escaped or repeated
/// keys, values of another type, invalid JSON — which the translator reads with serde
/// as before.
///
/// What it reads, [`content_chunk`] reads too, as at most one choice whose only text is
/// the content, and the same usage ([`TextChunk::content_chunk`]): the stream observer
/// takes that answer instead of walking the chunk again (a property test holds the two
/// readers to it).
#[cfg(test)]
pub(crate) fn text_chunk(data: &str) -> Option<TextChunk<'_>> {
    text_chunk_after(data, &mut TextChunkPrefix::default())
}

/// The members [`text_chunk`] types; `choices` is the fifth.
const TEXT_CHUNK_KEYS: [&[u8]; 7] = [
    b"id", b"object", b"created", b"model", b"choices", b"usage", b"error",
];
const CHOICES: usize = 4;
const USAGE: usize = 5;

/// [`ChunkPrefix`] for [`text_chunk_after`]: the start of the last chunk it read,
/// through the first byte of its `choices` value, and which of its typed members that
/// start held (so that one repeated after `choices` is still refused).
#[derive(Debug, Clone, Default)]
pub(crate) struct TextChunkPrefix {
    bytes: Vec<u8>,
    seen: [bool; 7],
}

/// [`text_chunk`] of the next chunk of a stream: taken up at `choices` when the chunk
/// starts with the bytes of the last one read through `prefix`, which is updated
/// otherwise. A chunk taken up has no `id` read: its id is the last one's, byte for byte.
pub(crate) fn text_chunk_after<'a>(
    data: &'a str,
    prefix: &mut TextChunkPrefix,
) -> Option<TextChunk<'a>> {
    let b = data.as_bytes();
    let resume_at = (prefix.bytes.len().checked_sub(1)).filter(|_| starts_with(b, &prefix.bytes));
    let mut keys = match resume_at {
        Some(_) => KnownKeys::resumed(TEXT_CHUNK_KEYS, prefix.seen),
        None => KnownKeys::new(TEXT_CHUNK_KEYS),
    };
    let (mut id, mut choice, mut usage) = (None, None, None);
    let mut choices_at = None;
    let member = |key: &[u8], i: usize| {
        if matches!(key, b"type" | b"delta" | b"response") {
            return None;
        }
        let before = keys.seen_keys();
        match keys.first(key)? {
            None => dropped(data, i),
            Some(0) => {
                let (s, end) = string(data, i)?;
                id = Some(s);
                Some(end)
            }
            Some(1 | 3) => string_end(data, i),
            Some(2) => unsigned(b, i, u64::MAX),
            Some(CHOICES) => {
                // A prefix holds no usage: a chunk taken up after it is read for its own.
                if usage.is_none() {
                    choices_at = Some((i, before));
                }
                let (c, end) = one_choice(data, i)?;
                choice = c;
                Some(end)
            }
            Some(USAGE) => null(b, i).or_else(|| {
                let (u, end) = chat_usage_at(data, i)?;
                usage = Some(u);
                Some(end)
            }),
            Some(_) => null(b, i),
        }
    };
    let end = match resume_at {
        Some(at) => object_resumed(b, b"choices", at, member)?,
        None => object(b, ws(b, 0), member)?,
    };
    if !keys.seen(CHOICES) || ws(b, end) != b.len() {
        return None;
    }
    if let (None, Some((at @ ..=MAX_PREFIX, seen))) = (resume_at, choices_at) {
        prefix.bytes.clear();
        prefix.bytes.extend_from_slice(b.get(..=at)?);
        prefix.seen = seen;
    }
    let has_choice = choice.is_some();
    let (content, finish_reason) = choice.unwrap_or_default();
    Some(TextChunk {
        id,
        has_choice,
        content,
        finish_reason,
        usage,
    })
}

impl<'a> TextChunk<'a> {
    /// The chunk as [`content_chunk`] reads it: one choice, whose content is its text,
    /// and no usage.
    pub(crate) fn content_chunk(&self) -> ContentChunk<'a> {
        let mut choices = Choices::default();
        choices.count = usize::from(self.has_choice);
        choices.add(self.content.as_ref().map(|s| Str(Some(s.text.clone()))));
        ContentChunk {
            choices,
            usage: self.usage,
        }
    }
}

/// A choice's content and finish reason.
type ChoiceRead<'a> = (Option<JsonStr<'a>>, Option<JsonStr<'a>>);

/// `[]`, or `[` one choice `]`: the choice's content and finish reason.
fn one_choice(data: &str, i: usize) -> Option<(Option<ChoiceRead<'_>>, usize)> {
    let b = data.as_bytes();
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let i = ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some((None, i + 1));
    }
    let mut keys = KnownKeys::new([b"index", b"delta", b"finish_reason", b"text"]);
    let (mut content, mut finish_reason) = (None, None);
    let end = object(b, i, |key, i| match keys.first(key)? {
        None => dropped(data, i),
        // Choices of another index are not translated: serde tells which.
        Some(0) => unsigned(b, i, 0),
        Some(1) => {
            let (c, end) = text_delta(data, i)?;
            content = c;
            Some(end)
        }
        Some(2) => null(b, i).or_else(|| {
            let (s, end) = string(data, i)?;
            finish_reason = Some(s);
            Some(end)
        }),
        Some(_) => null(b, i),
    })?;
    let end = ws(b, end);
    (b.get(end) == Some(&b']')).then_some((Some((content, finish_reason)), end + 1))
}

/// A delta with at most `role` and `content` holding values.
fn text_delta(data: &str, i: usize) -> Option<(Option<JsonStr<'_>>, usize)> {
    let b = data.as_bytes();
    let mut keys = KnownKeys::new([
        b"role",
        b"content",
        b"reasoning_content",
        b"reasoning",
        b"refusal",
        b"tool_calls",
        b"function_call",
    ]);
    let mut content = None;
    let end = object(b, i, |key, i| match keys.first(key)? {
        None => dropped(data, i),
        Some(0) => null(b, i).or_else(|| string_end(data, i)),
        Some(1) => null(b, i).or_else(|| {
            let (s, end) = string(data, i)?;
            content = Some(s);
            Some(end)
        }),
        Some(_) => null(b, i),
    })?;
    Some((content, end))
}

/// The end of the string at `i`, validated as serde reads a `String` (a text with
/// escapes is decoded for that; one without is only scanned).
fn string_end(data: &str, i: usize) -> Option<usize> {
    string(data, i).map(|(_, end)| end)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stream::openai::{serde_reading, Reading};
    use proptest::prelude::*;
    use proptest::sample::select;
    use proptest::strategy::ValueTree;

    /// `s` with `junk` inserted at the character boundary at or before `at`.
    pub(crate) fn insert_at(s: &str, at: prop::sample::Index, junk: &str) -> String {
        let mut at = at.index(s.len() + 1);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}{}{}", &s[..at], junk, &s[at..])
    }

    /// The fast reader's answer in the shape of [`serde_reading`].
    fn fast(data: &str) -> Reading {
        reading(content_chunk(data)?)
    }

    fn reading(c: ContentChunk<'_>) -> Reading {
        let texts = c.choices.texts().map(str::to_owned).collect();
        Some((
            c.choices.count,
            c.choices.has_content,
            texts,
            c.usage,
            false,
        ))
    }

    #[test]
    fn reads_the_usual_chunks_itself_as_serde_does() {
        let base = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_1""#;
        for rest in [
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null"#,
            r#""choices":[{"index":0,"delta":{"content":" quick"},"logprobs":null,"finish_reason":null}],"usage":null"#,
            r#""choices":[{"index":0,"delta":{"content":"line\n\"quoted\" \u00e9 \ud83d\ude00"},"finish_reason":null}]"#,
            r#""choices":[{"index":0,"delta":{"reasoning_content":"think","content":null}}]"#,
            r#""choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null"#,
            r#""choices":[{"index":0,"text":" completion","logprobs":null,"finish_reason":null}]"#,
            r#""choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]"#,
            r#""choices":[]"#,
            r#""choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":20,"total_tokens":1220,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":8,"audio_tokens":0}}"#,
            r#""usage":{"input_tokens":5,"output_tokens":2},"choices":[{"index":0,"delta":{"content":"a"}}]"#,
        ] {
            let data = format!("{{{base},{rest}}}");
            let got = fast(&data);
            assert!(got.is_some(), "not read without serde: {data}");
            assert_eq!(got, serde_reading(&data), "{data}");
        }
    }

    #[test]
    fn leaves_the_rest_to_serde() {
        for data in [
            r#"{"choices":[],"usage":{"prompt_tokens":-3,"completion_tokens":4}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"prompt_tokens":4}}"#,
            r#"{"choices":[],"usage":[3,4]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3},"usage":null}"#,
            r#"{"error":{"type":"server_error"}}"#,
            r#"{"type":"response.output_text.delta","delta":"Hello"}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"name":"f"}}]}}]}"#,
            r#"{"\u0063hoices":[]}"#,
            r#"{"choices":[],"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":1}}]}"#,
            r#"{"choices":[{"delta":{"content":"a"}}]"#,
            r#"[{"choices":[]}]"#,
            r#"{"choices":[]} x"#,
        ] {
            assert_eq!(content_chunk(data).map(|c| c.choices.count), None, "{data}");
        }
    }

    /// Mostly strings the fast reader takes (so that it reads most chunks and the
    /// comparison has something to compare), sometimes ones it must leave to serde.
    fn string_value() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            12 => select(vec![
                r#""""#,
                r#"" word""#,
                r#""other words""#,
                r#""a\nb""#,
                r#""\"q\" \\ \/""#,
                r#""\u00e9\ud83d\ude00""#,
                r#""é世""#,
                "null",
            ]),
            1 => select(vec![r#""bad \x escape""#, r#""unterminated"#, "5"]),
        ]
    }

    fn delta() -> impl Strategy<Value = String> {
        // Distinct keys in any order (a repeated key is refused, and tested elsewhere),
        // sometimes a tool or function call.
        let keys = vec![
            "content",
            "reasoning_content",
            "reasoning",
            "refusal",
            "role",
            "other",
        ];
        let members = (
            prop::sample::subsequence(keys, 0..=5).prop_shuffle(),
            prop::collection::vec(string_value(), 6),
        )
            .prop_map(|(keys, values)| {
                keys.iter()
                    .zip(values)
                    .map(|(k, v)| format!(r#""{k}":{v}"#))
                    .collect::<Vec<_>>()
            });
        let call = select(vec![
            r#""tool_calls":null"#,
            r#""tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]"#,
            r#""function_call":{"name":"g","arguments":"x"}"#,
            r#""function_call":null"#,
            r#""content":"again""#,
        ]);
        (
            members,
            prop::option::weighted(0.1, call),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut m, call, at)| {
                if let Some(c) = call {
                    m.insert(at.index(m.len() + 1), c.to_owned());
                }
                format!("{{{}}}", m.join(","))
            })
    }

    fn choice() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            4 => delta().prop_map(|d| format!(r#""delta":{d}"#)),
            1 => select(vec![r#""delta":null"#, r#""delta":"s""#, r#""index":0"#, r#""logprobs":null"#,
                r#""finish_reason":"stop""#, r#""logprobs":{"content":[{"token":"a","top_logprobs":[]}]}"#])
                .prop_map(str::to_owned),
            1 => string_value().prop_map(|v| format!(r#""text":{v}"#)),
        ];
        prop_oneof![
            16 => prop::collection::vec(member, 0..4).prop_map(|m| format!("{{{}}}", m.join(","))),
            1 => select(vec!["null", "7", "[]"]).prop_map(str::to_owned),
        ]
    }

    fn choices_member() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => prop::collection::vec(choice(), 0..3).prop_map(|c| format!(r#""choices":[{}]"#, c.join(","))),
            1 => select(vec![r#""choices":null"#, r#""choices":{}"#, r#""choices":5"#]).prop_map(str::to_owned),
        ]
    }

    fn chunk() -> impl Strategy<Value = String> {
        let choices = choices_member();
        let other = prop_oneof![
            12 => select(vec![
                r#""id":"chatcmpl-1""#,
                r#""object":"chat.completion.chunk""#,
                r#""created":1767225600"#,
                r#""system_fingerprint":null"#,
                r#""usage":null"#,
                r#""error":null"#,
                r#""x":[1,{"y":[null,true,-0.5e3]}]"#,
            ]),
            2 => select(vec![
                r#""usage":{"prompt_tokens":1}"#,
                r#""usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":null}"#,
                r#""usage":{"input_tokens":4,"output_tokens":1,"x":[1]}"#,
            ]),
            1 => select(vec![
                r#""usage":{"prompt_tokens":1.0}"#,
                r#""usage":{"prompt_tokens":-0}"#,
                r#""usage":{"prompt_tokens":18446744073709551616}"#,
                r#""usage":{"completion_tokens_details":{"reasoning_tokens":"5"}}"#,
                r#""error":{"type":"x"}"#,
                r#""type":"response.output_text.delta""#,
                r#""delta":"hi""#,
                r#""response":{"usage":null}"#,
                r#""\u0063hoices":[]"#,
                r#""n":01"#,
            ]),
        ]
        .prop_map(str::to_owned);
        (
            choices,
            prop::collection::vec(other, 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(c, mut m, at)| {
                // One `choices` among the other members, at any place (a second one is refused).
                m.insert(at.index(m.len() + 1), c);
                format!("{{{}}}", m.join(","))
            })
    }

    /// The comparison below is only as good as what the fast reader accepts: most
    /// generated chunks, multi-piece deltas and usage objects included.
    #[test]
    fn the_generated_chunks_are_mostly_read_without_serde() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut read, mut several, mut usage) = (0, 0, 0);
        for _ in 0..1000 {
            let data = chunk().new_tree(&mut runner).unwrap().current();
            if let Some((_, _, texts, u, _)) = fast(&data) {
                read += 1;
                several += usize::from(texts.len() > 1);
                usage += usize::from(u.is_some());
            }
        }
        assert!(
            read > 400 && several > 40 && usage > 20,
            "{read} read, {several} with several pieces, {usage} with usage"
        );
    }

    /// Two chunks of one stream: the same members before `choices` (mostly), then each
    /// its own choices and members.
    pub(crate) fn chunk_pair() -> impl Strategy<Value = (String, String)> {
        let head = prop::collection::vec(
            prop_oneof![
                8 => select(vec![
                    r#""id":"chatcmpl-1""#,
                    r#""object":"chat.completion.chunk""#,
                    r#""created":1767225600"#,
                    r#""model":"gpt-4o""#,
                    r#""system_fingerprint":null"#,
                ]),
                1 => select(vec![r#""usage":null"#, r#""error":null"#]),
            ],
            0..5,
        )
        .prop_map(|m| m.iter().map(|s| format!("{s},")).collect::<String>());
        let tail = prop::collection::vec(
            select(vec![
                r#""usage":null"#,
                r#""error":null"#,
                r#""obfuscation":"ab""#,
                r#""usage":{"prompt_tokens":1}"#,
                r#""usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}"#,
            ]),
            0..2,
        )
        .prop_map(|m| m.iter().map(|s| format!(",{s}")).collect::<String>());
        let choices = prop_oneof![
            4 => choices_member(),
            // A chunk whose `choices` comes later, after other members.
            1 => chunk().prop_map(|c| c[1..c.len() - 1].to_string()),
        ];
        (
            head.clone(),
            head,
            prop::bool::weighted(0.8),
            choices.clone(),
            choices,
            tail.clone(),
            tail,
        )
            .prop_map(|(h1, h2, same, c1, c2, t1, t2)| {
                let h2 = if same { h1.clone() } else { h2 };
                (format!("{{{h1}{c1}{t1}}}"), format!("{{{h2}{c2}{t2}}}"))
            })
    }

    /// Many generated second chunks are taken up at `choices`, and read.
    #[test]
    fn the_generated_next_chunks_are_often_taken_up_at_choices() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut resumed = 0;
        for _ in 0..1000 {
            let (first, second) = chunk_pair().new_tree(&mut runner).unwrap().current();
            let mut prefix = ChunkPrefix::default();
            let _ = content_chunk_after(&first, &mut prefix);
            let taken_up = !prefix.0.is_empty() && second.as_bytes().starts_with(&prefix.0);
            resumed += usize::from(taken_up && content_chunk_after(&second, &mut prefix).is_some());
        }
        assert!(resumed > 100, "{resumed} taken up at choices");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The translator's reader: a chunk read after another reads as it does alone,
        /// also with a byte inserted anywhere.
        #[test]
        fn the_next_text_chunk_reads_as_it_does_alone((first, second) in chunk_pair(), cut in any::<prop::sample::Index>(), junk in select(vec!["", "\"", "}", ",", " ", "{", "\\"])) {
            for next in [second.clone(), insert_at(&second, cut, junk)] {
                next_text_chunk_reads_as_alone(&first, &next)?;
            }
        }
    }

    /// Whatever [`text_chunk`] reads, [`content_chunk`] reads as [`TextChunk::content_chunk`]
    /// (the stream observer takes that answer from the translator's read); true when
    /// [`text_chunk`] read it.
    pub(crate) fn text_chunk_reads_as_content_chunk(
        data: &str,
    ) -> Result<bool, proptest::test_runner::TestCaseError> {
        let Some(read) = text_chunk(data) else {
            return Ok(false);
        };
        prop_assert_eq!(reading(read.content_chunk()), fast(data), "{}", data);
        Ok(true)
    }

    /// The comparison below is only as good as how many generated chunks the
    /// translator's reader takes.
    #[test]
    fn the_generated_chunks_are_often_text_chunks() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let read = (0..2000)
            .filter(|_| {
                let data = chunk().new_tree(&mut runner).unwrap().current();
                text_chunk_reads_as_content_chunk(&data).unwrap()
            })
            .count();
        assert!(read > 100, "{read} of 2000 read");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// What the translator's reader reads, the observer's reads the same way, also
        /// with a byte inserted anywhere.
        #[test]
        fn a_text_chunk_reads_as_a_content_chunk(data in chunk(), cut in any::<prop::sample::Index>(), junk in select(vec!["", "\"", "}", ",", " ", "{", "\\"])) {
            for data in [data.clone(), insert_at(&data, cut, junk)] {
                text_chunk_reads_as_content_chunk(&data)?;
            }
        }
    }

    /// `next` read by [`text_chunk_after`] after `first` reads as [`text_chunk`] reads it
    /// alone, but for the id of a chunk taken up at `choices` (`None`: the first's); true
    /// when it was taken up and read.
    pub(crate) fn next_text_chunk_reads_as_alone(
        first: &str,
        next: &str,
    ) -> Result<bool, proptest::test_runner::TestCaseError> {
        type Rest = (
            bool,
            Option<(String, String)>,
            Option<String>,
            Option<Usage>,
        );
        type Read = Option<(Option<String>, Rest)>;
        let read = |c: Option<TextChunk<'_>>| -> Read {
            c.map(|c| {
                let id = c.id.map(|s| s.text.into_owned());
                let content = c
                    .content
                    .map(|s| (s.literal.to_owned(), s.text.into_owned()));
                let finish = c.finish_reason.map(|s| s.text.into_owned());
                (id, (c.has_choice, content, finish, c.usage))
            })
        };
        let mut prefix = TextChunkPrefix::default();
        let first_id = read(text_chunk_after(first, &mut prefix)).and_then(|(id, _)| id);
        let taken_up = !prefix.bytes.is_empty() && next.as_bytes().starts_with(&prefix.bytes);
        let after = read(text_chunk_after(next, &mut prefix));
        let mut alone = read(text_chunk(next));
        if let (true, Some((None, _)), Some((id, _))) = (taken_up, &after, &alone) {
            // An id in the bytes taken as read is the first chunk's.
            prop_assert!(id.is_none() || *id == first_id, "{} then {}", first, next);
            alone = alone.map(|(_, content)| (None, content));
        }
        prop_assert_eq!(&after, &alone, "{} then {}", first, next);
        Ok(taken_up && after.is_some())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A chunk read after another (taken up at `choices` when it starts as the other
        /// did) reads as it does alone, also with a byte inserted anywhere.
        #[test]
        fn the_next_chunk_reads_as_it_does_alone((first, second) in chunk_pair(), cut in any::<prop::sample::Index>(), junk in select(vec!["", "\"", "}", ",", " ", "{"])) {
            let mangled = insert_at(&second, cut, junk);
            for next in [&second, &mangled] {
                let mut prefix = ChunkPrefix::default();
                let _ = content_chunk_after(&first, &mut prefix);
                let after = content_chunk_after(next, &mut prefix).and_then(reading);
                let alone = content_chunk(next).and_then(reading);
                prop_assert_eq!(after, alone, "{} then {}", first, next);
            }
        }

        /// Whatever the fast reader reads, serde reads the same way; and with a byte cut
        /// or inserted anywhere (invalid JSON, mostly), it reads it the same way or not
        /// at all.
        #[test]
        fn agrees_with_serde(data in chunk(), cut in any::<prop::sample::Index>(), junk in select(vec!["", "\"", "}", ",", "\\", " "])) {
            if let Some(got) = fast(&data) {
                prop_assert_eq!(Some(got), serde_reading(&data), "{}", data);
            }
            let at = cut.index(data.len() + 1);
            if data.is_char_boundary(at) {
                let mangled = format!("{}{}{}", &data[..at], junk, &data[at..]);
                if let Some(got) = fast(&mangled) {
                    prop_assert_eq!(Some(got), serde_reading(&mangled), "{}", mangled);
                }
            }
        }
    }
}
