//! Incremental Server-Sent-Events parser, independent of how the byte stream is split.
//!
//! The parser follows the WHATWG "event stream interpretation" rules, with the
//! differences a proxy needs (all listed below). It never allocates per event beyond
//! a few internal buffers that are reused for the life of the parser, and it never
//! panics on any input.
//!
//! # Blocks and `raw`
//!
//! The stream is cut into *blocks*: a block is every byte up to and including the
//! next blank line (the blank line's own line ending included: `\n`, `\r\n` or `\r`).
//! Every block is passed to the callback as one [`SseEvent`], so concatenating the
//! `raw` of every emitted event gives back exactly the bytes fed, for any input and
//! any split. This holds for blocks a browser would not dispatch too:
//!
//! * comment-only / keep-alive blocks (`: ping\n\n`) and blocks without a `data`
//!   field (`event: x\n\n`, a stray blank line) are emitted with `data == ""`;
//! * an event larger than the maximum (see below) is emitted as one or more
//!   *fragments* with `event == ""`, `data == ""`, `id == None`.
//!
//! A caller that cares only about messages can skip events whose `data` is empty; a
//! proxy re-emitting the stream forwards `raw` of every event it does not drop.
//!
//! # Field rules
//!
//! * Lines end with `\r\n`, `\n` or `\r`; a `\r` at the end of a chunk followed by
//!   `\n` at the start of the next one is one line ending.
//! * A line starting with `:` is a comment. `name: value` sets a field, with one
//!   optional space after the colon removed; a line without a colon is a field with
//!   an empty value.
//! * `data` lines are joined with `\n`. `event` and `id` keep the last value in the
//!   block. An `id` containing NUL is ignored (as in the spec). `retry` and unknown
//!   fields are ignored. Field names are case-sensitive.
//! * A UTF-8 byte-order mark at the very start of the stream is ignored.
//!
//! # Differences from the browser algorithm
//!
//! * `id` is the `id` field **of this block** (`None` when the block has none); the
//!   parser does not carry the "last event ID" from one event to the next.
//! * [`SseParser::finish`] emits a final block that had no terminating blank line
//!   (its last line may even lack a line ending) instead of discarding it.
//! * Invalid UTF-8 in a field value is replaced with U+FFFD (lossy decoding, as a
//!   browser's decoder does); `raw` always holds the original bytes.
//! * Memory is bounded: an event whose raw bytes exceed the maximum (default 1 MiB,
//!   [`SseParser::with_max_event_bytes`]) is not parsed. Its bytes are still emitted,
//!   as fragments with empty fields as soon as they arrive, so nothing is lost, and
//!   [`SseParser::dropped_events`] counts it. Whether an event is dropped depends
//!   only on its size, never on how the stream was split.
//!
//! # Latency
//!
//! A block whose terminating blank line ends with `\r` at the very end of a chunk is
//! held until the next byte arrives (or [`SseParser::finish`]), because a following
//! `\n` belongs to it. Streams using `\n` or `\r\n` are otherwise emitted as soon as
//! their blank line is complete.

/// Default maximum size in bytes of one event, blank line included.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";

/// One block of the stream (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event` field; `""` when absent (the caller treats that as `"message"`).
    pub event: &'a str,
    /// The `data` lines joined with `\n`; `""` for comment-only blocks and fragments.
    pub data: &'a str,
    /// The `id` field of this block, if it had one.
    pub id: Option<&'a str>,
    /// The exact bytes of this block in the stream, including its terminating blank
    /// line (none for a block flushed by [`SseParser::finish`]).
    pub raw: &'a [u8],
}

impl SseEvent<'_> {
    /// The event type as a browser reports it: `event`, or `"message"` when absent.
    pub fn event_type(&self) -> &str {
        if self.event.is_empty() {
            "message"
        } else {
            self.event
        }
    }

    /// True for the OpenAI end-of-stream sentinel `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Incremental SSE parser; see the module documentation.
#[derive(Debug, Clone)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Raw bytes of the incomplete block (never more than `max_event_bytes`).
    pending: Vec<u8>,
    /// The current block is larger than the maximum: its bytes are emitted as
    /// fragments and not kept.
    overflow: bool,
    /// The current line has at least one byte (BOM excepted).
    line_has_content: bool,
    /// The previous byte was a `\r` ending a non-blank line: a `\n` right after it is
    /// part of that line ending.
    after_cr: bool,
    /// The block is complete except that it ended with `\r` at the end of a chunk: it
    /// takes one more byte if that byte is `\n`.
    held_after_cr: bool,
    /// Bytes of a leading byte-order mark matched so far; `None` once decided.
    bom_matched: Option<u8>,
    /// The next block starts with a byte-order mark to skip when parsing it.
    skip_bom: bool,
    dropped_events: u64,
    data_buf: String,
    event_buf: String,
    id_buf: String,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

/// How a scanned block ends.
enum Scan {
    /// A block ends right before this offset of the chunk.
    EventEnd(usize),
    /// The chunk was consumed without completing a block.
    NeedMore,
}

impl SseParser {
    /// A parser with the default maximum event size (1 MiB).
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that drops (emits as fragments, unparsed) any event whose raw bytes
    /// exceed `n`.
    pub fn with_max_event_bytes(n: usize) -> Self {
        SseParser {
            max_event_bytes: n,
            pending: Vec::new(),
            overflow: false,
            line_has_content: false,
            after_cr: false,
            held_after_cr: false,
            bom_matched: Some(0),
            skip_bom: false,
            dropped_events: 0,
            data_buf: String::new(),
            event_buf: String::new(),
            id_buf: String::new(),
        }
    }

    /// Feeds one chunk; calls `on_event` for each complete block, in order.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&SseEvent<'_>)) {
        let mut pos = 0usize; // scan position
        let mut start = 0usize; // first byte of the chunk not yet emitted
        loop {
            // The usual block, `data: …` (after `event: …` or not) and a blank line, whole
            // in this chunk: one search per line instead of the scan's and the parser's.
            if self.at_block_start() {
                let rest = chunk.get(pos..).unwrap_or_default();
                if let Some((len, event, value)) = usual_block(rest, self.max_event_bytes) {
                    on_event(&SseEvent {
                        event: decode(event, &mut self.event_buf),
                        data: decode(value, &mut self.data_buf),
                        id: None,
                        raw: rest.get(..len).unwrap_or_default(),
                    });
                    pos += len;
                    start = pos;
                    continue;
                }
            }
            let Scan::EventEnd(end) = self.scan(chunk, &mut pos) else {
                break;
            };
            let part = chunk.get(start..end).unwrap_or_default();
            self.complete_block(part, &mut on_event);
            start = end;
        }
        let tail = chunk.get(start..).unwrap_or_default();
        if tail.is_empty() {
            return;
        }
        if self.overflow {
            emit_fragment(tail, &mut on_event);
        } else if self.pending.len().saturating_add(tail.len()) > self.max_event_bytes {
            self.overflow = true;
            self.skip_bom = false;
            self.dropped_events = self.dropped_events.saturating_add(1);
            if !self.pending.is_empty() {
                emit_fragment(&self.pending, &mut on_event);
                self.pending.clear();
            }
            emit_fragment(tail, &mut on_event);
        } else {
            self.pending.extend_from_slice(tail);
        }
    }

    /// End of stream: emits the trailing block that had no blank line after it, if
    /// any, and resets the parser for a new stream (the dropped-event count is kept).
    pub fn finish(&mut self, mut on_event: impl FnMut(&SseEvent<'_>)) {
        if !self.pending.is_empty() {
            let skip_bom = self.skip_bom;
            let Self {
                pending,
                data_buf,
                event_buf,
                id_buf,
                ..
            } = self;
            let ev = parse_block(pending, skip_bom, data_buf, event_buf, id_buf);
            on_event(&ev);
        }
        let dropped = self.dropped_events;
        let mut fresh = Self::with_max_event_bytes(self.max_event_bytes);
        // Keep the allocated buffers for reuse.
        std::mem::swap(&mut fresh.pending, &mut self.pending);
        std::mem::swap(&mut fresh.data_buf, &mut self.data_buf);
        std::mem::swap(&mut fresh.event_buf, &mut self.event_buf);
        std::mem::swap(&mut fresh.id_buf, &mut self.id_buf);
        fresh.pending.clear();
        fresh.dropped_events = dropped;
        *self = fresh;
    }

    /// Bytes fed but not yet part of an emitted event (the incomplete tail).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Number of events that exceeded the maximum size and were emitted unparsed.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// The maximum size of one event in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Nothing of a block is pending and the scanner is at the start of a line, with
    /// the byte-order mark decided: the next bytes begin a block.
    fn at_block_start(&self) -> bool {
        self.pending.is_empty()
            && !self.overflow
            && !self.after_cr
            && !self.held_after_cr
            && !self.line_has_content
            && !self.skip_bom
            && self.bom_matched.is_none()
    }

    /// Advances the line scanner from `*pos`; stops at the end of a block or of the
    /// chunk.
    fn scan(&mut self, chunk: &[u8], pos: &mut usize) -> Scan {
        if let Some(matched) = self.bom_matched {
            let mut m = matched;
            while let (Some(&b), Some(&want)) = (chunk.get(*pos), BOM.get(usize::from(m))) {
                if b != want {
                    break;
                }
                m += 1;
                *pos += 1;
            }
            if usize::from(m) == BOM.len() {
                self.bom_matched = None;
                self.skip_bom = true;
            } else if *pos < chunk.len() {
                // A byte that is not part of the mark: the partial mark is content.
                self.bom_matched = None;
                if m > 0 {
                    self.line_has_content = true;
                }
            } else {
                self.bom_matched = Some(m);
                return Scan::NeedMore;
            }
        }
        if self.held_after_cr {
            let Some(&b) = chunk.get(*pos) else {
                return Scan::NeedMore;
            };
            self.held_after_cr = false;
            if b == b'\n' {
                *pos += 1;
            }
            return Scan::EventEnd(*pos);
        }
        loop {
            let rest = chunk.get(*pos..).unwrap_or_default();
            if rest.is_empty() {
                return Scan::NeedMore;
            }
            if self.after_cr {
                self.after_cr = false;
                if rest.first() == Some(&b'\n') {
                    *pos += 1;
                    continue;
                }
            }
            let Some(off) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.line_has_content = true;
                *pos = chunk.len();
                return Scan::NeedMore;
            };
            let is_cr = rest.get(off) == Some(&b'\r');
            let blank = off == 0 && !self.line_has_content;
            *pos += off + 1;
            self.line_has_content = false;
            if blank {
                if is_cr {
                    match chunk.get(*pos) {
                        None => {
                            self.held_after_cr = true;
                            return Scan::NeedMore;
                        }
                        Some(b'\n') => *pos += 1,
                        Some(_) => {}
                    }
                }
                return Scan::EventEnd(*pos);
            }
            self.after_cr = is_cr;
        }
    }

    /// A block ends with `part` (the rest of it is in `pending`, or was emitted as
    /// fragments).
    fn complete_block(&mut self, part: &[u8], on_event: &mut impl FnMut(&SseEvent<'_>)) {
        self.after_cr = false;
        self.line_has_content = false;
        if self.overflow {
            self.overflow = false;
            emit_fragment(part, on_event);
            return;
        }
        let skip_bom = std::mem::take(&mut self.skip_bom);
        let total = self.pending.len().saturating_add(part.len());
        if total > self.max_event_bytes {
            self.dropped_events = self.dropped_events.saturating_add(1);
            if !self.pending.is_empty() {
                emit_fragment(&self.pending, on_event);
                self.pending.clear();
            }
            emit_fragment(part, on_event);
            return;
        }
        let Self {
            pending,
            data_buf,
            event_buf,
            id_buf,
            ..
        } = self;
        if pending.is_empty() {
            let ev = parse_block(part, skip_bom, data_buf, event_buf, id_buf);
            on_event(&ev);
        } else {
            pending.extend_from_slice(part);
            let ev = parse_block(pending, skip_bom, data_buf, event_buf, id_buf);
            on_event(&ev);
            pending.clear();
        }
    }
}

fn emit_fragment(raw: &[u8], on_event: &mut impl FnMut(&SseEvent<'_>)) {
    if raw.is_empty() {
        return;
    }
    on_event(&SseEvent {
        event: "",
        data: "",
        id: None,
        raw,
    });
}

/// A block at the start of `rest` that is an optional `event` line and one `data` line,
/// each ending in `\n`, then a blank line `\n`, no longer than `max`: its length and the
/// two values as [`parse_block`] reads them (one space after each colon removed; no
/// event line reads as an empty event).
fn usual_block(rest: &[u8], max: usize) -> Option<(usize, &[u8], &[u8])> {
    let (event, data_at) = match rest.strip_prefix(b"event:") {
        Some(line) => {
            let end = memchr::memchr2(b'\n', b'\r', line)?;
            if line.get(end) != Some(&b'\n') {
                return None;
            }
            (field_value(line.get(..end)?), b"event:".len() + end + 1)
        }
        None => (&[][..], 0),
    };
    let line = rest.get(data_at..)?.strip_prefix(b"data:")?;
    let end = memchr::memchr2(b'\n', b'\r', line)?;
    if line.get(end..end + 2) != Some(b"\n\n") {
        return None;
    }
    let len = data_at + b"data:".len() + end + 2;
    (len <= max).then_some((len, event, field_value(line.get(..end)?)))
}

/// A field's value: one space after the colon removed.
fn field_value(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

/// Splits off the next line of a complete block: `(line, rest)`.
fn next_line(buf: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr2(b'\n', b'\r', buf) {
        None => (buf, &[]),
        Some(i) => {
            let line = buf.get(..i).unwrap_or_default();
            let crlf = buf.get(i) == Some(&b'\r') && buf.get(i + 1) == Some(&b'\n');
            let next = if crlf { i + 2 } else { i + 1 };
            (line, buf.get(next..).unwrap_or_default())
        }
    }
}

/// `(name, value)` of a non-comment, non-empty line.
fn split_field(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b':', line) {
        None => (line, &[]),
        Some(i) => {
            let name = line.get(..i).unwrap_or_default();
            let mut value = line.get(i + 1..).unwrap_or_default();
            if value.first() == Some(&b' ') {
                value = value.get(1..).unwrap_or_default();
            }
            (name, value)
        }
    }
}

/// Decodes `bytes`, borrowing when valid UTF-8, else lossily into `scratch`.
fn decode<'a>(bytes: &'a [u8], scratch: &'a mut String) -> &'a str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => {
            scratch.clear();
            scratch.push_str(&String::from_utf8_lossy(bytes));
            scratch.as_str()
        }
    }
}

/// Parses the fields of one complete block.
fn parse_block<'a>(
    raw: &'a [u8],
    skip_bom: bool,
    data_buf: &'a mut String,
    event_buf: &'a mut String,
    id_buf: &'a mut String,
) -> SseEvent<'a> {
    let body = if skip_bom {
        raw.strip_prefix(BOM.as_slice()).unwrap_or(raw)
    } else {
        raw
    };
    let mut event: &[u8] = &[];
    let mut id: Option<&[u8]> = None;
    let mut first_data: Option<&[u8]> = None;
    let mut data_lines = 0usize;
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = next_line(rest);
        rest = next;
        if line.is_empty() || line.first() == Some(&b':') {
            continue;
        }
        let (name, value) = split_field(line);
        match name {
            b"data" => {
                data_lines += 1;
                if first_data.is_none() {
                    first_data = Some(value);
                }
            }
            b"event" => event = value,
            b"id" if !value.contains(&0) => id = Some(value),
            _ => {}
        }
    }
    let data: &str = match (data_lines, first_data) {
        (1, Some(v)) => decode(v, data_buf),
        (0, _) | (_, None) => "",
        _ => {
            data_buf.clear();
            let mut rest = body;
            let mut first = true;
            while !rest.is_empty() {
                let (line, next) = next_line(rest);
                rest = next;
                if line.first() == Some(&b':') {
                    continue;
                }
                let (name, value) = split_field(line);
                if name == b"data" {
                    if !first {
                        data_buf.push('\n');
                    }
                    first = false;
                    data_buf.push_str(&String::from_utf8_lossy(value));
                }
            }
            data_buf.as_str()
        }
    };
    SseEvent {
        event: decode(event, event_buf),
        data,
        id: id.map(|v| decode(v, id_buf)),
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Owned copy of an event, for comparisons.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Ev {
        event: String,
        data: String,
        id: Option<String>,
        raw: Vec<u8>,
    }

    impl Ev {
        fn view(&self) -> SseEvent<'_> {
            SseEvent {
                event: &self.event,
                data: &self.data,
                id: self.id.as_deref(),
                raw: &self.raw,
            }
        }
        fn is_done(&self) -> bool {
            self.view().is_done()
        }
        fn event_type(&self) -> String {
            self.view().event_type().to_string()
        }
    }

    fn own(e: &SseEvent<'_>) -> Ev {
        Ev {
            event: e.event.to_string(),
            data: e.data.to_string(),
            id: e.id.map(str::to_string),
            raw: e.raw.to_vec(),
        }
    }

    fn parse_chunks(p: &mut SseParser, chunks: &[&[u8]]) -> Vec<Ev> {
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(own(e)));
        }
        p.finish(|e| out.push(own(e)));
        out
    }

    fn parse_all(input: &[u8]) -> Vec<Ev> {
        parse_chunks(&mut SseParser::new(), &[input])
    }

    /// Only the events a browser would dispatch: (event, data, id).
    fn messages(evs: &[Ev]) -> Vec<(String, String, Option<String>)> {
        evs.iter()
            .filter(|e| !e.data.is_empty())
            .map(|e| (e.event.clone(), e.data.clone(), e.id.clone()))
            .collect()
    }

    fn concat(evs: &[Ev]) -> Vec<u8> {
        evs.iter().flat_map(|e| e.raw.iter().copied()).collect()
    }

    #[test]
    fn single_event() {
        let evs = parse_all(b"data: hello\n\n");
        assert_eq!(
            evs,
            vec![Ev {
                event: String::new(),
                data: "hello".into(),
                id: None,
                raw: b"data: hello\n\n".to_vec()
            }]
        );
    }

    #[test]
    fn several_events_in_one_chunk_are_borrowed_in_order() {
        let input = b"data: a\n\ndata: b\n\nevent: x\ndata: c\nid: 7\n\n";
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(input, |e| out.push(own(e)));
        assert_eq!(p.pending_len(), 0);
        assert_eq!(
            messages(&out),
            vec![
                ("".into(), "a".into(), None),
                ("".into(), "b".into(), None),
                ("x".into(), "c".into(), Some("7".into())),
            ]
        );
        assert_eq!(concat(&out), input.to_vec());
    }

    #[test]
    fn event_split_across_chunks() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: hel", |e| out.push(own(e)));
        assert!(out.is_empty());
        assert_eq!(p.pending_len(), 9);
        p.feed(b"lo\n", |e| out.push(own(e)));
        assert!(out.is_empty());
        p.feed(b"\ndata: next", |e| out.push(own(e)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, "hello");
        assert_eq!(out[0].raw, b"data: hello\n\n");
        assert_eq!(p.pending_len(), 10);
        p.finish(|e| out.push(own(e)));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].data, "next");
        assert_eq!(out[1].raw, b"data: next");
        assert_eq!(p.pending_len(), 0);
    }

    #[test]
    fn line_endings_crlf_lf_cr() {
        for input in [
            &b"data: a\r\ndata: b\r\n\r\n"[..],
            b"data: a\ndata: b\n\n",
            b"data: a\rdata: b\r\r",
            b"data: a\r\ndata: b\n\r",
        ] {
            let evs = parse_all(input);
            assert_eq!(messages(&evs), vec![("".into(), "a\nb".into(), None)]);
            assert_eq!(evs.len(), 1, "{input:?}");
            assert_eq!(evs[0].raw, input);
        }
    }

    #[test]
    fn crlf_split_between_cr_and_lf() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: a\r", |e| out.push(own(e)));
        p.feed(b"\n\r", |e| out.push(own(e)));
        // The blank line's CR may be followed by LF: the event is held.
        assert!(out.is_empty());
        p.feed(b"\ndata: b\r\n\r\n", |e| out.push(own(e)));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].raw, b"data: a\r\n\r\n");
        assert_eq!(out[1].raw, b"data: b\r\n\r\n");
    }

    #[test]
    fn held_cr_event_released_by_next_non_lf_byte_or_finish() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: a\r\r", |e| out.push(own(e)));
        assert!(out.is_empty());
        p.feed(b"data: b\r\r", |e| out.push(own(e)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].raw, b"data: a\r\r");
        p.finish(|e| out.push(own(e)));
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].data, "b");
        assert_eq!(out[1].raw, b"data: b\r\r");
    }

    #[test]
    fn comments_are_surfaced_with_empty_data() {
        let input = b": ping\n\ndata: x\n: inline comment\n\n:\n\n";
        let evs = parse_all(input);
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[0].data, "");
        assert_eq!(evs[0].raw, b": ping\n\n");
        assert_eq!(evs[1].data, "x");
        assert_eq!(evs[2].data, "");
        assert_eq!(concat(&evs), input.to_vec());
    }

    #[test]
    fn multi_line_data_is_joined_with_newline() {
        let evs = parse_all(b"data: {\"a\":\ndata:1}\ndata\ndata:  two spaces\n\n");
        assert_eq!(evs[0].data, "{\"a\":\n1}\n\n two spaces");
    }

    #[test]
    fn optional_single_space_after_colon() {
        let evs = parse_all(b"data:x\n\ndata: x\n\ndata:  x\n\n");
        let d: Vec<_> = evs.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(d, vec!["x", "x", " x"]);
    }

    #[test]
    fn field_without_colon() {
        // `data` alone is a data line with an empty value; per spec the event is
        // dispatched with data "" (we surface it with data "").
        let evs = parse_all(b"data\ndata\n\nevent\ndata: y\n\n");
        assert_eq!(evs[0].data, "\n");
        assert_eq!(evs[1].event, "");
        assert_eq!(evs[1].data, "y");
    }

    #[test]
    fn event_and_id_fields_last_wins() {
        let evs = parse_all(b"event: a\nevent: b\nid: 1\nid: 2\ndata: d\n\n");
        assert_eq!(evs[0].event, "b");
        assert_eq!(evs[0].id.as_deref(), Some("2"));
        assert_eq!(evs[0].event_type(), "b");
        let evs = parse_all(b"data: d\n\n");
        assert_eq!(evs[0].event_type(), "message");
        assert_eq!(evs[0].id, None);
    }

    #[test]
    fn id_with_nul_is_ignored_and_empty_id_kept() {
        let evs = parse_all(b"id: a\0b\ndata: d\n\nid\ndata: e\n\n");
        assert_eq!(evs[0].id, None);
        assert_eq!(evs[1].id.as_deref(), Some(""));
    }

    #[test]
    fn retry_and_unknown_fields_ignored_case_sensitive() {
        let evs = parse_all(b"retry: 100\nfoo: bar\nDATA: no\ndata: yes\n\n");
        assert_eq!(evs[0].data, "yes");
        assert_eq!(evs[0].event, "");
    }

    #[test]
    fn final_event_without_blank_line_flushed_by_finish() {
        for input in [&b"data: last"[..], b"data: last\n", b"data: last\r\n"] {
            let mut p = SseParser::new();
            let mut out = Vec::new();
            p.feed(input, |e| out.push(own(e)));
            assert!(out.is_empty());
            assert_eq!(p.pending_len(), input.len());
            p.finish(|e| out.push(own(e)));
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].data, "last");
            assert_eq!(out[0].raw, input);
        }
    }

    #[test]
    fn finish_on_empty_parser_emits_nothing_and_resets() {
        let mut p = SseParser::new();
        let mut n = 0;
        p.finish(|_| n += 1);
        assert_eq!(n, 0);
        p.feed(b"data: a\n\n", |_| n += 1);
        p.finish(|_| n += 1);
        assert_eq!(n, 1);
        // Reusable for a new stream, BOM handling included.
        let evs = parse_chunks(&mut p, &[b"\xEF\xBB\xBFdata: z\n\n"]);
        assert_eq!(evs[0].data, "z");
    }

    #[test]
    fn done_sentinel() {
        let evs = parse_all(b"data: {\"x\":1}\n\ndata: [DONE]\n\n");
        assert!(!evs[0].is_done());
        assert!(evs[1].is_done());
        assert_eq!(evs[1].data, "[DONE]");
    }

    #[test]
    fn bom_at_stream_start_is_ignored_even_split() {
        let input = b"\xEF\xBB\xBFdata: a\n\n";
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            let evs = parse_chunks(&mut SseParser::new(), &[a, b]);
            assert_eq!(messages(&evs), vec![("".into(), "a".into(), None)]);
            assert_eq!(concat(&evs), input.to_vec());
        }
        // A BOM followed by a blank line is a blank line.
        let evs = parse_all(b"\xEF\xBB\xBF\ndata: b\n\n");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].data, "");
        // A BOM later in the stream is content (here: part of a field name).
        let evs = parse_all(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n");
        assert_eq!(messages(&evs).len(), 1);
        // A partial BOM is content.
        let evs = parse_all(b"\xEF\xBB\n\ndata: c\n\n");
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].raw, b"\xEF\xBB\n\n");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let evs = parse_all(b"event: e\xFF\ndata: a\xC3\ndata: b\nid: \xFE\n\n");
        assert_eq!(evs[0].event, "e\u{FFFD}");
        assert_eq!(evs[0].data, "a\u{FFFD}\nb");
        assert_eq!(evs[0].id.as_deref(), Some("\u{FFFD}"));
        let evs = parse_all(b"data: \xF0\x9F\x98\n\n");
        assert_eq!(evs[0].data, "\u{FFFD}");
    }

    #[test]
    fn utf8_split_across_chunks() {
        let input = "data: héllo 世界 😀\n\n".as_bytes();
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            let evs = parse_chunks(&mut SseParser::new(), &[a, b]);
            assert_eq!(evs[0].data, "héllo 世界 😀");
        }
    }

    #[test]
    fn stray_blank_lines_are_empty_blocks() {
        let input = b"\n\ndata: a\n\n\n";
        let evs = parse_all(input);
        assert_eq!(evs.len(), 4);
        assert_eq!(messages(&evs), vec![("".into(), "a".into(), None)]);
        assert_eq!(concat(&evs), input.to_vec());
    }

    #[test]
    fn oversize_event_is_dropped_but_its_bytes_are_emitted() {
        let mut p = SseParser::with_max_event_bytes(16);
        let mut out = Vec::new();
        let input: &[u8] = b"data: ok\n\ndata: 0123456789abcdefghij\n\ndata: ok2\n\n";
        for c in input.chunks(5) {
            p.feed(c, |e| out.push(own(e)));
            assert!(p.pending_len() <= 16);
        }
        p.finish(|e| out.push(own(e)));
        assert_eq!(p.dropped_events(), 1);
        assert_eq!(
            messages(&out),
            vec![
                ("".into(), "ok".into(), None),
                ("".into(), "ok2".into(), None)
            ]
        );
        assert_eq!(concat(&out), input.to_vec());
    }

    #[test]
    fn oversize_event_in_a_single_chunk() {
        let mut p = SseParser::with_max_event_bytes(12);
        let mut out = Vec::new();
        p.feed(b"data: 0123456789\n\ndata: a\n\n", |e| out.push(own(e)));
        assert_eq!(p.dropped_events(), 1);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data, "");
        assert_eq!(out[0].raw, b"data: 0123456789\n\n");
        assert_eq!(out[1].data, "a");
        // Exactly at the limit is fine; one byte more is dropped.
        let mut p = SseParser::with_max_event_bytes(10);
        let mut out = Vec::new();
        p.feed(b"data: ab\n\n", |e| out.push(own(e)));
        p.feed(b"data: abc\n\n", |e| out.push(own(e)));
        assert_eq!(p.dropped_events(), 1);
        assert_eq!(out[0].data, "ab");
        assert_eq!(out[1].data, "");
        assert_eq!(out[1].raw, b"data: abc\n\n");
    }

    #[test]
    fn pending_is_bounded_by_max_without_line_endings() {
        let mut p = SseParser::with_max_event_bytes(1000);
        let mut emitted = 0usize;
        for _ in 0..10_000 {
            p.feed(b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", |e| {
                assert_eq!(e.data, "");
                emitted += e.raw.len();
            });
            assert!(p.pending_len() <= 1000);
        }
        assert_eq!(p.dropped_events(), 1);
        p.feed(b"\n\ndata: after\n\n", |e| {
            emitted += e.raw.len();
        });
        assert_eq!(emitted, 40 * 10_000 + 15);
    }

    #[test]
    fn openai_style_stream() {
        let input = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n\
data: [DONE]\n\n";
        let evs = parse_all(input);
        assert_eq!(evs.len(), 3);
        assert!(evs[2].is_done());
        assert_eq!(concat(&evs), input.to_vec());
    }

    // ---- property tests ----

    /// Streams built from SSE-ish pieces, so that the interesting cases are dense.
    fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data: ".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"data".to_vec()),
            Just(b"event: ".to_vec()),
            Just(b"id: ".to_vec()),
            Just(b"id:\0".to_vec()),
            Just(b"retry: 5".to_vec()),
            Just(b": ping".to_vec()),
            Just(b":".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(b"\r\n\r\n".to_vec()),
            Just(b"[DONE]".to_vec()),
            Just(b"\xEF\xBB\xBF".to_vec()),
            Just("é世😀".as_bytes().to_vec()),
            Just(b"\xFF\xC3".to_vec()),
            "[a-z {}\":,]{0,12}".prop_map(String::into_bytes),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    fn split_at_points(input: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
        points.iter_mut().for_each(|p| *p %= input.len() + 1);
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points {
            chunks.push(&input[prev..p]);
            prev = p;
        }
        chunks.push(&input[prev..]);
        chunks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_split_gives_identical_events(
            input in sse_stream(),
            points in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = parse_all(&input);
            let chunks = split_at_points(&input, points);
            let split = parse_chunks(&mut SseParser::new(), &chunks);
            prop_assert_eq!(&split, &whole);
            prop_assert_eq!(concat(&whole), input);
        }

        #[test]
        fn every_single_split_point_and_byte_by_byte(input in sse_stream()) {
            let whole = parse_all(&input);
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                let evs = parse_chunks(&mut SseParser::new(), &[a, b]);
                prop_assert_eq!(&evs, &whole);
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            prop_assert_eq!(&parse_chunks(&mut SseParser::new(), &bytes), &whole);
        }

        #[test]
        fn garbage_never_panics_and_raw_covers_input(
            input in prop::collection::vec(any::<u8>(), 0..600),
            points in prop::collection::vec(any::<usize>(), 0..8),
            max in 0usize..64,
        ) {
            let chunks = split_at_points(&input, points);
            let mut p = SseParser::with_max_event_bytes(max);
            let mut out = Vec::new();
            for c in &chunks {
                p.feed(c, |e| out.push(own(e)));
                prop_assert!(p.pending_len() <= max);
            }
            p.finish(|e| out.push(own(e)));
            prop_assert_eq!(concat(&out), input);
            prop_assert!(out.iter().all(|e| !e.raw.is_empty()));
        }

        #[test]
        fn small_max_keeps_messages_split_independent(
            input in sse_stream(),
            points in prop::collection::vec(any::<usize>(), 0..8),
            max in 0usize..48,
        ) {
            let whole = parse_chunks(&mut SseParser::with_max_event_bytes(max), &[&input]);
            let chunks = split_at_points(&input, points);
            let mut p = SseParser::with_max_event_bytes(max);
            let split = parse_chunks(&mut p, &chunks);
            prop_assert_eq!(messages(&split), messages(&whole));
            prop_assert_eq!(concat(&split), input.clone());
            // Every message that was parsed is within the limit.
            prop_assert!(split.iter().filter(|e| !e.data.is_empty()).all(|e| e.raw.len() <= max));
        }

        #[test]
        fn data_lines_round_trip(lines in prop::collection::vec("[^\r\n]{0,20}", 1..5)) {
            let mut input = String::new();
            for l in &lines {
                input.push_str("data: ");
                input.push_str(l);
                input.push('\n');
            }
            input.push('\n');
            let evs = parse_all(input.as_bytes());
            prop_assert_eq!(evs.len(), 1);
            prop_assert_eq!(&evs[0].data, &lines.join("\n"));
        }
    }
}
