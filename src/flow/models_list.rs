//! Model discovery answers in OpenAI's format, host-free: `GET /v1/models` (a list)
//! and `GET /v1/models/{id}` (one model). Which names are listed is the caller's
//! choice (e.g. configured aliases and exact model names, not wildcards).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Serialize)]
struct Model<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Model<'a>>,
}

/// `{"object":"list","data":[{"id","object":"model","created","owned_by"}, …]}`,
/// sorted by id. An id listed twice appears once, with the `owned_by` of its first
/// occurrence; empty ids are skipped.
pub fn models_list(models: &[(&str, &str)], created_unix: u64) -> Vec<u8> {
    let mut unique: BTreeMap<&str, &str> = BTreeMap::new();
    for &(id, owned_by) in models {
        if !id.is_empty() {
            unique.entry(id).or_insert(owned_by);
        }
    }
    let list = List {
        object: "list",
        data: unique
            .into_iter()
            .map(|(id, owned_by)| Model {
                id,
                object: "model",
                created: created_unix,
                owned_by,
            })
            .collect(),
    };
    serde_json::to_vec(&list).unwrap_or_else(|_| br#"{"object":"list","data":[]}"#.to_vec())
}

/// `{"id","object":"model","created","owned_by"}` for `GET /v1/models/{id}`.
pub fn model_object(id: &str, owned_by: &str, created_unix: u64) -> Vec<u8> {
    let model = Model {
        id,
        object: "model",
        created: created_unix,
        owned_by,
    };
    serde_json::to_vec(&model).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn list_is_sorted_deduplicated_and_in_openai_shape() {
        let body = models_list(
            &[
                ("gpt-4o", "openai"),
                ("gemini-2.5-flash", "google"),
                ("", "nobody"),
                ("fast", "groq"),
                ("gpt-4o", "azure"),
            ],
            1_700_000_000,
        );
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            r#"{"object":"list","data":[{"id":"fast","object":"model","created":1700000000,"owned_by":"groq"},{"id":"gemini-2.5-flash","object":"model","created":1700000000,"owned_by":"google"},{"id":"gpt-4o","object":"model","created":1700000000,"owned_by":"openai"}]}"#
        );
    }

    #[test]
    fn empty_list_and_escaping() {
        assert_eq!(models_list(&[], 0), br#"{"object":"list","data":[]}"#);
        let v: Value = serde_json::from_slice(&models_list(&[("a\"b\n", "o\\")], 1)).unwrap();
        assert_eq!(v["data"][0]["id"], "a\"b\n");
        assert_eq!(v["data"][0]["owned_by"], "o\\");
    }

    #[test]
    fn single_model_object() {
        let v: Value =
            serde_json::from_slice(&model_object("gemini-2.5-pro", "vertex", 5)).unwrap();
        assert_eq!(
            v,
            json!({"id": "gemini-2.5-pro", "object": "model", "created": 5, "owned_by": "vertex"})
        );
    }
}
