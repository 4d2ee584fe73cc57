//! The usual Anthropic `message` answer translated to an OpenAI `chat.completion` without
//! serde.
//!
//! The serde translation ([`super::anthropic::messages_response_to_chat`]) parses the
//! whole answer into `MessagesResponse` (flattened `rest` maps in it, its blocks and its
//! usage) to write a new one whose text is the answer's. Here one validating walk reads
//! the answer an Anthropic model usually gives — text blocks, a stop reason, usage — and
//! writes the chat completion as serde would, copying the text's JSON literal when
//! serde_json writes it the same. Anything else — thinking or tool use blocks, an error,
//! escaped or repeated keys, values of another type, invalid JSON or UTF-8 — answers
//! `None`, and the caller translates with serde as before. A property test holds the two
//! to the same bytes and usage.

use super::anthropic::finish_reason_for;
use super::messages_request::text_block;
use crate::fastjson::copy::{dropped, joined, string};
use crate::fastjson::text::quoted;
use crate::fastjson::walk::{array, null, object, unsigned_value, ws, KnownKeys};
use crate::tokens::usage::{AnthropicUsage, Usage};

const KEYS: [&[u8]; 8] = [
    b"id",
    b"type",
    b"role",
    b"model",
    b"content",
    b"stop_reason",
    b"stop_sequence",
    b"usage",
];

const USAGE_KEYS: [&[u8]; 4] = [
    b"input_tokens",
    b"output_tokens",
    b"cache_read_input_tokens",
    b"cache_creation_input_tokens",
];

/// The translation of `body` for the client's model and time, with its usage, byte for
/// byte what the serde translation writes, or `None` when the answer is not one this
/// reader reads.
pub(crate) fn messages_response_to_chat(
    body: &[u8],
    model_for_client: &str,
    created_unix: u64,
) -> Option<(Vec<u8>, Usage)> {
    let text = std::str::from_utf8(body).ok()?;
    let b = text.as_bytes();
    let mut keys = KnownKeys::new(KEYS);
    let mut id = None;
    let mut texts = Vec::new();
    let mut finish_reason = None;
    let mut usage = AnthropicUsage::default();
    let end = object(b, ws(b, 0), |key, i| {
        let Some(k) = keys.first(key)? else {
            return dropped(text, i);
        };
        match k {
            0 => {
                let (s, end) = string(text, i)?;
                id = Some(s);
                Some(end)
            }
            // `type`: an error is left to serde, which reports it.
            1 => {
                let (s, end) = crate::fastjson::walk::string(text, i)?;
                (s.text != "error").then_some(end)
            }
            2 | 3 => string(text, i).map(|(_, end)| end),
            4 => array(b, i, |i| {
                let (t, end) = text_block(text, i)?;
                texts.push(t);
                Some(end)
            }),
            5 | 6 => {
                if let Some(end) = null(b, i) {
                    return Some(end);
                }
                let (s, end) = crate::fastjson::walk::string(text, i)?;
                if k == 5 {
                    finish_reason = Some(finish_reason_for(&s.text));
                }
                Some(end)
            }
            _ => usage_object(text, i, &mut usage),
        }
    })?;
    if ws(b, end) != b.len() {
        return None;
    }
    let usage = usage.to_usage();
    let mut out = Vec::with_capacity(body.len() + model_for_client.len() + 160);
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.as_deref().unwrap_or("\"\"").as_bytes());
    out.extend_from_slice(b",\"object\":\"chat.completion\",\"created\":");
    out.extend_from_slice(created_unix.to_string().as_bytes());
    out.extend_from_slice(b",\"model\":");
    out.extend_from_slice(quoted(model_for_client).as_bytes());
    out.extend_from_slice(
        b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":",
    );
    out.extend_from_slice(joined(texts).as_bytes());
    out.extend_from_slice(b"},\"logprobs\":null,\"finish_reason\":");
    match finish_reason {
        Some(r) => {
            out.push(b'"');
            out.extend_from_slice(r.as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}],\"usage\":{\"prompt_tokens\":");
    for (n, then) in [
        (usage.input, b",\"completion_tokens\":".as_slice()),
        (usage.output, b",\"total_tokens\":"),
        (
            usage.total(),
            b",\"prompt_tokens_details\":{\"cached_tokens\":",
        ),
        (usage.cached_input, b"}}}"),
    ] {
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(then);
    }
    Some((out, usage))
}

/// `usage` (`MessagesUsage`): counts that are `null` or unsigned integers, other members
/// dropped as serde reads them.
fn usage_object(text: &str, i: usize, usage: &mut AnthropicUsage) -> Option<usize> {
    let b = text.as_bytes();
    let mut keys = KnownKeys::new(USAGE_KEYS);
    object(b, i, |key, i| {
        let slot = match keys.first(key)? {
            None => return dropped(text, i),
            Some(0) => &mut usage.input_tokens,
            Some(1) => &mut usage.output_tokens,
            Some(2) => &mut usage.cache_read_input_tokens,
            Some(_) => &mut usage.cache_creation_input_tokens,
        };
        if let Some(end) = null(b, i) {
            return Some(end);
        }
        let (n, end) = unsigned_value(b, i, u64::MAX)?;
        *slot = Some(n);
        Some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastjson::copy::tests::{
        answer_as_serde, as_serde_also_broken, count, how_many_read, junk, literal, object_of,
        value,
    };
    use crate::translate::anthropic::messages_response_to_chat_serde;
    use proptest::prelude::*;
    use proptest::sample::select;

    const MODEL: &str = "client-\"model\u{e9}";
    const CREATED: u64 = 1_700_000_000;

    /// The fast translation, checked against serde's (bytes and usage); `None` when it did
    /// not read.
    fn fast_as_serde(body: &str) -> Result<Option<String>, String> {
        answer_as_serde(
            body,
            messages_response_to_chat(body.as_bytes(), MODEL, CREATED),
            || messages_response_to_chat_serde(body.as_bytes(), MODEL, CREATED),
        )
    }

    #[test]
    fn the_usual_answer_is_translated_as_serde_does() {
        let body = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello\n\"there\""},{"type":"text","text":" again","citations":null}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":2,"cache_read_input_tokens":3,"output_tokens":7,"service_tier":"standard"}}"#;
        assert_eq!(
            fast_as_serde(body).unwrap().unwrap(),
            r#"{"id":"msg_01","object":"chat.completion","created":1700000000,"model":"client-\"modelé","choices":[{"index":0,"message":{"role":"assistant","content":"Hello\n\"there\" again"},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":15,"completion_tokens":7,"total_tokens":22,"prompt_tokens_details":{"cached_tokens":3}}}"#
        );
        for body in [
            "{}",
            r#" { "content" : [ ] , "stop_reason" : null , "id" : "a\/b" , "x" : [1, {"y": null}] } "#,
            r#"{"content":[{"type":"text","text":"\u00e9"}],"stop_reason":"end_turn","stop_sequence":"END","usage":{"input_tokens":null}}"#,
        ] {
            assert!(fast_as_serde(body).unwrap().is_some(), "{body}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for body in [
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
            r#"{"content":[{"type":"thinking","thinking":"t","signature":"s"}]}"#,
            r#"{"content":[{"type":"tool_use","id":"t","name":"f","input":{}}]}"#,
            r#"{"content":[{"type":"text"}]}"#,
            r#"{"content":null}"#,
            r#"{"usage":null}"#,
            r#"{"id":null}"#,
            r#"{"usage":{"output_tokens":-1}}"#,
            r#"{"usage":{"output_tokens":1.0}}"#,
            r#"{"usage":{"x":1e400}}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"i\u0064":"a"}"#,
            r#"{"stop_reason":"end\u005fturn"} x"#,
        ] {
            assert_eq!(fast_as_serde(body).unwrap(), None, "{body}");
        }
    }

    fn block() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => (literal(), prop::option::weighted(0.2, value())).prop_map(|(text, extra)| {
                let mut m = vec![("type".to_string(), r#""text""#.to_string()), ("text".to_string(), text)];
                if let Some(v) = extra {
                    m.push(("citations".to_string(), v));
                }
                object_of(m)
            }),
            1 => Just(r#"{"type":"thinking","thinking":"t","signature":"s"}"#.to_string()),
            1 => Just(r#"{"type":"tool_use","id":"t","name":"f","input":{"a":1}}"#.to_string()),
        ]
    }

    fn answer() -> impl Strategy<Value = String> {
        let usage = prop::collection::vec(
            (
                select(vec![
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                    "service_tier",
                ]),
                prop_oneof![4 => count(), 1 => value()],
            ),
            0..5,
        )
        .prop_map(|m| object_of(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
        let member = prop_oneof![
            prop_oneof![3 => literal(), 1 => value()].prop_map(|v| ("id".to_string(), v)),
            select(vec![r#""message""#, r#""message""#, r#""error""#, "null"])
                .prop_map(|v| ("type".to_string(), v.to_string())),
            (select(vec!["role", "model"]), literal()).prop_map(|(k, v)| (k.to_string(), v)),
            prop::collection::vec(block(), 0..4)
                .prop_map(|b| ("content".to_string(), format!("[{}]", b.join(",")))),
            (
                select(vec!["stop_reason", "stop_sequence"]),
                select(vec![
                    r#""end_turn""#,
                    r#""max_tokens""#,
                    r#""tool_use""#,
                    r#""refusal""#,
                    r#""model_context_window_exceeded""#,
                    r#""ma\u0078_tokens""#,
                    "null",
                    "1",
                ]),
            )
                .prop_map(|(k, v)| (k.to_string(), v.to_string())),
            usage.prop_map(|u| ("usage".to_string(), u)),
            value().prop_map(|v| ("container".to_string(), v)),
        ];
        prop::collection::vec(member, 0..8).prop_map(object_of)
    }

    #[test]
    fn the_generated_answers_are_often_read() {
        let read = how_many_read(answer(), |body| fast_as_serde(body).unwrap().is_some());
        assert!(read > 400, "{read} of 2000 read");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever the fast path translates, serde translates to the same bytes and usage,
        /// also with a byte inserted anywhere.
        #[test]
        fn the_fast_path_translates_as_serde_does(body in answer(), cut in any::<prop::sample::Index>(), junk in junk()) {
            as_serde_also_broken(&body, cut, junk, fast_as_serde)?;
        }
    }
}
