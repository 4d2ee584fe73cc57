//! Observer of an Anthropic Messages SSE stream: usage from `message_start` and
//! `message_delta`, the first content delta (for time to first token), an output
//! estimate from the streamed text, and `error` events. It reads each event with small
//! borrowed serde structs and never edits the stream.
//!
//! Most events of a stream are text deltas (`content_block_delta` with a `text_delta` or
//! `thinking_delta`); [`text_delta`] reads those without serde, for this observer and for
//! the translator to OpenAI chunks alike.

use serde::Deserialize;

use crate::fastjson::copy::dropped;
use crate::fastjson::walk::{object, string, unsigned, ws, JsonStr};
use crate::stream::sse::SseEvent;
use crate::tokens::estimate::TokenEstimator;
use crate::tokens::usage::{AnthropicUsage, Usage};

#[derive(Debug, Default, Clone)]
pub struct AnthropicStreamObserver {
    usage: Option<AnthropicUsage>,
    first_content_seen: bool,
    estimator: TokenEstimator,
    error: Option<String>,
    stopped: bool,
    /// `message_delta` reported usage: the output count is final, not `message_start`'s
    /// placeholder.
    final_usage_seen: bool,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(default)]
    message: Option<MessageStart>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct MessageStart {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// Which text a `content_block_delta` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeltaKind {
    /// `text_delta`: answer text.
    Text,
    /// `thinking_delta`: extended thinking.
    Thinking,
}

/// A `content_block_delta` event with a `text_delta` or `thinking_delta`, read without
/// serde.
pub(crate) struct TextDelta<'a> {
    pub kind: DeltaKind,
    pub text: JsonStr<'a>,
}

/// Reads the usual Anthropic stream event, a text or thinking delta:
/// `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"…"}}`
/// (`event` is its SSE event name, which decides the kind when present). `None` for
/// anything else, which the callers then read with serde as before: other events, other
/// delta types, a delta with more than its one text member or with `null` text, members
/// the serde readers type (`message`, `content_block`, `usage`, `error`, and in the delta
/// `partial_json`, `signature`, `stop_reason`, `stop_sequence`), an `index` that is not
/// a `u32`, escaped or repeated keys, invalid JSON. Other members are read as the
/// translator's `StreamEvent` and `StreamDelta` keep them (as `Value`s in `rest`).
pub(crate) fn text_delta<'a>(event: &str, data: &'a str) -> Option<TextDelta<'a>> {
    if !(event.is_empty() || event == "content_block_delta") {
        return None;
    }
    let b = data.as_bytes();
    let (mut kind, mut index, mut delta) = (false, false, None);
    let end = object(b, ws(b, 0), |key, i| match key {
        b"type" if !kind => {
            kind = true;
            let (s, end) = string(data, i)?;
            (s.literal == "\"content_block_delta\"").then_some(end)
        }
        b"index" if !index => {
            index = true;
            unsigned(b, i, u32::MAX.into())
        }
        b"delta" if delta.is_none() => {
            let (d, end) = delta_object(data, i)?;
            delta = Some(d);
            Some(end)
        }
        b"type" | b"index" | b"delta" | b"message" | b"content_block" | b"usage" | b"error" => None,
        _ => dropped(data, i),
    })?;
    (kind && ws(b, end) == b.len()).then_some(())?;
    delta
}

/// The `delta` of a text or thinking delta: its `type` and the one member that names.
fn delta_object(data: &str, i: usize) -> Option<(TextDelta<'_>, usize)> {
    let b = data.as_bytes();
    let mut kind = None;
    let mut text: Option<(DeltaKind, JsonStr<'_>)> = None;
    let end = object(b, i, |key, i| match key {
        b"type" if kind.is_none() => {
            let (s, end) = string(data, i)?;
            kind = Some(match s.literal {
                "\"text_delta\"" => DeltaKind::Text,
                "\"thinking_delta\"" => DeltaKind::Thinking,
                _ => return None,
            });
            Some(end)
        }
        b"text" | b"thinking" if text.is_none() => {
            let (s, end) = string(data, i)?;
            let k = if key == b"text" {
                DeltaKind::Text
            } else {
                DeltaKind::Thinking
            };
            text = Some((k, s));
            Some(end)
        }
        b"type" | b"text" | b"thinking" | b"partial_json" | b"signature" | b"stop_reason"
        | b"stop_sequence" => None,
        _ => dropped(data, i),
    })?;
    let (k, text) = text?;
    (kind == Some(k)).then_some((TextDelta { kind: k, text }, end))
}

impl AnthropicStreamObserver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one event; returns true when it carried the first content of the answer.
    pub fn observe(&mut self, ev: &SseEvent<'_>) -> bool {
        self.observe_read(ev, text_delta(ev.event, ev.data).as_ref())
    }

    /// [`Self::observe`] for an event already given to [`text_delta`] (`delta` is what
    /// it answered), so that the translator and this observer read it once.
    pub(crate) fn observe_read(
        &mut self,
        ev: &SseEvent<'_>,
        delta: Option<&TextDelta<'_>>,
    ) -> bool {
        if let Some(d) = delta {
            return self.content(&d.text.text);
        }
        let data = ev.data.trim();
        if data.is_empty() {
            return false;
        }
        let Ok(parsed) = serde_json::from_str::<Event<'_>>(data) else {
            if ev.event == "error" {
                self.error.get_or_insert_with(|| "error".to_string());
            }
            return false;
        };
        let kind = if ev.event.is_empty() {
            parsed.kind.unwrap_or("")
        } else {
            ev.event
        };
        match kind {
            "message_start" => {
                if let Some(u) = parsed.message.and_then(|m| m.usage) {
                    self.usage = Some(u);
                }
            }
            "message_delta" => {
                if let Some(later) = parsed.usage {
                    let mut u = self.usage.unwrap_or_default();
                    u.merge(&later);
                    self.usage = Some(u);
                    self.final_usage_seen = true;
                }
            }
            "content_block_delta" => {
                if let Some(d) = parsed.delta {
                    let mut first = false;
                    for text in [d.text, d.partial_json, d.thinking].into_iter().flatten() {
                        first |= self.content(&text);
                    }
                    return first;
                }
            }
            "message_stop" => self.stopped = true,
            "error" => {
                let t = parsed
                    .error
                    .and_then(|e| e.kind)
                    .unwrap_or_else(|| "error".into());
                self.error.get_or_insert(t);
            }
            _ => {}
        }
        false
    }

    /// Streamed text: counted for the estimate; true when it is the first content.
    fn content(&mut self, text: &str) -> bool {
        if text.is_empty() {
            return false;
        }
        self.estimator.push(text);
        !std::mem::replace(&mut self.first_content_seen, true)
    }

    /// Usage as reported (`message_start`, updated by `message_delta`). Until
    /// `message_delta` reports the final count, `message_start`'s `output_tokens` is only
    /// a placeholder (typically 1): a stream that ends before it (cut, error event, client
    /// gone) yields the reported input with the output estimated from the streamed text,
    /// marked `estimated`.
    pub fn usage(&self) -> Option<Usage> {
        let u = self.usage?.to_usage();
        if self.final_usage_seen {
            return Some(u);
        }
        Some(Usage {
            output: u.output.max(self.estimator.estimate()),
            estimated: true,
            ..u
        })
    }

    pub fn estimated_output_tokens(&self) -> u64 {
        self.estimator.estimate()
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::stream::sse::SseParser;
    use proptest::prelude::*;
    use proptest::sample::select;

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello there\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\", friend\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    fn run(input: &str, split: usize) -> (AnthropicStreamObserver, usize) {
        let mut obs = AnthropicStreamObserver::new();
        let mut parser = SseParser::new();
        let mut firsts = 0;
        for c in input.as_bytes().chunks(split) {
            parser.feed(c, |ev| firsts += usize::from(obs.observe(ev)));
        }
        parser.finish(|ev| firsts += usize::from(obs.observe(ev)));
        (obs, firsts)
    }

    #[test]
    fn usage_first_content_and_stop_for_any_split() {
        for split in [1, 2, 5, 13, 64, 4096] {
            let (obs, firsts) = run(STREAM, split);
            let u = obs.usage().unwrap();
            assert_eq!(
                (u.input, u.output, u.cached_input),
                (28, 15, 3),
                "split {split}"
            );
            assert_eq!(firsts, 1);
            assert!(obs.stopped());
            assert!(obs.estimated_output_tokens() >= 4);
            assert_eq!(obs.error(), None);
        }
    }

    #[test]
    fn stream_ending_before_message_delta_has_estimated_output() {
        let cut = STREAM
            .find("event: message_delta")
            .and_then(|i| STREAM.get(..i))
            .unwrap();
        for split in [1, 7, 4096] {
            let (obs, _) = run(cut, split);
            let u = obs.usage().unwrap();
            // Input as message_start reported it; output from the text, not the placeholder 1.
            assert_eq!((u.input, u.cached_input), (28, 3), "split {split}");
            assert!(u.estimated);
            assert_eq!(u.output, obs.estimated_output_tokens());
            assert!(u.output >= 4);
        }
        let (obs, _) = run(STREAM, 9);
        assert!(!obs.usage().unwrap().estimated);
    }

    #[test]
    fn error_event_is_recorded() {
        let s = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let (obs, _) = run(s, 7);
        assert_eq!(obs.error(), Some("overloaded_error"));
        assert_eq!(obs.usage(), None);
    }

    #[test]
    fn text_deltas_are_read_without_serde() {
        fn read<'a>(event: &str, data: &'a str) -> Option<(DeltaKind, String, &'a str)> {
            text_delta(event, data).map(|d| (d.kind, d.text.text.into_owned(), d.text.literal))
        }
        let data = r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" quick"}}"#;
        assert_eq!(
            read("content_block_delta", data),
            Some((DeltaKind::Text, " quick".into(), r#"" quick""#))
        );
        assert_eq!(read("", data).map(|r| r.0), Some(DeltaKind::Text));
        let data = r#" {"index":3,"delta":{"thinking":"a\nb \u00e9","type":"thinking_delta"},"type":"content_block_delta"} "#;
        assert_eq!(
            read("content_block_delta", data).map(|r| (r.0, r.1)),
            Some((DeltaKind::Thinking, "a\nb é".into()))
        );
        for (event, data) in [
            // Another event name decides the kind.
            (
                "ping",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            // Other deltas, a second text member, null text, typed members, bad index.
            (
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","thinking":"y"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","text":"x"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"},"usage":{}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":-1,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":4294967296,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":1.0,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            // Escaped or repeated keys, an escaped type, trailing bytes.
            (
                "",
                r#"{"type":"content_block_delta","\u0069ndex":0,"delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block\u005fdelta","delta":{"type":"text_delta","text":"x"}}"#,
            ),
            (
                "",
                r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}} x"#,
            ),
        ] {
            assert!(read(event, data).is_none(), "{event} {data}");
        }
    }

    /// Events like an Anthropic stream's, most of them text or thinking deltas, with
    /// the variations the fast reader must refuse or read exactly as serde does: members
    /// in any order, extra, repeated or escaped ones, other types and values.
    pub(crate) fn arb_event() -> impl Strategy<Value = (String, String)> {
        let text = prop_oneof![
            4 => "[a-z ]{0,12}".prop_map(|s| format!("\"{s}\"")),
            1 => Just(r#""""#.to_string()),
            2 => Just(r#""é \" \\ \n \u00e9 \ud83d\ude00""#.to_string()),
            1 => Just(r#""\ud800""#.to_string()),
            1 => Just("null".to_string()),
            1 => Just("7".to_string()),
        ];
        let kind = prop_oneof![
            8 => Just(("text_delta", "text")),
            4 => Just(("thinking_delta", "thinking")),
            1 => Just(("input_json_delta", "partial_json")),
            1 => Just(("text_delta", "thinking")),
            1 => Just(("text\\u005fdelta", "text")),
        ];
        let delta_extra = select(vec![
            r#""text":"x""#,
            r#""thinking":"y""#,
            r#""type":"text_delta""#,
            r#""signature":"s""#,
            r#""stop_reason":null"#,
            r#""citation":{"a":[1,{}]}"#,
            r#""extra":"x""#,
            r#""\u0074ext":"x""#,
            // The translator's `StreamDelta` keeps unknown members as `Value`s: refused.
            r#""citation":[1e400]"#,
            r#""extra":"\ud800""#,
        ]);
        let delta = (
            kind,
            text,
            prop::option::weighted(0.3, delta_extra),
            any::<prop::sample::Index>(),
        )
            .prop_map(|((kind, field), text, extra, at)| {
                let mut m: Vec<String> = extra.into_iter().map(str::to_owned).collect();
                m.insert(at.index(m.len() + 1), format!(r#""{field}":{text}"#));
                m.insert(0, format!(r#""type":"{kind}""#));
                format!("{{{}}}", m.join(","))
            });
        let kind = prop_oneof![
            8 => Just(r#""type":"content_block_delta""#),
            1 => Just(r#""type":"message_delta""#),
            1 => Just(r#""type":"content_block\u005fdelta""#),
        ];
        let index = prop_oneof![
            6 => select(vec![r#""index":0"#, r#""index":12"#, r#""index":4294967295"#]),
            2 => select(vec![
                r#""index":-1"#, r#""index":1.5"#, r#""index":1e2"#, r#""index":01"#,
                r#""index":4294967296"#, r#""index":null"#, r#""index":"0""#,
            ]),
        ];
        let extra = select(vec![
            r#""usage":{"output_tokens":3}"#,
            r#""message":null"#,
            r#""extra":[true,false]"#,
            r#""\u0074ype":"content_block_delta""#,
            r#""type":"content_block_delta""#,
            r#""delta":{}"#,
            r#""extra":-1e400"#,
            r#""extra":{"y":"\udc00"}"#,
        ]);
        let members = (
            kind,
            index,
            delta,
            prop::option::weighted(0.3, extra),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(kind, index, delta, extra, at)| {
                let mut m = vec![
                    kind.to_string(),
                    index.to_string(),
                    format!(r#""delta":{delta}"#),
                ];
                for (i, e) in extra.into_iter().enumerate() {
                    m.insert((at.index(m.len() + 1) + i) % (m.len() + 1), e.to_string());
                }
                m
            });
        let event = prop_oneof![
            6 => select(vec!["", "content_block_delta"]),
            1 => select(vec!["ping", "message_delta"]),
        ];
        (
            event,
            members,
            any::<prop::sample::Index>(),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(e, mut m, at, drop)| {
                if drop {
                    m.remove(at.index(m.len()));
                }
                (e.to_string(), format!("{{{}}}", m.join(",")))
            })
    }

    fn observed(ev: &SseEvent<'_>, fast: bool) -> (bool, u64, Option<Usage>, Option<String>) {
        let delta = fast.then(|| text_delta(ev.event, ev.data)).flatten();
        let mut obs = AnthropicStreamObserver::new();
        let first = obs.observe_read(ev, delta.as_ref());
        (
            first,
            obs.estimated_output_tokens(),
            obs.usage(),
            obs.error().map(str::to_owned),
        )
    }

    /// The comparisons with serde are only as good as what the fast reader accepts: a
    /// good share of the generated events (about one in six).
    #[test]
    fn the_generated_events_are_often_read_without_serde() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let read = (0..1000)
            .filter(|_| {
                let (event, data) = arb_event().new_tree(&mut runner).unwrap().current();
                text_delta(&event, &data).is_some()
            })
            .count();
        assert!(read > 100, "{read} read");
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The observer sees what it saw with serde alone, for each generated event and
        /// with a byte inserted anywhere.
        #[test]
        fn reads_as_serde_does((event, data) in arb_event(), cut in any::<prop::sample::Index>(), junk in select(vec!["", "\"", "}", ",", "\\", " "])) {
            let mangled = crate::stream::openai_chunk::tests::insert_at(&data, cut, junk);
            for data in [data.clone(), mangled] {
                let ev = SseEvent { event: &event, data: &data, id: None, raw: b"" };
                prop_assert_eq!(observed(&ev, true), observed(&ev, false), "{} {}", event, data);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut obs = AnthropicStreamObserver::new();
            let mut parser = SseParser::new();
            parser.feed(&data, |ev| { obs.observe(ev); });
            parser.finish(|ev| { obs.observe(ev); });
        }
    }
}
