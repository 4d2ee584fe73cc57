//! The usual Anthropic `messages` request translated to an OpenAI `chat/completions`
//! request without serde.
//!
//! The serde translation ([`super::anthropic::messages_request_to_chat_with`]) parses the
//! request into owned wire types with flattened `rest` maps and writes a new one: for a
//! 4 KB request most of the translation's cost, almost all of it spent on text that goes
//! out as it came in. Here one validating walk reads the request clients usually send —
//!
//! * `system`: a string, or text blocks;
//! * `messages`: `user` and `assistant` turns whose content is a string or text blocks;
//! * `max_tokens`, `stop_sequences`, `temperature`, `top_p`, `top_k`, `stream`,
//!   `metadata.user_id`, `thinking`, `model`, an empty `tools`, and members the
//!   translation drops (a block's `cache_control`, unknown members) —
//!
//! and writes the translation as serde would, copying each text's JSON literal when it
//! is written as serde_json writes the text (every text without escapes is). Anything
//! else — tools, images, tool results, thinking blocks, escaped or repeated keys, values
//! of another type, invalid JSON or UTF-8 — answers `None`, and the caller translates
//! with serde as before, errors included. A property test holds the two to the same
//! bytes.

use super::anthropic::MaxTokensField;
use crate::fastjson::copy::{
    boolean, dropped, float, joined, push_list, push_numbers, push_text_parts, put, string,
    strings, Literal,
};
use crate::fastjson::text::quoted;
use crate::fastjson::walk::{array, null, object, unsigned_value, ws, KnownKeys};

/// A translated message's content: one text, or several text parts.
enum Content<'a> {
    Text(Literal<'a>),
    Parts(Vec<Literal<'a>>),
}

/// What the translation writes, borrowed from the request where it can be.
#[derive(Default)]
struct Chat<'a> {
    system: Option<Content<'a>>,
    /// Role and content of each message written (a user turn without blocks has none).
    messages: Vec<(&'static str, Content<'a>)>,
    max_tokens: Option<u64>,
    stop: Vec<Literal<'a>>,
    /// As the serde types read them.
    temperature: Option<f64>,
    top_p: Option<f64>,
    stream: Option<bool>,
    user: Option<Literal<'a>>,
}

const TOP_KEYS: [&[u8]; 13] = [
    b"model",
    b"system",
    b"messages",
    b"max_tokens",
    b"stop_sequences",
    b"temperature",
    b"top_p",
    b"top_k",
    b"stream",
    b"tools",
    b"tool_choice",
    b"metadata",
    b"thinking",
];

/// Typed members of a content block: the first three are read, any other one is left
/// to serde.
const BLOCK_KEYS: [&[u8]; 12] = [
    b"type",
    b"text",
    b"cache_control",
    b"source",
    b"id",
    b"name",
    b"input",
    b"tool_use_id",
    b"content",
    b"is_error",
    b"thinking",
    b"signature",
];

/// The translation of `body` for `upstream_model`, byte for byte what the serde
/// translation writes, or `None` when the request is not one this reader reads.
pub(crate) fn messages_request_to_chat(
    body: &[u8],
    upstream_model: &str,
    max_tokens_field: MaxTokensField,
) -> Option<Vec<u8>> {
    // String contents are copied as they are: the whole body must be UTF-8, as serde
    // requires of every string.
    let text = std::str::from_utf8(body).ok()?;
    let chat = read(text)?;
    Some(write(&chat, upstream_model, max_tokens_field, body.len()))
}

fn read(text: &str) -> Option<Chat<'_>> {
    let b = text.as_bytes();
    let mut chat = Chat::default();
    let mut keys = KnownKeys::new(TOP_KEYS);
    let mut has_messages = false;
    let end = object(b, ws(b, 0), |key, i| {
        let Some(k) = keys.first(key)? else {
            return dropped(text, i);
        };
        if let Some(end) = null(b, i) {
            // `null` reads as absent for every optional member; `messages` is required.
            return (k != 2).then_some(end);
        }
        match k {
            0 => string(text, i).map(|(_, end)| end),
            1 => {
                let (system, end) = content(text, i)?;
                chat.system = match system {
                    // An empty system string adds no message.
                    Content::Text(s) if s == "\"\"" => None,
                    Content::Parts(p) => parts(p),
                    text => Some(text),
                };
                Some(end)
            }
            2 => {
                has_messages = true;
                array(b, i, |i| {
                    let (message, end) = message(text, i)?;
                    chat.messages.extend(message);
                    Some(end)
                })
            }
            3 | 7 => {
                let (n, end) = unsigned_value(b, i, u64::from(u32::MAX))?;
                if k == 3 {
                    chat.max_tokens = Some(n);
                }
                Some(end)
            }
            4 => {
                let (stop, end) = strings(text, i)?;
                chat.stop = stop;
                Some(end)
            }
            5 => put(&mut chat.temperature, float(text, i)),
            6 => put(&mut chat.top_p, float(text, i)),
            8 => put(&mut chat.stream, boolean(b, i)),
            // `tools`: an empty array is dropped; tools are left to serde.
            9 => array(b, i, |_| None),
            11 => {
                let mut meta = KnownKeys::new([b"user_id".as_slice()]);
                object(b, i, |key, i| {
                    if meta.first(key)?.is_none() {
                        return dropped(text, i);
                    }
                    if let Some(end) = null(b, i) {
                        return Some(end);
                    }
                    put(&mut chat.user, string(text, i))
                })
            }
            // `thinking` has no OpenAI equivalent: dropped, after it is read.
            12 => dropped(text, i),
            // `tool_choice` (only meaningful with tools).
            _ => None,
        }
    })?;
    (has_messages && ws(b, end) == b.len()).then_some(chat)
}

/// One message: its role and what it translates to (`None` for a user turn with no
/// blocks, which adds no message).
fn message(text: &str, i: usize) -> Option<(Option<(&'static str, Content<'_>)>, usize)> {
    let b = text.as_bytes();
    let mut keys = KnownKeys::new([b"role".as_slice(), b"content"]);
    let mut role = None;
    let mut body = None;
    let end = object(b, i, |key, i| match keys.first(key)? {
        None => dropped(text, i),
        Some(0) => {
            let end = crate::fastjson::scan::skip_short_string(b, i).ok()?;
            role = Some(match b.get(i..end)? {
                b"\"user\"" => "user",
                b"\"assistant\"" => "assistant",
                _ => return None,
            });
            Some(end)
        }
        Some(_) => {
            let (c, end) = content(text, i)?;
            body = Some(c);
            Some(end)
        }
    })?;
    let (role, content) = (role?, body?);
    let content = match (role, content) {
        ("user", Content::Parts(p)) => parts(p),
        // An assistant's text blocks are joined into one text (there are no tool calls
        // here), an empty one when it has none.
        (_, Content::Parts(p)) => Some(Content::Text(joined(p))),
        (_, text) => Some(text),
    };
    Some((content.map(|c| (role, c)), end))
}

/// A content value: a string, or an array of text blocks (their texts, unjoined).
fn content(text: &str, i: usize) -> Option<(Content<'_>, usize)> {
    let b = text.as_bytes();
    if b.get(i) == Some(&b'"') {
        let (s, end) = string(text, i)?;
        return Some((Content::Text(s), end));
    }
    let mut texts = Vec::new();
    let end = array(b, i, |i| {
        let (t, end) = text_block(text, i)?;
        texts.push(t);
        Some(end)
    })?;
    Some((Content::Parts(texts), end))
}

/// A `{"type": "text", "text": …}` block's text.
pub(super) fn text_block(text: &str, i: usize) -> Option<(Literal<'_>, usize)> {
    let b = text.as_bytes();
    let mut keys = KnownKeys::new(BLOCK_KEYS);
    let mut block_text = None;
    let end = object(b, i, |key, i| match keys.first(key)? {
        None | Some(2) => dropped(text, i),
        Some(0) => {
            let end = crate::fastjson::scan::skip_short_string(b, i).ok()?;
            (b.get(i..end)? == b"\"text\"").then_some(end)
        }
        Some(1) => {
            let (s, end) = string(text, i)?;
            block_text = Some(s);
            Some(end)
        }
        Some(_) => None,
    })?;
    if !keys.seen(0) {
        return None;
    }
    Some((block_text?, end))
}

/// Text parts as the translation writes them: none is no content, one a plain text.
fn parts(mut texts: Vec<Literal<'_>>) -> Option<Content<'_>> {
    match texts.len() {
        0 => None,
        1 => texts.pop().map(Content::Text),
        _ => Some(Content::Parts(texts)),
    }
}

/// The chat request, member by member in the order serde writes
/// `ChatCompletionRequest`.
fn write(chat: &Chat<'_>, model: &str, field: MaxTokensField, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + model.len() + 96);
    out.extend_from_slice(b"{\"model\":");
    out.extend_from_slice(quoted(model).as_bytes());
    out.extend_from_slice(b",\"messages\":[");
    let system = chat.system.as_ref().map(|c| ("system", c));
    let messages = chat.messages.iter().map(|(role, c)| (*role, c));
    for (n, (role, content)) in system.into_iter().chain(messages).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"role\":\"");
        out.extend_from_slice(role.as_bytes());
        out.extend_from_slice(b"\",\"content\":");
        match content {
            Content::Text(t) => out.extend_from_slice(t.as_bytes()),
            Content::Parts(parts) => push_text_parts(&mut out, parts),
        }
        out.push(b'}');
    }
    out.push(b']');
    if let Some(n) = chat.max_tokens {
        out.extend_from_slice(match field {
            MaxTokensField::MaxTokens => b",\"max_tokens\":".as_slice(),
            MaxTokensField::MaxCompletionTokens => b",\"max_completion_tokens\":",
        });
        out.extend_from_slice(n.to_string().as_bytes());
    }
    if !chat.stop.is_empty() {
        out.extend_from_slice(b",\"stop\":");
        push_list(&mut out, &chat.stop);
    }
    push_numbers(
        &mut out,
        [("temperature", chat.temperature), ("top_p", chat.top_p)],
    );
    if let Some(stream) = chat.stream {
        out.extend_from_slice(if stream {
            b",\"stream\":true,\"stream_options\":{\"include_usage\":true}".as_slice()
        } else {
            b",\"stream\":false"
        });
    }
    if let Some(user) = &chat.user {
        out.extend_from_slice(b",\"user\":");
        out.extend_from_slice(user.as_bytes());
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastjson::copy::tests::{
        as_serde, as_serde_also_broken, how_many_read, junk, literal, object_of, request_of, value,
    };
    use crate::translate::anthropic::messages_request_to_chat_serde;
    use proptest::prelude::*;
    use proptest::sample::select;

    const FIELDS: [MaxTokensField; 2] = [
        MaxTokensField::MaxCompletionTokens,
        MaxTokensField::MaxTokens,
    ];

    /// The fast translation, checked against serde's; `None` when it did not read.
    fn fast_as_serde(body: &str, field: MaxTokensField) -> Result<Option<String>, String> {
        let model = "up-\"model\u{e9}";
        let fast = messages_request_to_chat(body.as_bytes(), model, field);
        as_serde(body, fast, || {
            messages_request_to_chat_serde(body.as_bytes(), model, field)
        })
    }

    fn fast(body: &str) -> Option<String> {
        fast_as_serde(body, MaxTokensField::MaxCompletionTokens).unwrap()
    }

    #[test]
    fn the_usual_request_is_translated_as_serde_does() {
        let body = r#"{"model":"claude-x","max_tokens":64,"system":"You are helpful.","messages":[{"role":"user","content":"Hi\nthere \"you\" \u001f"},{"role":"assistant","content":"Hello"},{"role":"user","content":"tell me"}],"temperature":0.2,"top_p":1,"stream":true,"metadata":{"user_id":"u-1"}}"#;
        assert_eq!(
            fast(body).unwrap(),
            r#"{"model":"up-\"modelé","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hi\nthere \"you\" \u001f"},{"role":"assistant","content":"Hello"},{"role":"user","content":"tell me"}],"max_completion_tokens":64,"temperature":0.2,"top_p":1.0,"stream":true,"stream_options":{"include_usage":true},"user":"u-1"}"#
        );
        let out = fast_as_serde(body, MaxTokensField::MaxTokens)
            .unwrap()
            .unwrap();
        assert!(out.contains(r#""max_tokens":64"#), "{out}");
    }

    #[test]
    fn text_blocks_escapes_and_dropped_members_as_serde_does() {
        for body in [
            // Escapes serde_json writes differently are written again.
            r#"{"messages":[{"role":"user","content":"a\/b \u00e9 \u001F \ud83d\ude00 \u000a"}],"max_tokens":1}"#,
            // Text blocks: one is a plain text, several are parts; an assistant's are joined.
            r#"{"system":[{"type":"text","text":"s1","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b\n","x":[1,2]}]},{"role":"assistant","content":[{"type":"text","text":"c\n"},{"type":"text","text":"d\/"}]},{"role":"assistant","content":[]},{"role":"user","content":[]}]}"#,
            r#"{"system":[{"type":"text","text":"s1"},{"type":"text","text":"s2"}],"system2":1,"messages":[]}"#,
            // Empty and absent members, nulls, whitespace, members dropped.
            " {\n \"system\" : \"\" , \"messages\" : [ { \"role\" : \"user\" , \"content\" : \"\" , \"extra\" : null } ] , \"stop_sequences\" : [ ] , \"tools\" : [ ] , \"tool_choice\" : null , \"top_k\" : 5 , \"thinking\" : {\"type\":\"enabled\",\"budget_tokens\":1024} , \"metadata\" : { \"user_id\" : null , \"other\" : true } , \"stream\" : false , \"temperature\" : -0 , \"unknown\" : [\"x\", {\"y\": 1.5e3}] }\n",
            r#"{"model":null,"system":null,"messages":[{"role":"user","content":"x"}],"max_tokens":null,"stop_sequences":["END","\n\n"],"temperature":null,"top_p":null,"top_k":null,"stream":null,"tools":null,"metadata":null,"thinking":null}"#,
        ] {
            assert!(fast(body).is_some(), "{body}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for body in [
            // What serde refuses, with its error.
            r#"{"messages":[{"role":"system","content":"x"}]}"#,
            r#"{"max_tokens":1}"#,
            r#"{"messages":null}"#,
            r#"{"messages":[],"max_tokens":-1}"#,
            r#"{"messages":[],"max_tokens":4294967296}"#,
            r#"{"messages":[],"temperature":1e400}"#,
            r#"{"messages":[],"x":1e400}"#,
            r#"{"messages":[],"x":"\ud800"}"#,
            r#"{"messages":[{"role":"user","content":"\ud800"}]}"#,
            r#"{"messages":[],"messages":[]}"#,
            r#"{"messages":[]} x"#,
            r#"{"messages":[{"role":"user","content":"a"}],}"#,
            "{\"messages\":[{\"role\":\"user\",\"content\":\"\u{1}\"}]}",
            // What serde translates: tools, other blocks, escaped keys, other spellings.
            r#"{"messages":[],"tools":[{"name":"t","input_schema":{}}]}"#,
            r#"{"messages":[],"tool_choice":{"type":"auto"}}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text","text":"a","id":"x"}]}]}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#,
            r#"{"messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"t"}]}]}"#,
            r#"{"mess\u0061ges":[]}"#,
            r#"{"messages":[{"role":"us\u0065r","content":"x"}]}"#,
            r#"{"messages":[],"max_tokens":-0}"#,
            r#"{"messages":[],"max_tokens":1.0}"#,
            r#"{"messages":[],"stream":"yes"}"#,
        ] {
            assert_eq!(fast(body), None, "{body}");
        }
        assert_eq!(
            messages_request_to_chat(
                b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}",
                "m",
                FIELDS[0]
            ),
            None
        );
    }

    fn block() -> impl Strategy<Value = String> {
        let key = select(vec!["type", "text", "cache_control", "x", "id", "source"]);
        prop_oneof![
            8 => (literal(), prop::option::of(value())).prop_map(|(text, extra)| {
                let mut m = vec![("type".to_string(), r#""text""#.to_string()), ("text".to_string(), text)];
                if let Some(v) = extra {
                    m.push(("cache_control".to_string(), v));
                }
                object_of(m)
            }),
            1 => prop::collection::vec((key, prop_oneof![literal(), value()]), 0..4)
                .prop_map(|m| object_of(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            1 => Just(r#"{"type":"thinking","thinking":"t","signature":"s"}"#.to_string()),
        ]
    }

    fn content() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => literal(),
            4 => prop::collection::vec(block(), 0..4).prop_map(|b| format!("[{}]", b.join(","))),
            1 => value(),
        ]
    }

    fn message() -> impl Strategy<Value = String> {
        let role = select(vec![
            r#""user""#,
            r#""assistant""#,
            r#""user""#,
            r#""assistant""#,
            r#""user""#,
            r#""assistant""#,
            r#""system""#,
            r#""us\u0065r""#,
            "null",
        ]);
        (
            role,
            content(),
            prop::option::weighted(0.2, ("role|content|x", value())),
        )
            .prop_map(|(role, content, extra)| {
                let mut m = vec![
                    ("role".to_string(), role.to_string()),
                    ("content".to_string(), content),
                ];
                if let Some((k, v)) = extra {
                    m.push((k, v));
                }
                object_of(m)
            })
    }

    /// A messages request: the usual members with values of the right and wrong types,
    /// in any order, sometimes repeated or unknown.
    fn request() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            Just(("model".to_string(), r#""claude-x""#.to_string())),
            prop_oneof![
                literal(),
                prop::collection::vec(block(), 0..3).prop_map(|b| format!("[{}]", b.join(",")))
            ]
            .prop_map(|v| ("system".to_string(), v)),
            select(vec![
                "64",
                "0",
                "4294967295",
                "4294967296",
                "-0",
                "1.5",
                "null",
                "\"64\""
            ])
            .prop_map(|v| ("max_tokens".to_string(), v.to_string())),
            prop::collection::vec(literal(), 0..3)
                .prop_map(|s| ("stop_sequences".to_string(), format!("[{}]", s.join(",")))),
            (
                select(vec!["temperature", "top_p"]),
                select(vec![
                    "0.2",
                    "1",
                    "-0",
                    "1e-7",
                    "0.30000000000000004",
                    "1e400",
                    "null",
                    "\"x\""
                ])
            )
                .prop_map(|(k, v)| (k.to_string(), v.to_string())),
            select(vec!["5", "null", "-1"]).prop_map(|v| ("top_k".to_string(), v.to_string())),
            select(vec!["true", "false", "null", "1"])
                .prop_map(|v| ("stream".to_string(), v.to_string())),
            select(vec!["[]", "null", r#"[{"name":"t","input_schema":{}}]"#])
                .prop_map(|v| ("tools".to_string(), v.to_string())),
            select(vec!["null", r#"{"type":"auto"}"#])
                .prop_map(|v| ("tool_choice".to_string(), v.to_string())),
            prop_oneof![literal(), value()].prop_map(|v| (
                "metadata".to_string(),
                format!(r#"{{"user_id":{v},"other":1}}"#)
            )),
            value().prop_map(|v| ("thinking".to_string(), v)),
            value().prop_map(|v| ("unknown".to_string(), v)),
        ];
        request_of(message(), 0..4, member, 0..7)
    }

    #[test]
    fn the_generated_requests_are_often_read() {
        let read = how_many_read(request(), |body| {
            fast_as_serde(body, FIELDS[0]).unwrap().is_some()
        });
        assert!(read > 250, "{read} of 2000 read");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Whatever the fast path translates, serde translates to the same bytes, also
        /// with a byte inserted anywhere.
        #[test]
        fn the_fast_path_translates_as_serde_does(body in request(), cut in any::<prop::sample::Index>(), junk in junk(), field in select(FIELDS.to_vec())) {
            as_serde_also_broken(&body, cut, junk, |b| fast_as_serde(b, field))?;
        }
    }
}
