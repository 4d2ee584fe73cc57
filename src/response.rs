//! Observing (and where needed editing) a provider response as it passes through.
//!
//! JSON bodies: a copy is kept, up to a limit, to read usage and error types at the end.
//! SSE streams: every chunk goes on as it arrives; an incremental parser sees the events
//! for usage, first-content timing and errors. Only when the gateway asked for usage on
//! the client's behalf is the chunk edited — the usage-only event is left out, and the
//! bytes of an event cut by the chunk boundary go out with the next chunk.

use crate::sse::SseParser;
use crate::stream::{EventVerdict, OpenAiStreamObserver};
use crate::usage::{self, Usage};

/// What a response chunk needs from the host.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChunkResult {
    /// Replace the chunk with these bytes.
    pub replace: Option<Vec<u8>>,
    /// This chunk carried the first content delta of the answer.
    pub first_content: bool,
}

pub enum ResponseTap {
    /// Nothing to read (not JSON nor SSE, or an empty body).
    Ignore,
    Json {
        body: Vec<u8>,
        overflow: bool,
        max: u64,
    },
    Stream(Box<StreamTap>),
}

pub struct StreamTap {
    parser: SseParser,
    observer: OpenAiStreamObserver,
    drop_usage_only: bool,
    out: Vec<u8>,
}

impl ResponseTap {
    /// Picks the tap from the response's content type.
    pub fn for_response(content_type: &str, drop_usage_only: bool, max_json: u64) -> ResponseTap {
        let ct = content_type.to_ascii_lowercase();
        if ct.starts_with("text/event-stream") {
            ResponseTap::Stream(Box::new(StreamTap {
                parser: SseParser::new(),
                observer: OpenAiStreamObserver::new(),
                drop_usage_only,
                out: Vec::new(),
            }))
        } else if ct.contains("json") {
            ResponseTap::Json {
                body: Vec::new(),
                overflow: false,
                max: max_json,
            }
        } else {
            ResponseTap::Ignore
        }
    }

    /// Whether the chunk bytes are needed at all.
    pub fn wants_chunks(&self) -> bool {
        match self {
            ResponseTap::Ignore => false,
            ResponseTap::Json { overflow, .. } => !overflow,
            ResponseTap::Stream(_) => true,
        }
    }

    /// Whether chunks may be edited (the host must drop `content-length`).
    pub fn edits_chunks(&self) -> bool {
        matches!(self, ResponseTap::Stream(s) if s.drop_usage_only)
    }

    pub fn on_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> ChunkResult {
        match self {
            ResponseTap::Ignore => ChunkResult::default(),
            ResponseTap::Json {
                body,
                overflow,
                max,
            } => {
                if !*overflow {
                    if (body.len() + chunk.len()) as u64 > *max {
                        *overflow = true;
                        *body = Vec::new();
                    } else {
                        body.extend_from_slice(chunk);
                    }
                }
                ChunkResult::default()
            }
            ResponseTap::Stream(s) => s.on_chunk(chunk, end_of_stream),
        }
    }

    /// Usage reported by the provider so far (`None` when it reported none).
    pub fn usage(&self) -> Option<Usage> {
        match self {
            ResponseTap::Ignore => None,
            ResponseTap::Json { body, .. } => usage::from_openai_json(body),
            ResponseTap::Stream(s) => s.observer.usage(),
        }
    }

    /// Estimated output tokens of a stream (from the streamed text).
    pub fn estimated_output(&self) -> Option<u64> {
        match self {
            ResponseTap::Stream(s) => Some(s.observer.estimated_output_tokens()),
            _ => None,
        }
    }

    /// Error type from an error body or a mid-stream error event.
    pub fn error_type(&self) -> Option<String> {
        match self {
            ResponseTap::Ignore => None,
            ResponseTap::Json { body, .. } => crate::errors::upstream_error_type(body),
            ResponseTap::Stream(s) => s.observer.error().map(str::to_string),
        }
    }

    pub fn is_stream(&self) -> bool {
        matches!(self, ResponseTap::Stream(_))
    }
}

impl StreamTap {
    fn on_chunk(&mut self, chunk: &[u8], end_of_stream: bool) -> ChunkResult {
        let mut first_content = false;
        let observer = &mut self.observer;
        let drop = self.drop_usage_only;
        let out = &mut self.out;
        out.clear();
        let mut on_event = |ev: &crate::sse::SseEvent<'_>| {
            let obs = observer.observe(ev);
            first_content |= obs.first_content;
            if drop && obs.verdict == EventVerdict::Forward {
                // With include_usage OpenAI adds `"usage":null` to every chunk; the
                // client did not ask for it, so it does not see it.
                match strip_null_usage(ev.raw) {
                    Some((a, b)) => {
                        out.extend_from_slice(a);
                        out.extend_from_slice(b);
                    }
                    None => out.extend_from_slice(ev.raw),
                }
            }
        };
        self.parser.feed(chunk, &mut on_event);
        if end_of_stream {
            self.parser.finish(&mut on_event);
        }
        // Unchanged chunks (nothing dropped, nothing held back) are left as they are.
        let replace = if drop && self.out.as_slice() != chunk {
            Some(std::mem::take(&mut self.out))
        } else {
            None
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
            out.extend_from_slice(r.replace.as_deref().unwrap_or(c));
        }
        out
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
            let mut tap = ResponseTap::for_response("text/event-stream", true, 0);
            let out = stream_through(&mut tap, with.as_bytes(), split);
            assert_eq!(String::from_utf8(out).unwrap(), without, "split {split}");
            let u = tap.usage().unwrap();
            assert_eq!((u.input, u.output, u.estimated), (5, 2, false));
        }
        // Not injected: the stream passes unchanged.
        let mut tap = ResponseTap::for_response("text/event-stream; charset=utf-8", false, 0);
        assert_eq!(
            stream_through(&mut tap, with.as_bytes(), 7),
            with.as_bytes()
        );
    }

    #[test]
    fn json_copy_is_bounded() {
        let mut tap = ResponseTap::for_response("application/json", false, 10);
        tap.on_chunk(b"{\"usage\":{\"prompt_tokens\":1}}", false);
        assert!(!tap.wants_chunks());
        assert_eq!(tap.usage(), None);
    }
}
