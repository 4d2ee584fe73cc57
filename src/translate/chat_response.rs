//! The usual OpenAI `chat.completion` answer translated to an Anthropic `message` without
//! serde.
//!
//! The serde translation ([`super::anthropic::chat_response_to_messages`]) parses a view
//! of the answer (`CompletionRead`: the id, every choice's message and finish reason, the
//! usage with flattened `rest` maps) into owned values and writes a new `message` whose
//! text is the answer's. Here one validating walk reads the answer an OpenAI model
//! usually gives — a text (or `null`) content, an optional `reasoning_content` or
//! `refusal`, the finish reason, the usage — and writes the `message` as serde would,
//! copying each text's JSON literal when serde_json writes it the same. Anything else —
//! tool calls, escaped or repeated keys, values of another type, no choice, invalid
//! JSON or UTF-8 — answers `None`, and the caller translates with serde as before,
//! errors included. A property test holds the two to the same bytes and usage.

use super::anthropic::stop_reason_for;
use crate::fastjson::copy::{string, Literal};
use crate::fastjson::text::quoted;
use crate::fastjson::walk::{array, null, object, skip_member, ws, KnownKeys};
use crate::tokens::usage::{chat_usage_at, Usage};

const KEYS: [&[u8]; 3] = [b"id", b"choices", b"usage"];
const CHOICE_KEYS: [&[u8]; 2] = [b"message", b"finish_reason"];
const MESSAGE_KEYS: [&[u8]; 4] = [b"content", b"reasoning_content", b"refusal", b"tool_calls"];

/// What the translation reads of a choice's message: each text as serde_json writes it,
/// `None` for `null` or absent.
#[derive(Default)]
struct Message<'a> {
    content: Option<Literal<'a>>,
    reasoning: Option<Literal<'a>>,
    refusal: Option<Literal<'a>>,
}

/// The first choice as the translation uses it.
struct Choice<'a> {
    message: Message<'a>,
    finish_reason: Option<Literal<'a>>,
}

/// The translation of `body` for the client's model, with its usage, byte for byte what
/// the serde translation writes, or `None` when the answer is not one this reader reads.
pub(crate) fn chat_response_to_messages(
    body: &[u8],
    model_for_client: &str,
) -> Option<(Vec<u8>, Usage)> {
    let text = std::str::from_utf8(body).ok()?;
    let b = text.as_bytes();
    let mut keys = KnownKeys::new(KEYS);
    let mut id = None;
    let mut first: Option<Choice<'_>> = None;
    let mut usage = None;
    let end = object(b, ws(b, 0), |key, i| match keys.first(key)? {
        None => skip_member(b, i),
        Some(0) => {
            let (s, end) = string(text, i)?;
            id = Some(s);
            Some(end)
        }
        // Every choice is read (serde reads them all); the first is translated.
        Some(1) => array(b, i, |i| {
            let (c, end) = choice(text, i)?;
            first.get_or_insert(c);
            Some(end)
        }),
        Some(_) => {
            if let Some(end) = null(b, i) {
                return Some(end);
            }
            let (u, end) = chat_usage_at(text, i)?;
            usage = Some(u);
            Some(end)
        }
    })?;
    if ws(b, end) != b.len() {
        return None;
    }
    // No choice is an error, which serde reports.
    let Choice {
        message,
        finish_reason,
    } = first?;
    let usage = usage.unwrap_or_default();

    let mut out = Vec::with_capacity(body.len() + model_for_client.len() + 200);
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.as_deref().unwrap_or("\"\"").as_bytes());
    out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    out.extend_from_slice(quoted(model_for_client).as_bytes());
    out.extend_from_slice(b",\"content\":[");
    let mut blocks = 0;
    let mut block = |out: &mut Vec<u8>, start: &[u8], text: &str, end: &[u8]| {
        if blocks > 0 {
            out.push(b',');
        }
        blocks += 1;
        out.extend_from_slice(start);
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(end);
    };
    if let Some(r) = text_of(&message.reasoning) {
        block(
            &mut out,
            b"{\"type\":\"thinking\",\"thinking\":",
            r,
            b",\"signature\":\"\"}",
        );
    }
    for t in [&message.content, &message.refusal] {
        if let Some(t) = text_of(t) {
            block(&mut out, b"{\"type\":\"text\",\"text\":", t, b"}");
        }
    }
    let stop_reason = match text_of(&message.refusal) {
        Some(_) => "refusal",
        None => stop_reason_for(finish_reason.as_deref().map_or("", unquoted)),
    };
    out.extend_from_slice(b"],\"stop_reason\":\"");
    out.extend_from_slice(stop_reason.as_bytes());
    out.extend_from_slice(b"\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
    for (n, then) in [
        (
            usage.input.saturating_sub(usage.cached_input),
            b",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":".as_slice(),
        ),
        (usage.cached_input, b",\"output_tokens\":"),
        (usage.output, b"}}"),
    ] {
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(then);
    }
    Some((out, usage))
}

/// The literal of a text that is present and not empty (the translation drops the others).
fn text_of<'a>(text: &'a Option<Literal<'_>>) -> Option<&'a str> {
    text.as_deref().filter(|t| *t != "\"\"")
}

/// The inside of a literal: the text itself for every finish reason the translation
/// maps (none has a character serde_json escapes); any other maps as an unknown one.
fn unquoted(literal: &str) -> &str {
    literal
        .get(1..literal.len().saturating_sub(1))
        .unwrap_or_default()
}

/// A choice (`ChoiceRead`): its message and finish reason, other members skipped as
/// serde skips them.
fn choice(text: &str, i: usize) -> Option<(Choice<'_>, usize)> {
    let b = text.as_bytes();
    let mut keys = KnownKeys::new(CHOICE_KEYS);
    let mut message = Message::default();
    let mut finish_reason = None;
    let end = object(b, i, |key, i| match keys.first(key)? {
        None => skip_member(b, i),
        Some(0) => message_object(text, i, &mut message),
        Some(_) => string_or_null(text, i, &mut finish_reason),
    })?;
    Some((
        Choice {
            message,
            finish_reason,
        },
        end,
    ))
}

/// A choice's `message` (`MessageRead`): texts or `null`, no tool calls (`null` or `[]`).
fn message_object<'a>(text: &'a str, i: usize, message: &mut Message<'a>) -> Option<usize> {
    let b = text.as_bytes();
    let mut keys = KnownKeys::new(MESSAGE_KEYS);
    object(b, i, |key, i| match keys.first(key)? {
        None => skip_member(b, i),
        Some(0) => string_or_null(text, i, &mut message.content),
        Some(1) => string_or_null(text, i, &mut message.reasoning),
        Some(2) => string_or_null(text, i, &mut message.refusal),
        Some(_) => null(b, i).or_else(|| array(b, i, |_| None)),
    })
}

/// An `Option<String>` member: `null` leaves `slot` empty.
fn string_or_null<'a>(text: &'a str, i: usize, slot: &mut Option<Literal<'a>>) -> Option<usize> {
    if let Some(end) = null(text.as_bytes(), i) {
        return Some(end);
    }
    let (s, end) = string(text, i)?;
    *slot = Some(s);
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastjson::copy::tests::{
        answer_as_serde, as_serde_also_broken, count, how_many_read, junk, literal, object_of,
        value,
    };
    use crate::translate::anthropic::chat_response_to_messages_serde;
    use proptest::prelude::*;
    use proptest::sample::select;

    const MODEL: &str = "client-\"model\u{e9}";

    /// The fast translation, checked against serde's (bytes and usage); `None` when it did
    /// not read.
    fn fast_as_serde(body: &str) -> Result<Option<String>, String> {
        answer_as_serde(
            body,
            chat_response_to_messages(body.as_bytes(), MODEL),
            || chat_response_to_messages_serde(body.as_bytes(), MODEL),
        )
    }

    #[test]
    fn the_usual_answer_is_translated_as_serde_does() {
        let body = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1767225600,"model":"gpt-x","system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant","content":"Hello\n\"there\"","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0}},"service_tier":"default"}"#;
        assert_eq!(
            fast_as_serde(body).unwrap().unwrap(),
            r#"{"id":"chatcmpl-1","type":"message","role":"assistant","model":"client-\"modelé","content":[{"type":"text","text":"Hello\n\"there\""}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":8,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":5}}"#
        );
        let refused = r#"{"id":"c","choices":[{"message":{"content":null,"reasoning_content":"think \u00e9","refusal":"no"},"finish_reason":"stop"}]}"#;
        assert_eq!(
            fast_as_serde(refused).unwrap().unwrap(),
            r#"{"id":"c","type":"message","role":"assistant","model":"client-\"modelé","content":[{"type":"thinking","thinking":"think é","signature":""},{"type":"text","text":"no"}],"stop_reason":"refusal","stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}"#
        );
        for body in [
            r#"{"choices":[{}]}"#,
            r#" { "choices" : [ { "message" : { "content" : "" , "tool_calls" : [ ] } } ] , "id" : "a\/b" , "x" : [1, {"y": null}] } "#,
            r#"{"choices":[{"message":{"tool_calls":null},"finish_reason":"to\u006fl_calls"}],"usage":null}"#,
            r#"{"choices":[{"finish_reason":"content_filter"},{"message":{"content":"second"}}],"usage":{"total_tokens":9,"prompt_tokens":4}}"#,
        ] {
            assert!(fast_as_serde(body).unwrap().is_some(), "{body}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for body in [
            r#"{"choices":[]}"#,
            r#"{"id":"x"}"#,
            r#"{"choices":null}"#,
            r#"{"choices":[{"message":null}]}"#,
            r#"{"choices":[{"message":{"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"message":{"content":1}}]}"#,
            r#"{"choices":[{"finish_reason":1}]}"#,
            r#"{"choices":[{}],"id":null}"#,
            r#"{"choices":[{}],"usage":{"prompt_tokens":-1}}"#,
            r#"{"choices":[{}],"usage":{"input_tokens":1}}"#,
            r#"{"choices":[{}],"id":"a","id":"b"}"#,
            r#"{"ch\u006fices":[{}]}"#,
            r#"{"choices":[{}]} x"#,
            "[]",
        ] {
            assert_eq!(fast_as_serde(body).unwrap(), None, "{body}");
        }
    }

    fn usage() -> impl Strategy<Value = String> {
        let details = prop::collection::vec(
            (
                select(vec!["cached_tokens", "reasoning_tokens", "audio_tokens"]),
                prop_oneof![4 => count(), 1 => value()],
            ),
            0..3,
        )
        .prop_map(|m| object_of(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
        let member = prop_oneof![
            3 => (
                select(vec![
                    "prompt_tokens",
                    "completion_tokens",
                    "total_tokens",
                    "input_tokens",
                    "cost",
                ]),
                prop_oneof![4 => count(), 1 => value()],
            )
                .prop_map(|(k, v)| (k.to_string(), v)),
            1 => (
                select(vec!["prompt_tokens_details", "completion_tokens_details"]),
                prop_oneof![4 => details, 1 => value()],
            )
                .prop_map(|(k, v)| (k.to_string(), v)),
        ];
        prop_oneof![
            12 => prop::collection::vec(member, 0..5).prop_map(object_of),
            1 => value(),
        ]
    }

    fn text_or_not() -> impl Strategy<Value = String> {
        prop_oneof![8 => literal(), 2 => Just("null".to_string()), 1 => value()]
    }

    fn message() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            4 => text_or_not().prop_map(|v| ("content".to_string(), v)),
            1 => text_or_not().prop_map(|v| ("reasoning_content".to_string(), v)),
            1 => text_or_not().prop_map(|v| ("refusal".to_string(), v)),
            1 => select(vec![
                "null",
                "[]",
                r#"[{"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]"#,
                "{}",
            ])
            .prop_map(|v| ("tool_calls".to_string(), v.to_string())),
            1 => select(vec![r#""assistant""#, "1"]).prop_map(|v| ("role".to_string(), v.to_string())),
            1 => value().prop_map(|v| ("annotations".to_string(), v)),
        ];
        prop_oneof![
            16 => prop::collection::vec(member, 0..5).prop_map(object_of),
            1 => value(),
        ]
    }

    fn choice() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            4 => message().prop_map(|v| ("message".to_string(), v)),
            2 => select(vec![
                r#""stop""#,
                r#""length""#,
                r#""tool_calls""#,
                r#""content_filter""#,
                r#""function_call""#,
                r#""len\u0067th""#,
                "null",
                "1",
            ])
            .prop_map(|v| ("finish_reason".to_string(), v.to_string())),
            1 => value().prop_map(|v| ("logprobs".to_string(), v)),
            1 => Just(("index".to_string(), "0".to_string())),
        ];
        prop_oneof![
            16 => prop::collection::vec(member, 0..4).prop_map(object_of),
            1 => value(),
        ]
    }

    fn answer() -> impl Strategy<Value = String> {
        let choices = prop_oneof![
            12 => prop::collection::vec(choice(), 1..3),
            1 => prop::collection::vec(choice(), 0..1),
        ]
        .prop_map(|c| format!("[{}]", c.join(",")));
        let member = prop_oneof![
            2 => prop_oneof![6 => literal(), 1 => value()].prop_map(|v| ("id".to_string(), v)),
            1 => choices.clone().prop_map(|c| ("choices".to_string(), c)),
            3 => usage().prop_map(|u| ("usage".to_string(), u)),
            2 => (select(vec!["object", "model", "system_fingerprint", "created"]), value())
                .prop_map(|(k, v)| (k.to_string(), v)),
        ];
        (
            prop_oneof![12 => choices, 1 => value()],
            prop::collection::vec(member, 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(choices, mut members, at)| {
                members.insert(
                    at.index(members.len() + 1),
                    ("choices".to_string(), choices),
                );
                object_of(members)
            })
    }

    #[test]
    fn the_generated_answers_are_often_read() {
        let read = how_many_read(answer(), |body| fast_as_serde(body).unwrap().is_some());
        assert!(read > 300, "{read} of 2000 read");
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
