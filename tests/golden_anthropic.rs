//! Golden tests for the OpenAI <-> Anthropic translation.
//!
//! Every directory under `tests/golden/openai_chat_to_anthropic_messages/` (an OpenAI chat
//! client, an Anthropic provider) and `tests/golden/anthropic_messages_to_openai_chat/`
//! (an Anthropic Messages client, an OpenAI provider) is one case, named as
//! `tests/golden_support/mod.rs` describes. Its `case.json` names the operation and its
//! parameters; the input is `input.json`, `input.sse` or `input.txt` (raw bytes), the
//! expected output `expected.json` (compared as JSON values), `expected.sse`
//! (compared byte for byte) or `expected_error.json` (`{"status", "param"?}`), and
//! optionally `expected_usage.json` (the returned `Usage`).
//!
//! Operations: `chat_request_to_messages` (upstream_model, default_max_tokens),
//! `messages_response_to_chat` (model, created), `messages_stream_to_chat` (model,
//! id_hint, created, include_usage), `messages_request_to_chat` (upstream_model,
//! max_tokens_field?), `chat_response_to_messages` (model), `chat_stream_to_messages`
//! (model, id_hint), `anthropic_error_to_openai` and `openai_error_to_anthropic` (status).

use std::path::Path;

mod golden_support;
use golden_support::*;
use llm_gateway::tokens::usage::Usage;
use llm_gateway::translate::TranslateError;

use llm_gateway::stream::sse::SseParser;
use llm_gateway::translate::anthropic::{self as t, MaxTokensField};
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

fn run_stream(op: &str, case: &Value, input: &[u8], chunk: usize) -> Output {
    let mut out = Vec::new();
    match op {
        "messages_stream_to_chat" => {
            let mut s = t::MessagesToChatStream::new(
                &param_str(case, "model"),
                &param_str(case, "id_hint"),
                param_u64(case, "created"),
                case.get("include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            );
            for_each_event(input, chunk, |e, d| s.on_event(e, d, &mut out));
            s.finish(&mut out);
            Output::Stream(out, s.usage())
        }
        "chat_stream_to_messages" => {
            let mut s = t::ChatToMessagesStream::new(
                &param_str(case, "model"),
                &param_str(case, "id_hint"),
            );
            for_each_event(input, chunk, |_, d| s.on_event(d, &mut out));
            s.finish(&mut out);
            Output::Stream(out, s.usage())
        }
        _ => unreachable!(),
    }
}

fn run(dir: &Path, case: &Value) -> Output {
    let op = param_str(case, "op");
    let input = read(dir, "input.json")
        .or_else(|| read(dir, "input.sse"))
        .or_else(|| read(dir, "input.txt"))
        .unwrap_or_else(|| panic!("{}: no input.json, input.sse or input.txt", dir.display()));
    let json = |r: Result<Vec<u8>, TranslateError>| match r {
        Ok(b) => Output::Json(b, None),
        Err(e) => Output::Error(e),
    };
    let json_usage = |r: Result<(Vec<u8>, Usage), TranslateError>| match r {
        Ok((b, u)) => Output::Json(b, Some(u)),
        Err(e) => Output::Error(e),
    };
    match op.as_str() {
        "chat_request_to_messages" => json(t::chat_request_to_messages(
            &input,
            &param_str(case, "upstream_model"),
            u32::try_from(param_u64(case, "default_max_tokens")).unwrap(),
        )),
        "messages_response_to_chat" => json_usage(t::messages_response_to_chat(
            &input,
            &param_str(case, "model"),
            param_u64(case, "created"),
        )),
        "messages_request_to_chat" => {
            let field = match case.get("max_tokens_field").and_then(Value::as_str) {
                None | Some("max_completion_tokens") => MaxTokensField::MaxCompletionTokens,
                Some("max_tokens") => MaxTokensField::MaxTokens,
                Some(other) => panic!("unknown max_tokens_field {other}"),
            };
            json(t::messages_request_to_chat_with(
                &input,
                &param_str(case, "upstream_model"),
                field,
            ))
        }
        "chat_response_to_messages" => json_usage(t::chat_response_to_messages(
            &input,
            &param_str(case, "model"),
        )),
        "anthropic_error_to_openai" => Output::Json(
            t::anthropic_error_to_openai(param_u64(case, "status") as u16, &input),
            None,
        ),
        "openai_error_to_anthropic" => Output::Json(
            t::openai_error_to_anthropic(param_u64(case, "status") as u16, &input),
            None,
        ),
        "messages_stream_to_chat" | "chat_stream_to_messages" => {
            let whole = run_stream(&op, case, &input, usize::MAX);
            // The translation must not depend on how the upstream body was chunked.
            if let Output::Stream(expected, _) = &whole {
                for chunk in [1, 2, 3, 7, 64] {
                    if let Output::Stream(got, _) = run_stream(&op, case, &input, chunk) {
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
fn golden_anthropic_cases() {
    golden_support::run_all(
        &[
            Pair {
                dir: "openai_chat_to_anthropic_messages",
                min: 21,
                ops: &[
                    "chat_request_to_messages",
                    "messages_response_to_chat",
                    "messages_stream_to_chat",
                    "anthropic_error_to_openai",
                ],
            },
            Pair {
                dir: "anthropic_messages_to_openai_chat",
                min: 19,
                ops: &[
                    "messages_request_to_chat",
                    "chat_response_to_messages",
                    "chat_stream_to_messages",
                    "openai_error_to_anthropic",
                ],
            },
        ],
        &run,
    );
}
