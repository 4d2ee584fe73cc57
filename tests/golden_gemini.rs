//! Golden tests for the OpenAI <-> Google Gemini translation.
//!
//! Every directory under `tests/golden/openai_chat_to_gemini/` (an OpenAI chat client, a
//! Gemini or Vertex AI provider) is one case, named as `tests/golden_support/mod.rs`
//! describes. Its `case.json` names the operation and its parameters; the input is `input.json`, `input.sse` or
//! `input.txt` (raw bytes), the expected output `expected.json` (compared as JSON
//! values), `expected.sse` (compared byte for byte) or `expected_error.json`
//! (`{"status", "param"?}`), and optionally `expected_usage.json` (the returned `Usage`).
//! The expected files are written by hand from the public API references.
//!
//! Operations: `chat_request_to_gemini` (`schema_field`: `json_schema` | `openapi`,
//! `expect_stream`), `gemini_response_to_chat` (model, created),
//! `gemini_stream_to_chat` (model, created, include_usage) and
//! `gemini_error_to_openai` (status).

use std::path::Path;

mod golden_support;
use golden_support::*;
use llm_gateway::tokens::usage::Usage;
use llm_gateway::translate::TranslateError;

use llm_gateway::stream::sse::SseParser;
use llm_gateway::translate::gemini::{self as t, SchemaField};
use serde_json::Value;

/// Feeds `input` to an SSE parser in chunks of `chunk` bytes, handing events to `f`.
fn for_each_event(input: &[u8], chunk: usize, mut f: impl FnMut(&str, &str)) {
    let mut parser = SseParser::new();
    let mut on_event = |ev: &llm_gateway::stream::sse::SseEvent<'_>| {
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

#[test]
fn golden_gemini_cases() {
    golden_support::run_all(
        &[Pair {
            dir: "openai_chat_to_gemini",
            min: 56,
            ops: &[
                "chat_request_to_gemini",
                "gemini_response_to_chat",
                "gemini_stream_to_chat",
                "gemini_error_to_openai",
            ],
        }],
        &run,
    );
}
