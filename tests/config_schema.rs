//! `schema/config.schema.json` is generated from the configuration types in
//! `src/config/mod.rs and src/providers/config.rs` (`RawConfig` and what it contains) with `schemars`. This test
//! regenerates it and fails when the committed file differs, so a new field or provider
//! type cannot land without its schema.
//!
//! Regenerate after changing the config types: `make schema`
//! (= `UPDATE_SCHEMA=1 cargo test --features schema --test config_schema`).
#![cfg(feature = "schema")]

use llm_gateway::config::RawConfig;
use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/config.schema.json")
}

fn generate() -> String {
    let mut schema = schemars::schema_for!(RawConfig);
    schema.insert("title".into(), "llm-gateway plugin configuration".into());
    let mut text = serde_json::to_string_pretty(&schema).expect("schema serialises");
    text.push('\n');
    text
}

#[test]
fn committed_schema_matches_the_config_types() {
    let generated = generate();
    let path = schema_path();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with src/config/mod.rs and src/providers/config.rs: run `make schema` and commit the result",
        path.display()
    );
}

#[test]
fn schema_rejects_unknown_fields_like_the_parser() {
    // deny_unknown_fields on every config struct must show as additionalProperties: false.
    let schema: serde_json::Value = serde_json::from_str(&generate()).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    for def in ["ProviderConfig", "ModelRule"] {
        assert_eq!(schema["$defs"][def]["additionalProperties"], false, "{def}");
    }
    assert_eq!(schema["required"], serde_json::json!(["providers"]));
}
