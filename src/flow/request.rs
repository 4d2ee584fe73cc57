//! Reading and rewriting client request bodies without building a JSON tree.
//!
//! The body is validated in one pass by `json_scan` (which checks the syntax of every
//! member and skips long strings 128 bytes at a time); only the members the gateway
//! needs are parsed, by serde, and the byte span of `model` is known. Rewriting the
//! model splices the new string into that span, so a 1 MB body costs one copy and no
//! re-serialisation — and no copy at all when the upstream name equals the requested one.

use crate::api::errors::GatewayError;
use crate::fastjson::scan;
use crate::host::BodyEdit;
use serde::Deserialize;
use std::ops::Range;

#[derive(Deserialize)]
struct StreamOptionsView {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// What the gateway knows about one request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub model: String,
    /// Byte span of the `model` value (including its quotes) in the body.
    pub model_span: Range<usize>,
    pub stream: bool,
    /// `max_tokens`, `max_completion_tokens` or `max_output_tokens`, whichever is set.
    pub max_output_tokens: Option<u64>,
    /// Byte span of the `stream_options` value, when the member is present.
    pub stream_options_span: Option<Range<usize>>,
    /// `stream_options.include_usage` as the client sent it.
    pub include_usage: bool,
    /// Offset just after the body's opening `{` (where members can be inserted).
    pub insert_at: usize,
}

/// Byte spans of the top-level members the gateway reads.
#[derive(Default)]
struct Members {
    model: Option<Range<usize>>,
    stream: Option<Range<usize>>,
    max_tokens: Option<Range<usize>>,
    max_completion_tokens: Option<Range<usize>>,
    max_output_tokens: Option<Range<usize>>,
    stream_options: Option<Range<usize>>,
}

/// Parses a request body. Errors are client errors (400) in OpenAI format.
///
/// The whole body is validated by `json_scan` (fast on the long strings that make up
/// most of a prompt); only the few members the gateway reads are parsed by serde.
pub fn inspect(body: &[u8]) -> Result<RequestInfo, GatewayError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(GatewayError::invalid_json("the body must be a JSON object"));
    }
    let mut m = Members::default();
    let walk = scan::object_members(body, |member| {
        let (slot, name) = match member.key.as_ref() {
            "model" => (&mut m.model, "model"),
            "stream" => (&mut m.stream, "stream"),
            "max_tokens" => (&mut m.max_tokens, "max_tokens"),
            "max_completion_tokens" => (&mut m.max_completion_tokens, "max_completion_tokens"),
            "max_output_tokens" => (&mut m.max_output_tokens, "max_output_tokens"),
            "stream_options" => (&mut m.stream_options, "stream_options"),
            _ => return Ok(()),
        };
        if slot.is_some() {
            return Err(Walk::Duplicate(name));
        }
        *slot = Some(member.value);
        Ok(())
    });
    let insert_at = match walk {
        Ok(at) => at,
        Err(Walk::Syntax(e)) => return Err(GatewayError::invalid_json(&e.describe(body))),
        Err(Walk::Duplicate(name)) => {
            return Err(
                GatewayError::invalid_json(&format!("duplicate field `{name}`")).with_param(name),
            )
        }
    };
    let model_span = m.model.ok_or_else(GatewayError::missing_model)?;
    let model: String = match serde_json::from_slice::<String>(slice(body, &model_span)) {
        Ok(model) if !model.is_empty() => model,
        _ => return Err(GatewayError::missing_model()),
    };
    let stream = member::<bool>(body, &m.stream, "stream")?.unwrap_or(false);
    let max_output_tokens = member::<u64>(body, &m.max_completion_tokens, "max_completion_tokens")?
        .or(member::<u64>(body, &m.max_tokens, "max_tokens")?)
        .or(member::<u64>(
            body,
            &m.max_output_tokens,
            "max_output_tokens",
        )?);
    let include_usage = match &m.stream_options {
        None => false,
        Some(span) => {
            let raw = slice(body, span);
            if raw == b"null" {
                false
            } else {
                serde_json::from_slice::<StreamOptionsView>(raw)
                    .map_err(|e| {
                        GatewayError::invalid_json(&format!(
                            "stream_options: {}",
                            without_position(&e)
                        ))
                        .with_param("stream_options")
                    })?
                    .include_usage
                    .unwrap_or(false)
            }
        }
    };
    Ok(RequestInfo {
        model,
        model_span,
        stream_options_span: m.stream_options,
        include_usage,
        insert_at,
        stream,
        max_output_tokens,
    })
}

/// Why the member walk stopped.
enum Walk {
    Syntax(scan::SyntaxError),
    Duplicate(&'static str),
}

impl From<scan::SyntaxError> for Walk {
    fn from(e: scan::SyntaxError) -> Self {
        Walk::Syntax(e)
    }
}

fn slice<'a>(body: &'a [u8], span: &Range<usize>) -> &'a [u8] {
    body.get(span.clone()).unwrap_or_default()
}

/// A scalar member (`null` reads as absent), or a 400 naming it.
fn member<T: serde::de::DeserializeOwned>(
    body: &[u8],
    span: &Option<Range<usize>>,
    name: &str,
) -> Result<Option<T>, GatewayError> {
    let Some(span) = span else {
        return Ok(None);
    };
    serde_json::from_slice::<Option<T>>(slice(body, span)).map_err(|e| {
        GatewayError::invalid_json(&format!("{name}: {}", without_position(&e))).with_param(name)
    })
}

/// serde's message without its `at line 1 column N`, which would point into the member
/// rather than the body.
fn without_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(at) => msg.get(..at).unwrap_or(&msg).to_string(),
        None => msg,
    }
}

/// Changes to make to a request body.
#[derive(Debug, Default)]
pub struct Rewrite<'a> {
    /// New value of `model`.
    pub model: Option<&'a str>,
    /// Make sure `stream_options.include_usage` is true.
    pub include_usage: bool,
}

/// The edit that applies `rw`; `None` when nothing changes (the body is sent as it is).
pub fn rewrite(body: &[u8], info: &RequestInfo, rw: &Rewrite<'_>) -> Option<BodyEdit> {
    let mut splices: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(2);
    if let Some(m) = rw.model {
        if m != info.model {
            let quoted = serde_json::to_vec(m).unwrap_or_else(|_| b"\"\"".to_vec());
            splices.push((info.model_span.clone(), quoted));
        }
    }
    if rw.include_usage && !info.include_usage {
        match &info.stream_options_span {
            None => splices.push((
                info.insert_at..info.insert_at,
                br#""stream_options":{"include_usage":true},"#.to_vec(),
            )),
            Some(span) => {
                let raw = body.get(span.clone()).unwrap_or(b"null");
                let mut opts: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(raw).unwrap_or_default();
                opts.insert("include_usage".into(), serde_json::Value::Bool(true));
                let value = serde_json::to_vec(&opts).unwrap_or_default();
                splices.push((span.clone(), value));
            }
        }
    }
    if splices.is_empty() {
        return None;
    }
    splices.sort_by_key(|(r, _)| r.start);
    let first = splices.first().map_or(0, |(r, _)| r.start);
    let last = splices.iter().map(|(r, _)| r.end).max().unwrap_or(first);
    // Hand Envoy the changed region plus the shorter of the untouched ends.
    let head = first <= body.len().saturating_sub(last);
    let mut out = Vec::with_capacity(
        64 + if head {
            last
        } else {
            body.len().saturating_sub(first)
        },
    );
    if head {
        out.extend_from_slice(body.get(..first).unwrap_or(&[]));
    }
    let mut pos = first;
    for (range, value) in &splices {
        out.extend_from_slice(body.get(pos..range.start).unwrap_or(&[]));
        out.extend_from_slice(value);
        pos = range.end;
    }
    if head {
        return Some(BodyEdit::Head {
            replace: last,
            with: out,
        });
    }
    out.extend_from_slice(body.get(pos..).unwrap_or(&[]));
    Some(BodyEdit::Tail {
        keep: first,
        append: out,
    })
}

/// Returns the body with the `model` value replaced by `new_model`.
pub fn rewrite_model(body: &[u8], info: &RequestInfo, new_model: &str) -> Vec<u8> {
    let rw = Rewrite {
        model: Some(new_model),
        include_usage: false,
    };
    rewrite(body, info, &rw).map_or_else(|| body.to_vec(), |edit| edit.apply(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Endpoint;
    use serde_json::Value;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/chat/completions?x=1"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/embeddings/"),
            Some(Endpoint::Embeddings)
        );
        assert_eq!(
            Endpoint::from_path("/v1/completions"),
            Some(Endpoint::Completions)
        );
        assert_eq!(
            Endpoint::from_path("/v1/responses"),
            Some(Endpoint::Responses)
        );
        assert_eq!(Endpoint::from_path("/v1/models"), None);
        assert_eq!(Endpoint::from_path("/healthz"), None);
    }

    #[test]
    fn inspect_and_rewrite_keeps_everything_else_byte_for_byte() {
        let body = br#"{"messages":[{"role":"user","content":"model \"x\""}], "model" : "fast","stream":true,"max_tokens":64,"extra":{"a":[1,2]}}"#;
        let info = inspect(body).unwrap();
        assert_eq!(info.model, "fast");
        assert!(info.stream);
        assert_eq!(info.max_output_tokens, Some(64));
        assert_eq!(&body[info.model_span.clone()], br#""fast""#);
        let out = rewrite_model(body, &info, "gpt-4o-mini");
        let expected = String::from_utf8_lossy(body).replace(r#""fast""#, r#""gpt-4o-mini""#);
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "gpt-4o-mini");
    }

    #[test]
    fn large_bodies_hand_envoy_only_the_changed_end() {
        let long = "x".repeat(100_000);
        let rw = Rewrite {
            model: Some("gpt-4o-mini"),
            include_usage: false,
        };
        // `model` first (curl examples, many SDKs): only the head is replaced.
        let first = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{long}"}}]}}"#);
        let info = inspect(first.as_bytes()).unwrap();
        let edit = rewrite(first.as_bytes(), &info, &rw).unwrap();
        match &edit {
            BodyEdit::Head { replace, with } => {
                assert_eq!(*replace, info.model_span.end);
                assert_eq!(with, br#"{"model":"gpt-4o-mini""#);
            }
            other => panic!("{other:?}"),
        }
        let out = edit.apply(first.as_bytes());
        assert_eq!(out.len(), edit.new_len(first.len()));
        assert_eq!(
            out,
            first.replace(r#""m""#, r#""gpt-4o-mini""#).into_bytes()
        );
        // `model` after `messages` (the OpenAI Python SDK's order): keep the start, append.
        let last =
            format!(r#"{{"messages":[{{"role":"user","content":"{long}"}}],"model":"m","n":1}}"#);
        let info = inspect(last.as_bytes()).unwrap();
        let edit = rewrite(last.as_bytes(), &info, &rw).unwrap();
        match &edit {
            BodyEdit::Tail { keep, append } => {
                assert_eq!(*keep, info.model_span.start);
                assert_eq!(append, br#""gpt-4o-mini","n":1}"#);
            }
            other => panic!("{other:?}"),
        }
        let out = edit.apply(last.as_bytes());
        assert_eq!(out.len(), edit.new_len(last.len()));
        assert_eq!(out, last.replace(r#""m""#, r#""gpt-4o-mini""#).into_bytes());
        // Injecting stream_options right after `{` as well: one head edit covers both.
        let stream = format!(
            r#"{{"stream":true,"model":"m","messages":[{{"role":"user","content":"{long}"}}]}}"#
        );
        let info = inspect(stream.as_bytes()).unwrap();
        let rw = Rewrite {
            model: Some("gpt-4o-mini"),
            include_usage: true,
        };
        let edit = rewrite(stream.as_bytes(), &info, &rw).unwrap();
        assert!(matches!(&edit, BodyEdit::Head { with, .. } if with.len() < 100));
        let v: Value = serde_json::from_slice(&edit.apply(stream.as_bytes())).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "gpt-4o-mini");
    }

    #[test]
    fn escaped_model_names_round_trip() {
        let body = br#"{"model":"a\"b\u00e9"}"#;
        let info = inspect(body).unwrap();
        assert_eq!(info.model, "a\"b\u{e9}");
        let out = rewrite_model(body, &info, "x\"y");
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "x\"y");
    }

    #[test]
    fn bad_bodies_are_400() {
        for body in [
            &b""[..],
            b"   ",
            b"[]",
            b"{",
            b"not json",
            br#"{"model":"a"} trailing"#,
            br#"{"model":"a","model":"b"}"#,
            br#"{"model":"a","stream":"yes"}"#,
            br#"{"model":"a","max_tokens":-1}"#,
            br#"{"model":"a","max_tokens":1.5}"#,
        ] {
            let e = inspect(body).unwrap_err();
            assert_eq!(e.status, 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(e.code, "invalid_json");
        }
        for body in [
            &br#"{}"#[..],
            br#"{"model":""}"#,
            br#"{"model":3}"#,
            br#"{"model":null}"#,
        ] {
            let e = inspect(body).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (400, "missing_model"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    fn with_usage(body: &[u8]) -> Value {
        let info = inspect(body).unwrap();
        let rw = Rewrite {
            model: Some("up"),
            include_usage: true,
        };
        let out = rewrite(body, &info, &rw).unwrap().apply(body);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn include_usage_is_injected_in_every_shape() {
        let v = with_usage(br#"{"model":"m","stream":true}"#);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["model"], "up");
        let v = with_usage(br#"{"stream_options":null,"model":"m","stream":true}"#);
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_usage": true})
        );
        let v = with_usage(br#"{"model":"m","stream_options":{"include_usage":false,"x":1}}"#);
        assert_eq!(
            v["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        let v = with_usage(b" \n {\"model\":\"m\"}");
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn client_include_usage_is_kept_and_nothing_changes() {
        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        let info = inspect(body).unwrap();
        assert!(info.include_usage);
        let rw = Rewrite {
            model: Some("m"),
            include_usage: true,
        };
        assert_eq!(rewrite(body, &info, &rw), None);
    }

    #[test]
    fn bad_stream_options_is_400() {
        let e = inspect(br#"{"model":"m","stream_options":"yes"}"#).unwrap_err();
        assert_eq!(
            (e.status, e.param.as_deref()),
            (400, Some("stream_options"))
        );
        let e = inspect(br#"{"model":"m","stream_options":{"include_usage":1}}"#).unwrap_err();
        assert_eq!(e.status, 400);
    }

    proptest::proptest! {
        #[test]
        fn inspect_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = inspect(&body);
        }

        #[test]
        fn rewrite_is_exact(model in "[a-zA-Z0-9./:_-]{1,30}", new in "\\PC{0,30}", pad in "[ \\n]{0,3}") {
            let body = format!(r#"{{"a":1,{pad}"model"{pad}:{pad}{}{pad},"b":[true]}}"#, serde_json::to_string(&model).unwrap());
            let info = inspect(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(&info.model, &model);
            let out = rewrite_model(body.as_bytes(), &info, &new);
            let v: Value = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert_eq!(v["model"].as_str().unwrap(), new.as_str());
            proptest::prop_assert_eq!(v["b"][0].as_bool(), Some(true));
        }
    }
}
