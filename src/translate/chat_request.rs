//! The usual OpenAI `chat/completions` request translated to an Anthropic `messages`
//! request without serde.
//!
//! The serde translation ([`super::anthropic::chat_request_to_messages`]) parses the
//! request into owned wire types with flattened `rest` maps and writes a new one, though
//! the texts, most of the bytes, go out as they came in. Here one validating walk reads
//! the request an OpenAI client usually sends —
//!
//! * `messages`: `system`, `developer`, `user` and `assistant` messages whose content is
//!   a string, text parts (without `cache_control`) or `null`, with an optional `name`;
//! * `max_completion_tokens`, `max_tokens`, `stop`, `temperature`, `top_p`, `n` up to 1,
//!   `stream`, `stream_options`, `user`, `top_k`, `model`, an empty `tools`,
//!   `parallel_tool_calls`, and members the translation drops (penalties, `seed`,
//!   `logprobs`, unknown members) —
//!
//! and writes the translation as serde would: system and developer texts gathered into
//! `system`, consecutive turns of one role merged, empty texts dropped, each text's JSON
//! literal copied when serde_json writes the text the same. Anything else — tool
//! messages and tool calls, images, `cache_control`, `thinking`, `response_format`,
//! escaped or repeated keys, values of another type, invalid JSON or UTF-8, and a
//! request without a user or assistant turn — answers `None`, and the caller translates
//! with serde as before, errors included. A property test holds the two to the same
//! bytes.

use crate::fastjson::copy::{
    boolean, dropped, float, push_list, push_numbers, push_text_parts, put, string, strings,
    Literal,
};
use crate::fastjson::text::quoted;
use crate::fastjson::walk::{array, null, object, unsigned_value, ws, KnownKeys};

/// What the translation writes, borrowed from the request where it can be.
#[derive(Default)]
struct Messages<'a> {
    system: Vec<Literal<'a>>,
    /// Turns of alternating roles, each with its (non-empty) texts.
    turns: Vec<(&'static str, Vec<Literal<'a>>)>,
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    stop: Option<Vec<Literal<'a>>>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<u64>,
    stream: Option<bool>,
    user: Option<Literal<'a>>,
}

/// The typed members of `ChatCompletionRequest`, and the two the translation reads from
/// its `rest`.
const TOP_KEYS: [&[u8]; 17] = [
    b"model",
    b"messages",
    b"max_tokens",
    b"max_completion_tokens",
    b"stop",
    b"temperature",
    b"top_p",
    b"n",
    b"stream",
    b"stream_options",
    b"tools",
    b"tool_choice",
    b"parallel_tool_calls",
    b"response_format",
    b"user",
    b"top_k",
    b"thinking",
];

/// Typed members of a message: the first three are read, the others left to serde.
const MESSAGE_KEYS: [&[u8]; 5] = [b"role", b"content", b"name", b"tool_calls", b"tool_call_id"];

/// Typed members of a content part: the first three are read (`cache_control` only as
/// `null`), the other left to serde.
const PART_KEYS: [&[u8]; 4] = [b"type", b"text", b"cache_control", b"image_url"];

/// The translation of `body` for `upstream_model`, byte for byte what the serde
/// translation writes, or `None` when the request is not one this reader reads.
pub(crate) fn chat_request_to_messages(
    body: &[u8],
    upstream_model: &str,
    default_max_tokens: u32,
) -> Option<Vec<u8>> {
    // String contents are copied as they are: the whole body must be UTF-8, as serde
    // requires of every string.
    let text = std::str::from_utf8(body).ok()?;
    let request = read(text)?;
    if request.turns.is_empty() {
        return None;
    }
    Some(write(
        &request,
        upstream_model,
        default_max_tokens,
        body.len(),
    ))
}

fn read(text: &str) -> Option<Messages<'_>> {
    let b = text.as_bytes();
    let mut m = Messages::default();
    let mut keys = KnownKeys::new(TOP_KEYS);
    let end = object(b, ws(b, 0), |key, i| {
        let Some(k) = keys.first(key)? else {
            return dropped(text, i);
        };
        if let Some(end) = null(b, i) {
            // `null` reads as absent for every optional member; `messages` is required.
            return (k != 1).then_some(end);
        }
        match k {
            0 => string(text, i).map(|(_, end)| end),
            1 => array(b, i, |i| message(text, i, &mut m)),
            2 | 3 | 7 | 15 => {
                let (n, end) = unsigned_value(b, i, u64::from(u32::MAX))?;
                match k {
                    2 => m.max_tokens = Some(n),
                    3 => m.max_completion_tokens = Some(n),
                    // `n` above 1 is refused by the serde translation.
                    7 => (n <= 1).then_some(())?,
                    _ => m.top_k = Some(n),
                }
                Some(end)
            }
            4 => {
                if b.get(i) == Some(&b'"') {
                    let (s, end) = string(text, i)?;
                    m.stop = Some(vec![s]);
                    return Some(end);
                }
                let (stop, end) = strings(text, i)?;
                m.stop = (!stop.is_empty()).then_some(stop);
                Some(end)
            }
            5 => put(&mut m.temperature, float(text, i)),
            6 => put(&mut m.top_p, float(text, i)),
            8 => put(&mut m.stream, boolean(b, i)),
            9 => {
                let mut options = KnownKeys::new([b"include_usage".as_slice()]);
                object(b, i, |key, i| match options.first(key)? {
                    None => dropped(text, i),
                    Some(_) => null(b, i).or_else(|| boolean(b, i).map(|(_, end)| end)),
                })
            }
            // `tools`: an empty array is dropped; tools are left to serde.
            10 => array(b, i, |_| None),
            // `parallel_tool_calls`: without tools, dropped.
            12 => boolean(b, i).map(|(_, end)| end),
            14 => put(&mut m.user, string(text, i)),
            // `tool_choice`, `response_format`, `thinking`.
            _ => None,
        }
    })?;
    (keys.seen(1) && ws(b, end) == b.len()).then_some(m)
}

/// Reads the message at `i` into `m`'s system texts or turns; the offset after it.
fn message<'a>(text: &'a str, i: usize, m: &mut Messages<'a>) -> Option<usize> {
    let b = text.as_bytes();
    let mut keys = KnownKeys::new(MESSAGE_KEYS);
    let mut role = None;
    let mut texts = Vec::new();
    let end = object(b, i, |key, i| match keys.first(key)? {
        None => dropped(text, i),
        Some(0) => {
            let end = crate::fastjson::scan::skip_short_string(b, i).ok()?;
            role = Some(match b.get(i..end)? {
                b"\"system\"" | b"\"developer\"" => "system",
                b"\"user\"" => "user",
                b"\"assistant\"" => "assistant",
                _ => return None,
            });
            Some(end)
        }
        Some(1) => content(text, i, &mut texts),
        // `name`: dropped.
        Some(2) => null(b, i).or_else(|| string(text, i).map(|(_, end)| end)),
        Some(_) => null(b, i),
    })?;
    // Content is optional (`null` for an assistant message with tool calls).
    let role = role?;
    texts.retain(|t| t != "\"\"");
    if role == "system" {
        m.system.append(&mut texts);
    } else if !texts.is_empty() {
        match m.turns.last_mut() {
            Some((last, turn)) if *last == role => turn.append(&mut texts),
            _ => m.turns.push((role, texts)),
        }
    }
    Some(end)
}

/// A content value (a string, text parts or `null`): pushes its texts.
fn content<'a>(text: &'a str, i: usize, texts: &mut Vec<Literal<'a>>) -> Option<usize> {
    let b = text.as_bytes();
    match b.get(i)? {
        b'"' => {
            let (s, end) = string(text, i)?;
            texts.push(s);
            Some(end)
        }
        b'n' => null(b, i),
        _ => array(b, i, |i| {
            let mut keys = KnownKeys::new(PART_KEYS);
            let mut part_text = None;
            let end = object(b, i, |key, i| match keys.first(key)? {
                None => dropped(text, i),
                Some(0) => {
                    let end = crate::fastjson::scan::skip_short_string(b, i).ok()?;
                    (b.get(i..end)? == b"\"text\"").then_some(end)
                }
                Some(1) => {
                    let (s, end) = string(text, i)?;
                    part_text = Some(s);
                    Some(end)
                }
                Some(2) => null(b, i),
                Some(_) => None,
            })?;
            if !keys.seen(0) {
                return None;
            }
            texts.push(part_text?);
            Some(end)
        }),
    }
}

/// The Anthropic request, member by member in the order serde writes
/// `MessagesRequest`.
fn write(m: &Messages<'_>, model: &str, default_max_tokens: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + model.len() + 96);
    out.extend_from_slice(b"{\"model\":");
    out.extend_from_slice(quoted(model).as_bytes());
    if !m.system.is_empty() {
        out.extend_from_slice(b",\"system\":");
        texts(&mut out, &m.system);
    }
    out.extend_from_slice(b",\"messages\":[");
    for (n, (role, turn)) in m.turns.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"role\":\"");
        out.extend_from_slice(role.as_bytes());
        out.extend_from_slice(b"\",\"content\":");
        texts(&mut out, turn);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"max_tokens\":");
    let max_tokens = m
        .max_completion_tokens
        .or(m.max_tokens)
        .unwrap_or(u64::from(default_max_tokens));
    out.extend_from_slice(max_tokens.to_string().as_bytes());
    if let Some(stop) = &m.stop {
        out.extend_from_slice(b",\"stop_sequences\":");
        push_list(&mut out, stop);
    }
    push_numbers(
        &mut out,
        [("temperature", m.temperature), ("top_p", m.top_p)],
    );
    if let Some(k) = m.top_k {
        out.extend_from_slice(b",\"top_k\":");
        out.extend_from_slice(k.to_string().as_bytes());
    }
    if let Some(stream) = m.stream {
        out.extend_from_slice(if stream {
            b",\"stream\":true".as_slice()
        } else {
            b",\"stream\":false"
        });
    }
    if let Some(user) = &m.user {
        out.extend_from_slice(b",\"metadata\":{\"user_id\":");
        out.extend_from_slice(user.as_bytes());
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// Texts as Anthropic content: one is a plain string, several are text blocks.
fn texts(out: &mut Vec<u8>, texts: &[Literal<'_>]) {
    match texts {
        [only] => out.extend_from_slice(only.as_bytes()),
        _ => push_text_parts(out, texts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastjson::copy::tests::{
        as_serde, as_serde_also_broken, how_many_read, junk, literal, object_of, request_of, value,
    };
    use crate::translate::anthropic::chat_request_to_messages_serde;
    use proptest::prelude::*;
    use proptest::sample::select;

    const MODEL: &str = "up-\"model\u{e9}";

    /// The fast translation, checked against serde's; `None` when it did not read.
    fn fast_as_serde(body: &str) -> Result<Option<String>, String> {
        let fast = chat_request_to_messages(body.as_bytes(), MODEL, 4096);
        as_serde(body, fast, || {
            chat_request_to_messages_serde(body.as_bytes(), MODEL, 4096)
        })
    }

    fn fast(body: &str) -> Option<String> {
        fast_as_serde(body).unwrap()
    }

    #[test]
    fn the_usual_request_is_translated_as_serde_does() {
        let body = r#"{"model":"gpt-x","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi\nthere \"you\" \u001f"},{"role":"assistant","content":"Hello"},{"role":"user","content":"tell me"}],"max_tokens":64,"temperature":0.2,"top_p":1,"stream":true,"stream_options":{"include_usage":true},"user":"u-1","seed":7,"frequency_penalty":0}"#;
        assert_eq!(
            fast(body).unwrap(),
            r#"{"model":"up-\"modelé","system":"You are helpful.","messages":[{"role":"user","content":"Hi\nthere \"you\" \u001f"},{"role":"assistant","content":"Hello"},{"role":"user","content":"tell me"}],"max_tokens":64,"temperature":0.2,"top_p":1.0,"stream":true,"metadata":{"user_id":"u-1"}}"#
        );
    }

    #[test]
    fn merged_turns_parts_escapes_and_dropped_members_as_serde_does() {
        for body in [
            // Escapes serde_json writes differently are written again.
            r#"{"messages":[{"role":"user","content":"a\/b \u00e9 \u001F \ud83d\ude00 \u000a"}]}"#,
            // System and developer texts gathered; turns of one role merged; empty texts
            // and turns dropped; text parts.
            r#"{"messages":[{"role":"developer","content":"d"},{"role":"user","content":"a"},{"role":"system","content":[{"type":"text","text":"s"},{"type":"text","text":""}]},{"role":"user","content":[{"type":"text","text":"b","cache_control":null,"x":1}]},{"role":"assistant","content":""},{"role":"user","content":null,"name":"n"},{"role":"assistant","content":[{"type":"text","text":"c"},{"type":"text","text":"d"}],"tool_calls":null}],"max_completion_tokens":5,"max_tokens":9,"stop":"END","top_k":40,"n":1}"#,
            // Whitespace, nulls, empty arrays.
            " {\n \"model\" : null , \"messages\" : [ { \"role\" : \"user\" , \"content\" : \"x\" } ] , \"stop\" : [ ] , \"tools\" : [ ] , \"tool_choice\" : null , \"parallel_tool_calls\" : false , \"response_format\" : null , \"thinking\" : null , \"top_k\" : null , \"stream\" : false , \"stream_options\" : { \"include_usage\" : null , \"x\" : 1 } , \"temperature\" : -0 , \"logit_bias\" : {\"50256\": -100} }\n",
            r#"{"messages":[{"role":"user","content":"x"}],"stop":["a","\n"],"n":0,"user":null,"max_tokens":null}"#,
        ] {
            assert!(fast(body).is_some(), "{body}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for body in [
            // What serde refuses, with its error.
            r#"{"messages":[]}"#,
            r#"{"messages":[{"role":"system","content":"only a system prompt"}]}"#,
            r#"{"messages":[{"role":"user","content":""}]}"#,
            r#"{"messages":[{"role":"bot","content":"x"}]}"#,
            r#"{"messages":[{"content":"x"}]}"#,
            r#"{"model":"m"}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"temperature":1e400}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"seed":1e400}"#,
            r#"{"messages":[{"role":"user","content":"\ud800"}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"messages":[]}"#,
            r#"{"messages":[{"role":"user","content":"x"}]} x"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
            r#"{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x"}}]},{"role":"user","content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#,
            // What serde translates: tools, images, cache_control, thinking, escaped keys.
            r#"{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#,
            r#"{"messages":[{"role":"tool","tool_call_id":"c","content":"x"}]}"#,
            r#"{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":1024}}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}"#,
            r#"{"mess\u0061ges":[{"role":"user","content":"x"}]}"#,
            r#"{"messages":[{"role":"us\u0065r","content":"x"}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"top_k":4294967296}"#,
        ] {
            assert_eq!(fast(body), None, "{body}");
        }
        assert_eq!(
            chat_request_to_messages(
                b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}",
                "m",
                1
            ),
            None
        );
    }

    fn part() -> impl Strategy<Value = String> {
        let key = select(vec![
            "type",
            "text",
            "cache_control",
            "x",
            "image_url",
            "refusal",
        ]);
        prop_oneof![
            8 => (literal(), prop::option::weighted(0.2, prop_oneof![Just("null".to_string()), value()]))
                .prop_map(|(text, cache)| {
                    let mut m = vec![("type".to_string(), r#""text""#.to_string()), ("text".to_string(), text)];
                    if let Some(v) = cache {
                        m.push(("cache_control".to_string(), v));
                    }
                    object_of(m)
                }),
            1 => prop::collection::vec((key, prop_oneof![literal(), value()]), 0..4)
                .prop_map(|m| object_of(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            1 => Just(r#"{"type":"image_url","image_url":{"url":"https://x"}}"#.to_string()),
        ]
    }

    fn content() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => literal(),
            3 => prop::collection::vec(part(), 0..4).prop_map(|p| format!("[{}]", p.join(","))),
            1 => Just("null".to_string()),
            1 => value(),
        ]
        .boxed()
    }

    fn message() -> impl Strategy<Value = String> {
        // Mostly messages the fast path reads, so that requests of several are read.
        let usual_role = select(vec![
            r#""user""#,
            r#""assistant""#,
            r#""user""#,
            r#""assistant""#,
            r#""system""#,
            r#""developer""#,
        ]);
        let text_parts = prop::collection::vec(literal(), 0..3).prop_map(|texts| {
            let parts: Vec<String> = texts
                .into_iter()
                .map(|t| format!(r#"{{"type":"text","text":{t}}}"#))
                .collect();
            format!("[{}]", parts.join(","))
        });
        let usual_content =
            prop_oneof![4 => literal(), 2 => text_parts, 1 => Just("null".to_string())];
        let usual = (usual_role, usual_content).prop_map(|(role, content)| {
            object_of(vec![
                ("role".to_string(), role.to_string()),
                ("content".to_string(), content),
            ])
        });
        let role = select(vec![
            r#""user""#,
            r#""assistant""#,
            r#""system""#,
            r#""developer""#,
            r#""tool""#,
            r#""us\u0065r""#,
            "null",
        ]);
        let extra = prop::option::of((
            select(vec!["name", "tool_calls", "tool_call_id", "role", "x"]),
            prop_oneof![literal(), value()],
        ));
        let any = (role, prop::option::weighted(0.9, content()), extra).prop_map(
            |(role, content, extra)| {
                let mut m = vec![("role".to_string(), role.to_string())];
                if let Some(c) = content {
                    m.push(("content".to_string(), c));
                }
                if let Some((k, v)) = extra {
                    m.push((k.to_string(), v));
                }
                object_of(m)
            },
        );
        prop_oneof![6 => usual, 1 => any]
    }

    /// A chat request: the usual members with values of the right and wrong types, in any
    /// order, sometimes repeated or unknown.
    fn request() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            Just(("model".to_string(), r#""gpt-x""#.to_string())),
            (
                select(vec!["max_tokens", "max_completion_tokens", "top_k", "n"]),
                select(vec![
                    "64",
                    "0",
                    "1",
                    "64",
                    "1",
                    "null",
                    "4294967295",
                    "2",
                    "4294967296",
                    "-0",
                    "1.5",
                    "\"64\""
                ])
            )
                .prop_map(|(k, v)| (k.to_string(), v.to_string())),
            prop_oneof![
                literal(),
                prop::collection::vec(literal(), 0..3).prop_map(|s| format!("[{}]", s.join(","))),
                Just("null".to_string()),
            ]
            .prop_map(|v| ("stop".to_string(), v)),
            (
                select(vec!["temperature", "top_p"]),
                select(vec![
                    "0.2",
                    "1",
                    "-0",
                    "1e-7",
                    "0.30000000000000004",
                    "0.7",
                    "null",
                    "1e400",
                    "\"x\""
                ])
            )
                .prop_map(|(k, v)| (k.to_string(), v.to_string())),
            select(vec!["true", "false", "true", "null", "1"])
                .prop_map(|v| ("stream".to_string(), v.to_string())),
            select(vec![
                r#"{"include_usage":true}"#,
                "null",
                "{}",
                r#"{"include_usage":false,"x":2}"#,
                r#"{"include_usage":1}"#,
                "true"
            ])
            .prop_map(|v| ("stream_options".to_string(), v.to_string())),
            select(vec![
                "[]",
                "null",
                "[]",
                r#"[{"type":"function","function":{"name":"f"}}]"#
            ])
            .prop_map(|v| ("tools".to_string(), v.to_string())),
            (
                select(vec![
                    "tool_choice",
                    "response_format",
                    "thinking",
                    "parallel_tool_calls"
                ]),
                select(vec![
                    "null",
                    "null",
                    "null",
                    "false",
                    r#""auto""#,
                    r#"{"type":"text"}"#
                ])
            )
                .prop_map(|(k, v)| (k.to_string(), v.to_string())),
            prop_oneof![3 => literal(), 1 => value()].prop_map(|v| ("user".to_string(), v)),
            (select(vec!["seed", "logprobs", "unknown"]), value())
                .prop_map(|(k, v)| (k.to_string(), v)),
        ];
        request_of(message(), 0..5, member, 0..5)
    }

    #[test]
    fn the_generated_requests_are_often_read() {
        let read = how_many_read(request(), |body| fast_as_serde(body).unwrap().is_some());
        assert!(read > 300, "{read} of 2000 read");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever the fast path translates, serde translates to the same bytes, also
        /// with a byte inserted anywhere.
        #[test]
        fn the_fast_path_translates_as_serde_does(body in request(), cut in any::<prop::sample::Index>(), junk in junk()) {
            as_serde_also_broken(&body, cut, junk, fast_as_serde)?;
        }
    }
}
