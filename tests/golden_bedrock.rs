//! Golden tests for the OpenAI <-> Bedrock Converse translation.
//!
//! Every directory under `tests/golden/bedrock/` is one case. Its `case.json` names the
//! operation and its parameters; the input is `input.json`, `input.txt` (raw bytes) or,
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

use std::fs;
use std::path::{Path, PathBuf};

use llm_gateway::eventstream::{encode_message, EventStreamDecoder, HeaderValue};
use llm_gateway::translate::bedrock as t;
use llm_gateway::translate::TranslateError;
use llm_gateway::usage::Usage;
use serde_json::Value;

fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    fs::read(dir.join(name)).ok()
}

fn json_file(dir: &Path, name: &str) -> Option<Value> {
    read(dir, name).map(|b| {
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
    })
}

fn param_str(case: &Value, key: &str) -> String {
    case.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("case.json needs string `{key}`"))
        .to_string()
}

fn param_u64(case: &Value, key: &str) -> u64 {
    case.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("case.json needs number `{key}`"))
}

fn usage_json(u: &Usage) -> Value {
    serde_json::json!({
        "input": u.input, "output": u.output, "cached_input": u.cached_input,
        "cache_creation_input": u.cache_creation_input, "reasoning": u.reasoning,
        "estimated": u.estimated,
    })
}

enum Output {
    Json(Vec<u8>, Option<Usage>),
    Stream(Vec<u8>, Option<Usage>),
    Error(TranslateError),
}

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

/// Checks one case; returns a description of each mismatch.
fn check(dir: &Path) -> Vec<String> {
    let name = dir.display().to_string();
    let case = json_file(dir, "case.json").unwrap_or_else(|| panic!("{name}: no case.json"));
    let mut failures = Vec::new();
    let usage = match run(dir, &case) {
        Output::Error(e) => {
            match json_file(dir, "expected_error.json") {
                Some(exp) => {
                    let got = serde_json::json!({"status": e.status, "param": e.param});
                    let want = serde_json::json!({
                        "status": exp.get("status").cloned().unwrap_or(Value::Null),
                        "param": exp.get("param").cloned().unwrap_or(Value::Null),
                    });
                    if got != want {
                        failures.push(format!("{name}: error {got} != expected {want} ({e})"));
                    }
                }
                None => failures.push(format!("{name}: unexpected error: {e}")),
            }
            return failures;
        }
        Output::Json(bytes, usage) => {
            let got: Value = match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("{name}: output is not JSON: {e}"));
                    return failures;
                }
            };
            match json_file(dir, "expected.json") {
                Some(want) if want == got => {}
                Some(want) => failures.push(format!(
                    "{name}: JSON mismatch\n--- expected\n{}\n--- got\n{}",
                    serde_json::to_string_pretty(&want).unwrap(),
                    serde_json::to_string_pretty(&got).unwrap()
                )),
                None => failures.push(format!(
                    "{name}: no expected.json; output was\n{}",
                    serde_json::to_string_pretty(&got).unwrap()
                )),
            }
            usage
        }
        Output::Stream(bytes, usage) => {
            let got = String::from_utf8_lossy(&bytes).into_owned();
            match read(dir, "expected.sse") {
                Some(want) if want == bytes => {}
                Some(want) => failures.push(format!(
                    "{name}: stream mismatch\n--- expected\n{}\n--- got\n{got}",
                    String::from_utf8_lossy(&want)
                )),
                None => failures.push(format!("{name}: no expected.sse; output was\n{got}")),
            }
            usage
        }
    };
    if let Some(want) = json_file(dir, "expected_usage.json") {
        let got = usage.as_ref().map(usage_json).unwrap_or(Value::Null);
        if got != want {
            failures.push(format!("{name}: usage {got} != expected {want}"));
        }
    }
    if json_file(dir, "expected_error.json").is_some() {
        failures.push(format!("{name}: expected an error, got output"));
    }
    failures
}

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bedrock");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_bedrock_cases() {
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 20,
        "expected the golden cases, found {}",
        dirs.len()
    );
    let failures: Vec<String> = dirs.iter().flat_map(|d| check(d)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}
