//! Golden tests for the OpenAI <-> Bedrock Converse translation.
//!
//! Every directory under `tests/golden/openai_chat_to_bedrock_converse/` (an OpenAI chat
//! client, a Bedrock Converse provider) is one case, named as `tests/golden_support/mod.rs`
//! describes. Its `case.json` names the operation and its parameters; the input is `input.json`, `input.txt` (raw bytes) or,
//! for streams, `input.jsonl`; the expected output is `expected.json` (compared as JSON
//! values), `expected.sse` (compared byte for byte) or `expected_error.json`
//! (`{"status", "param"?}`), and optionally `expected_usage.json` (the returned `Usage`).
//!
//! Operations:
//! * `chat_request_to_converse` (`stream`: the expected stream flag);
//! * `converse_response_to_chat` (model, created, id?);
//! * `converse_stream_to_chat` (model, created, include_usage, id?): each line of
//!   `input.jsonl` is one eventstream message `{"headers": {name: string}, "payload":
//!   <JSON>}` (or `"payload_text": "<raw>"`), or `{"cut": N}` (the body ends N bytes into
//!   the next message). The lines are encoded into eventstream bytes and fed whole and
//!   in chunks of odd sizes; every split must give the same output.
//! * `bedrock_error_to_openai` (status, error_type_header?): expected.json is
//!   `{"status": <client status>, "body": <OpenAI error body>}`.

use std::path::Path;

mod golden_support;
use golden_support::*;

use llm_gateway::stream::eventstream::{encode_message, EventStreamDecoder, HeaderValue};
use llm_gateway::translate::bedrock as t;
use serde_json::Value;

/// Encodes `input.jsonl` into an eventstream body.
fn encode_stream(dir: &Path, jsonl: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut cut: Option<usize> = None;
    for (n, line) in String::from_utf8_lossy(jsonl).lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}/input.jsonl:{}: {e}", dir.display(), n + 1));
        if let Some(c) = v.get("cut").and_then(Value::as_u64) {
            cut = Some(usize::try_from(c).unwrap());
            continue;
        }
        let headers: Vec<(String, String)> = v["headers"]
            .as_object()
            .unwrap_or_else(|| panic!("{}: line {} needs headers", dir.display(), n + 1))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let payload = match (v.get("payload"), v.get("payload_text")) {
            (Some(p), _) => serde_json::to_vec(p).unwrap(),
            (None, Some(Value::String(s))) => s.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        let h: Vec<(&str, HeaderValue<'_>)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), HeaderValue::String(v)))
            .collect();
        let frame = encode_message(&h, &payload).unwrap();
        match cut.take() {
            Some(c) => {
                body.extend_from_slice(&frame[..c.min(frame.len())]);
                break;
            }
            None => body.extend_from_slice(&frame),
        }
    }
    body
}

/// Decodes `body` fed in `chunk`-byte pieces and translates it, as the filter will.
fn run_stream(case: &Value, body: &[u8], chunk: usize) -> Output {
    let mut s = t::ConverseStreamToChat::new(
        &param_str(case, "model"),
        param_u64(case, "created"),
        case.get("include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    if let Some(id) = case.get("id").and_then(Value::as_str) {
        s = s.with_id(id);
    }
    let mut out = Vec::new();
    let mut decoder = EventStreamDecoder::new();
    let mut failed = false;
    for piece in body.chunks(chunk.max(1)) {
        if let Err(e) = decoder.feed(piece, |m| s.on_message(m, &mut out)) {
            s.on_decode_error(&e.to_string(), &mut out);
            failed = true;
            break;
        }
    }
    if !failed {
        if let Err(e) = decoder.finish() {
            s.on_decode_error(&e.to_string(), &mut out);
        }
    }
    s.finish(&mut out);
    Output::Stream(out, s.usage())
}

fn run(dir: &Path, case: &Value) -> Output {
    let op = param_str(case, "op");
    if op == "converse_stream_to_chat" {
        let jsonl =
            read(dir, "input.jsonl").unwrap_or_else(|| panic!("{}: no input.jsonl", dir.display()));
        let body = encode_stream(dir, &jsonl);
        let whole = run_stream(case, &body, usize::MAX);
        if let Output::Stream(expected, expected_usage) = &whole {
            for chunk in [1, 2, 3, 5, 7, 13, 64, 1000] {
                if let Output::Stream(got, usage) = run_stream(case, &body, chunk) {
                    assert!(
                        &got == expected && &usage == expected_usage,
                        "{}: output differs when the body is fed in {chunk}-byte chunks:\n{}",
                        dir.display(),
                        String::from_utf8_lossy(&got)
                    );
                }
            }
        }
        return whole;
    }
    let input = read(dir, "input.json")
        .or_else(|| read(dir, "input.txt"))
        .unwrap_or_else(|| panic!("{}: no input.json or input.txt", dir.display()));
    match op.as_str() {
        "chat_request_to_converse" => match t::chat_request_to_converse(&input) {
            Ok((body, stream)) => {
                let want = case.get("stream").and_then(Value::as_bool).unwrap_or(false);
                assert_eq!(stream, want, "{}: stream flag", dir.display());
                Output::Json(body, None)
            }
            Err(e) => Output::Error(e),
        },
        "converse_response_to_chat" => {
            let model = param_str(case, "model");
            let created = param_u64(case, "created");
            let r = match case.get("id").and_then(Value::as_str) {
                Some(id) => t::converse_response_to_chat_with_id(&input, &model, created, id),
                None => t::converse_response_to_chat(&input, &model, created),
            };
            match r {
                Ok((b, u)) => Output::Json(b, Some(u)),
                Err(e) => Output::Error(e),
            }
        }
        "bedrock_error_to_openai" => {
            let (status, body) = t::bedrock_error_to_openai(
                u16::try_from(param_u64(case, "status")).unwrap(),
                &input,
                case.get("error_type_header").and_then(Value::as_str),
            );
            let body: Value = serde_json::from_slice(&body).unwrap();
            let v = serde_json::json!({"status": status, "body": body});
            Output::Json(serde_json::to_vec(&v).unwrap(), None)
        }
        other => panic!("{}: unknown op `{other}`", dir.display()),
    }
}

#[test]
fn golden_bedrock_cases() {
    golden_support::run_all(
        &[Pair {
            dir: "openai_chat_to_bedrock_converse",
            min: 38,
            ops: &[
                "chat_request_to_converse",
                "converse_response_to_chat",
                "converse_stream_to_chat",
                "bedrock_error_to_openai",
            ],
        }],
        &run,
    );
}
