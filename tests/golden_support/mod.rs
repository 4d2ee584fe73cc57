//! What the golden-case runners of every provider share: reading a case directory,
//! comparing the output with the expected files, and running every case of an API pair.
//! Each runner (`tests/golden_<provider>.rs`) only maps a case's operation to its
//! translator.
//!
//! The cases live in `tests/golden/<client API>_to_<provider API>/<what>_<case>/`: the
//! API the client speaks, then the API the provider speaks (`openai_chat`,
//! `anthropic_messages`, `bedrock_converse`, `gemini`), e.g.
//! `openai_chat_to_bedrock_converse/request_basic`. `<what>` is one of
//! * `request`: the client's request translated for the provider;
//! * `request_error`: a client request the gateway refuses (`expected_error.json`);
//! * `response`: the provider's answer translated back for the client;
//! * `response_error`: a provider answer the gateway cannot translate (`expected_error.json`);
//! * `stream`: the provider's streamed answer translated back for the client;
//! * `error`: the provider's error answer translated into the client API's error format.
//!
//! `run_all` checks that each name's `<what>` agrees with the case's operation.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use llm_gateway::tokens::usage::Usage;
use llm_gateway::translate::TranslateError;
use serde_json::Value;

pub fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    fs::read(dir.join(name)).ok()
}

pub fn json_file(dir: &Path, name: &str) -> Option<Value> {
    read(dir, name).map(|b| {
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{}/{name}: {e}", dir.display()))
    })
}

pub fn param_str(case: &Value, key: &str) -> String {
    case.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("case.json needs string `{key}`"))
        .to_string()
}

pub fn param_u64(case: &Value, key: &str) -> u64 {
    case.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("case.json needs number `{key}`"))
}

pub fn usage_json(u: &Usage) -> Value {
    serde_json::json!({
        "input": u.input, "output": u.output, "cached_input": u.cached_input,
        "cache_creation_input": u.cache_creation_input, "reasoning": u.reasoning,
        "estimated": u.estimated,
    })
}

/// What an operation produced.
pub enum Output {
    Json(Vec<u8>, Option<Usage>),
    Stream(Vec<u8>, Option<Usage>),
    Error(TranslateError),
}

/// Checks one case; returns a description of each mismatch.
pub fn check(dir: &Path, run: &dyn Fn(&Path, &Value) -> Output) -> Vec<String> {
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

/// The prefixes a case's name may start with: the part of the operation's name each
/// stands for, and whether the case expects `expected_error.json`.
const KINDS: [(&str, &str, bool); 6] = [
    ("request_error_", "_request_to_", true),
    ("response_error_", "_response_to_", true),
    ("request_", "_request_to_", false),
    ("response_", "_response_to_", false),
    ("stream_", "_stream_to_", false),
    ("error_", "_error_to_", false),
];

/// Whether a case's name and place agree with what it runs: `<what>_<case>` as in
/// [`KINDS`], and an operation the runner lists for its API pair.
fn name_failure(dir: &Path, ops: &[&str]) -> Option<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let op = json_file(dir, "case.json")
        .and_then(|c| c.get("op").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let refused = dir.join("expected_error.json").is_file();
    let named_right = KINDS.iter().find(|(prefix, _, _)| name.starts_with(prefix));
    match named_right {
        Some((prefix, op_part, err))
            if name.len() > prefix.len() && op.contains(op_part) && *err == refused =>
        {
            if ops.contains(&op.as_str()) {
                None
            } else {
                Some(format!(
                    "{}: op `{op}` does not belong to this API pair ({})",
                    dir.display(),
                    ops.join(", ")
                ))
            }
        }
        _ => Some(format!(
            "{}: the name should be `<what>_<case>`, <what> being `request`, `response`, \
             `stream` or `error` as the op `{op}` says, `request_error` or `response_error` \
             when the case expects expected_error.json",
            dir.display()
        )),
    }
}

/// One API pair's cases: `tests/golden/<dir>/`, at least `min` of them (so a lost or
/// misplaced case cannot pass unnoticed), each running one of `ops`.
pub struct Pair<'a> {
    pub dir: &'a str,
    pub min: usize,
    pub ops: &'a [&'a str],
}

/// Runs every case of every pair and fails with every mismatch listed.
pub fn run_all(pairs: &[Pair<'_>], run: &dyn Fn(&Path, &Value) -> Output) {
    let mut failures: Vec<String> = Vec::new();
    let mut total = 0;
    for pair in pairs {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(pair.dir);
        let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        assert!(
            dirs.len() >= pair.min,
            "{}: expected at least {} golden cases, found {}",
            root.display(),
            pair.min,
            dirs.len()
        );
        total += dirs.len();
        failures.extend(dirs.iter().filter_map(|d| name_failure(d, pair.ops)));
        failures.extend(dirs.iter().flat_map(|d| check(d, run)));
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n\n{}",
        failures.len(),
        total,
        failures.join("\n\n")
    );
}
