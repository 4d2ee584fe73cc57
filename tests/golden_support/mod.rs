//! What the golden-case runners of every provider share: reading a case directory,
//! comparing the output with the expected files, and running every case of a provider.
//! Each runner (`tests/golden_<provider>.rs`) only maps a case's operation to its
//! translator.
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

/// Runs every case under `tests/golden/<provider>/` (at least `min` of them) and fails
/// with every mismatch listed.
pub fn run_all(provider: &str, min: usize, run: &dyn Fn(&Path, &Value) -> Output) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(provider);
    let mut dirs: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= min,
        "expected the golden cases, found {}",
        dirs.len()
    );
    let failures: Vec<String> = dirs.iter().flat_map(|d| check(d, run)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}
