//! Golden tests for the OpenAI <-> Google Gemini translation.
//!
//! Every directory under `tests/golden/gemini/` is one case. Its `case.json` names
//! the operation and its parameters; the input is `input.json`, `input.sse` or
//! `input.txt` (raw bytes), the expected output `expected.json` (compared as JSON
//! values), `expected.sse` (compared byte for byte) or `expected_error.json`
//! (`{"status", "param"?}`), and optionally `expected_usage.json` (the returned `Usage`).
//! The expected files are written by hand from the public API references.
//!
//! Operations: `chat_request_to_gemini` (`schema_field`: `json_schema` | `openapi`,
//! `expect_stream`), `gemini_response_to_chat` (model, created),
//! `gemini_stream_to_chat` (model, created, include_usage) and
//! `gemini_error_to_openai` (status).

use std::fs;
use std::path::{Path, PathBuf};

use llm_gateway::sse::SseParser;
use llm_gateway::translate::gemini::{self as t, SchemaField};
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

/// What an operation produced.
enum Output {
    Json(Vec<u8>, Option<Usage>),
    Stream(Vec<u8>, Option<Usage>),
    Error(TranslateError),
}

/// Feeds `input` to an SSE parser in chunks of `chunk` bytes, handing events to `f`.
fn for_each_event(input: &[u8], chunk: usize, mut f: impl FnMut(&str, &str)) {
    let mut parser = SseParser::new();
    let mut on_event = |ev: &llm_gateway::sse::SseEvent<'_>| {
        // Comment-only blocks and blank lines carry no event for the translators.
        if !ev.event.is_empty() || !ev.data.is_empty() {
            f(ev.event, ev.data)
        }
    };
    for piece in input.chunks(chunk.max(1)) {
        parser.feed(piece, &mut on_event);
    }
    parser.finish(&mut on_event);
}

fn run_stream(case: &Value, input: &[u8], chunk: usize) -> Output {
    let mut out = Vec::new();
    let mut s = t::GeminiStreamToChat::new(
        &param_str(case, "model"),
        param_u64(case, "created"),
        case.get("include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    for_each_event(input, chunk, |_, d| s.on_event(d, &mut out));
    s.finish(&mut out);
    Output::Stream(out, s.usage())
}

fn run(dir: &Path, case: &Value) -> Output {
    let op = param_str(case, "op");
    let input = read(dir, "input.json")
        .or_else(|| read(dir, "input.sse"))
        .or_else(|| read(dir, "input.txt"))
        .unwrap_or_else(|| panic!("{}: no input.json, input.sse or input.txt", dir.display()));
    let json_usage = |r: Result<(Vec<u8>, Usage), TranslateError>| match r {
        Ok((b, u)) => Output::Json(b, Some(u)),
        Err(e) => Output::Error(e),
    };
    match op.as_str() {
        "chat_request_to_gemini" => {
            let field = match case.get("schema_field").and_then(Value::as_str) {
                None | Some("json_schema") => SchemaField::JsonSchema,
                Some("openapi") => SchemaField::OpenApi,
                Some(other) => panic!("unknown schema_field {other}"),
            };
            match t::chat_request_to_gemini_with(&input, field) {
                Ok((b, stream)) => {
                    let want = case
                        .get("expect_stream")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    assert_eq!(stream, want, "{}: stream flag", dir.display());
                    Output::Json(b, None)
                }
                Err(e) => Output::Error(e),
            }
        }
        "gemini_response_to_chat" => json_usage(t::gemini_response_to_chat(
            &input,
            &param_str(case, "model"),
            param_u64(case, "created"),
        )),
        "gemini_error_to_openai" => Output::Json(
            t::gemini_error_to_openai(param_u64(case, "status") as u16, &input),
            None,
        ),
        "gemini_stream_to_chat" => {
            let whole = run_stream(case, &input, usize::MAX);
            // The translation must not depend on how the upstream body was chunked.
            if let Output::Stream(expected, _) = &whole {
                for chunk in [1, 2, 3, 7, 64] {
                    if let Output::Stream(got, _) = run_stream(case, &input, chunk) {
                        assert!(
                            &got == expected,
                            "{}: output differs when input is fed in {chunk}-byte chunks",
                            dir.display()
                        );
                    }
                }
            }
            whole
        }
        other => panic!("{}: unknown op `{other}`", dir.display()),
    }
}

/// Checks one case; returns a description of each mismatch.
fn check(dir: &Path) -> Vec<String> {
    let name = dir.display().to_string();
    let case = json_file(dir, "case.json").unwrap_or_else(|| panic!("{name}: no case.json"));
    let mut failures = Vec::new();
    let output = run(dir, &case);
    let usage = match output {
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gemini");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_gemini_cases() {
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 30,
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
