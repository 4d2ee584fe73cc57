//! Errors the gateway answers itself, in the OpenAI error format:
//! `{"error":{"message":…,"type":…,"param":…,"code":…}}`.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub status: u32,
    /// OpenAI error `type` (`invalid_request_error`, `server_error`, …).
    pub kind: &'static str,
    /// OpenAI error `code` (`model_not_found`, …); also the metric `reason` label.
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

impl GatewayError {
    fn new(status: u32, kind: &'static str, code: &'static str, message: String) -> Self {
        GatewayError {
            status,
            kind,
            code,
            message,
            param: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn invalid_json(detail: &str) -> Self {
        Self::new(
            400,
            "invalid_request_error",
            "invalid_json",
            format!("We could not parse the JSON body of your request: {detail}"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", code, message.into())
    }

    pub fn missing_model() -> Self {
        Self::bad_request(
            "missing_model",
            "you must provide a model parameter (a non-empty string)",
        )
        .with_param("model")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!(
                "The model `{}` does not exist or is not served by this gateway",
                truncate(model, 200)
            ),
        )
        .with_param("model")
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("The request body exceeds the gateway limit of {limit} bytes"),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!(
                "Method {} is not allowed on {}; use POST",
                truncate(method, 20),
                truncate(path, 200)
            ),
        )
    }

    /// The provider's key variable is unset. Names the variable, never a value.
    pub fn provider_key_missing(provider: &str, variable: &str) -> Self {
        Self::new(
            503,
            "server_error",
            "provider_not_configured",
            format!(
                "Provider `{provider}` has no API key: the environment variable {variable} is not set for the gateway"
            ),
        )
    }

    /// The provider cannot be called right now (e.g. no access token yet): 503.
    pub fn provider_unavailable(provider: &str, why: &str) -> Self {
        Self::new(
            503,
            "server_error",
            "provider_unavailable",
            format!("Provider `{provider}` is unavailable: {why}"),
        )
    }

    pub fn upstream(status: u32, message: impl Into<String>) -> Self {
        Self::new(
            status,
            "upstream_error",
            "bad_upstream_response",
            message.into(),
        )
    }

    /// A client payload that cannot be translated to the provider's API (400), or a
    /// provider payload that cannot be translated back (502).
    pub fn from_translate(e: crate::translate::TranslateError) -> Self {
        let (kind, code) = if e.status >= 500 {
            ("upstream_error", "bad_upstream_response")
        } else {
            ("invalid_request_error", "invalid_request")
        };
        GatewayError {
            status: u32::from(e.status),
            kind,
            code,
            message: e.message,
            param: e.param,
        }
    }

    /// The error body in the client's API format.
    pub fn body_for(&self, api: crate::api::Api) -> Vec<u8> {
        match api {
            crate::api::Api::Anthropic => self.anthropic_body(),
            // Gemini and Bedrock are never client APIs: their clients speak OpenAI.
            _ => self.body(),
        }
    }

    /// Anthropic format: `{"type":"error","error":{"type":…,"message":…}}`.
    pub fn anthropic_body(&self) -> Vec<u8> {
        let kind = match self.status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        let v =
            serde_json::json!({"type": "error", "error": {"type": kind, "message": self.message}});
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// The OpenAI-format JSON body.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Inner<'a> {
            message: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            param: Option<&'a str>,
            code: &'a str,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        serde_json::to_vec(&Outer {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or_else(|_| br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":"internal_error"}}"#.to_vec())
    }
}

/// The error type of a provider error body (`{"error":{"code"|"type":…}}`, OpenAI and
/// Anthropic shapes): the `code` when it is a string, else the `type`.
pub fn upstream_error_type(body: &[u8]) -> Option<String> {
    // Every successful JSON answer is checked too: skip the parse when the body cannot
    // have an `error` member (no `"error"` and no `\u` escape that could spell one).
    if !may_have_error_member(body) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: Option<serde_json::Value>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Outer {
        error: Inner,
    }
    let o: Outer = serde_json::from_slice(body).ok()?;
    match o.error.code {
        Some(serde_json::Value::String(c)) if !c.is_empty() => Some(c),
        _ => o.error.kind.filter(|k| !k.is_empty()),
    }
}

/// False only when `body` certainly has no member named `error`: it contains neither the
/// bytes `"error"` nor a `\u` escape (with which a key can spell `error` differently).
fn may_have_error_member(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"error\"").is_some()
        || memchr::memmem::find(body, b"\\u").is_some()
}

/// Cuts client-controlled text echoed in messages to a bounded length (on a char boundary).
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn error_type_precheck_is_exact() {
        let ok =
            br#"{"id":"x","choices":[{"message":{"content":"an \"error\" here"}}],"usage":{}}"#;
        assert_eq!(upstream_error_type(ok), None);
        assert!(!may_have_error_member(ok));
        let e = br#"{"error":{"code":"rate_limit_exceeded","type":"requests"}}"#;
        assert_eq!(
            upstream_error_type(e).as_deref(),
            Some("rate_limit_exceeded")
        );
        // A key spelled with escapes still counts.
        let escaped = br#"{"\u0065rror":{"type":"overloaded_error"}}"#;
        assert_eq!(
            upstream_error_type(escaped).as_deref(),
            Some("overloaded_error")
        );
        let spaced = b"{ \"error\" : { \"type\" : \"server_error\" } }";
        assert_eq!(upstream_error_type(spaced).as_deref(), Some("server_error"));
    }

    #[test]
    fn body_is_openai_format() {
        let e = GatewayError::model_not_found("gpt-9");
        assert_eq!(e.status, 404);
        let v: Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
    }

    #[test]
    fn key_missing_names_variable() {
        let e = GatewayError::provider_key_missing("openai", "OPENAI_API_KEY");
        assert_eq!(e.status, 503);
        assert!(e.message.contains("OPENAI_API_KEY"));
        let v: Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["error"]["param"], Value::Null);
    }

    #[test]
    fn upstream_error_types() {
        let t = |b: &str| upstream_error_type(b.as_bytes());
        assert_eq!(
            t(r#"{"error":{"code":"rate_limit_exceeded","type":"requests"}}"#).as_deref(),
            Some("rate_limit_exceeded")
        );
        assert_eq!(
            t(r#"{"error":{"code":null,"type":"server_error"}}"#).as_deref(),
            Some("server_error")
        );
        assert_eq!(
            t(r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#).as_deref(),
            Some("overloaded_error")
        );
        assert_eq!(t("nope"), None);
    }

    #[test]
    fn anthropic_format() {
        let e = GatewayError::model_not_found("claude-9");
        let v: Value = serde_json::from_slice(&e.body_for(crate::api::Api::Anthropic)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("claude-9"));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
