//! The OpenAI-format errors of identification, model access and quotas.

use super::headers::{format_reset, RateLimitInfo};
use crate::api::errors::{truncate, GatewayError};

fn make(status: u32, kind: &'static str, code: &'static str, message: String) -> GatewayError {
    GatewayError {
        status,
        kind,
        code,
        message,
        param: None,
    }
}

/// 401: no key (or identity) presented and identification is required.
pub fn missing_api_key() -> GatewayError {
    make(
        401,
        "invalid_request_error",
        "invalid_api_key",
        "You didn't provide an API key. Send it as `authorization: Bearer <key>` or `x-api-key: <key>`.".to_string(),
    )
}

/// 401: a key was presented but matches no consumer. The key is never echoed.
pub fn invalid_api_key() -> GatewayError {
    make(
        401,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided.".to_string(),
    )
}

/// 401: a trusted header or JWT was present but unusable.
pub fn invalid_identity(detail: &str) -> GatewayError {
    make(
        401,
        "invalid_request_error",
        "invalid_api_key",
        format!("The caller could not be identified: {detail}."),
    )
}

/// 403: the consumer may not use this model.
pub fn model_not_allowed(consumer: &str, model: &str) -> GatewayError {
    make(
        403,
        "invalid_request_error",
        "model_not_allowed",
        format!(
            "Consumer `{}` is not allowed to use the model `{}`.",
            truncate(consumer, 100),
            truncate(model, 200)
        ),
    )
    .with_param("model")
}

/// What made a request exceed a quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub rule: String,
    pub limit: u64,
    /// Tokens already counted in the window (`None` when the rate limit service does not
    /// say).
    pub used: Option<u64>,
    pub requested: u64,
    pub reset_ns: u64,
}

impl Exceeded {
    /// The request alone needs more than the whole limit: waiting cannot help.
    pub fn too_large(&self) -> bool {
        self.requested > self.limit
    }

    /// Header values of the 429 (`x-ratelimit-*` and `retry-after`).
    pub fn info(&self) -> RateLimitInfo {
        RateLimitInfo {
            limit: self.limit,
            remaining: self.used.map(|u| self.limit.saturating_sub(u)).unwrap_or(0),
            reset_ns: self.reset_ns,
        }
    }
}

/// 429 in OpenAI's format. OpenAI answers token limits with `type: "tokens"` and
/// `code: "rate_limit_exceeded"`, and a message naming limit, used and requested.
pub fn rate_limited(consumer: &str, e: &Exceeded) -> GatewayError {
    let who = truncate(consumer, 100);
    let rule = truncate(&e.rule, 100);
    let message = if e.too_large() {
        format!(
            "Request too large for consumer `{who}` on quota `{rule}`: Limit {}, Requested {}. Reduce the prompt or max_tokens.",
            e.limit, e.requested
        )
    } else {
        let used = e.used.map(|u| format!(", Used {u}")).unwrap_or_default();
        format!(
            "Rate limit reached for consumer `{who}` on quota `{rule}`: Limit {}{used}, Requested {}. Please try again in {}.",
            e.limit,
            e.requested,
            format_reset(e.reset_ns)
        )
    };
    make(429, "tokens", "rate_limit_exceeded", message)
}

/// 503: the quota counters could not be updated (CAS retries exhausted) — refused rather
/// than admitted uncounted.
pub fn quota_busy() -> GatewayError {
    make(
        503,
        "server_error",
        "quota_busy",
        "The quota counters are busy; please retry.".to_string(),
    )
}

/// 503: the rate limit service failed or timed out and `failure_mode` is `deny`.
pub fn quota_service_unavailable() -> GatewayError {
    make(
        503,
        "server_error",
        "quota_service_unavailable",
        "The quota service is unavailable; please retry.".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(e: &GatewayError) -> Value {
        serde_json::from_slice(&e.body()).unwrap()
    }

    #[test]
    fn openai_format() {
        let v = json(&invalid_api_key());
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let e = model_not_allowed("team-a", "o3");
        assert_eq!(
            (e.status, json(&e)["error"]["param"].as_str()),
            (403, Some("model"))
        );
        assert_eq!(missing_api_key().status, 401);
        assert_eq!(quota_busy().status, 503);
        assert_eq!(
            quota_service_unavailable().code,
            "quota_service_unavailable"
        );
    }

    #[test]
    fn rate_limited_message_and_headers() {
        let x = Exceeded {
            rule: "daily".into(),
            limit: 1000,
            used: Some(900),
            requested: 200,
            reset_ns: 360_000_000_000,
        };
        let e = rate_limited("team-a", &x);
        let v = json(&e);
        assert_eq!(e.status, 429);
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["type"], "tokens");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains("Limit 1000, Used 900, Requested 200. Please try again in 6m0s."),
            "{m}"
        );
        assert_eq!(x.info().remaining, 100);
        let big = Exceeded {
            requested: 5000,
            used: None,
            ..x
        };
        assert!(big.too_large());
        assert!(rate_limited("t", &big)
            .message
            .starts_with("Request too large"));
        assert_eq!(big.info().remaining, 0);
    }
}
