//! Observer of an Anthropic Messages SSE stream: usage from `message_start` and
//! `message_delta`, the first content delta (for time to first token), an output
//! estimate from the streamed text, and `error` events. It reads each event with small
//! borrowed serde structs and never edits the stream.

use serde::Deserialize;

use crate::estimate::TokenEstimator;
use crate::sse::SseEvent;
use crate::usage::{AnthropicUsage, Usage};

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

impl AnthropicStreamObserver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one event; returns true when it carried the first content of the answer.
    pub fn observe(&mut self, ev: &SseEvent<'_>) -> bool {
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
                    let mut any = false;
                    for text in [d.text, d.partial_json, d.thinking].into_iter().flatten() {
                        if !text.is_empty() {
                            self.estimator.push(&text);
                            any = true;
                        }
                    }
                    if any && !self.first_content_seen {
                        self.first_content_seen = true;
                        return true;
                    }
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
mod tests {
    use super::*;
    use crate::sse::SseParser;

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
