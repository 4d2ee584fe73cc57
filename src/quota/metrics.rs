//! Quota metric names and labels, in the `name;label=value` scheme of `crate::metrics`
//! (each new label needs a `stats_tags` entry, see docs/quotas.md).

use super::identity::Caller;
use crate::metrics::label_value;

/// Requests a quota rule admitted: `rule`, `consumer`.
pub const ALLOWED: &str = "llm_gateway_quota_allowed_total";
/// Requests a quota rule refused with 429: `rule`, `consumer`.
pub const LIMITED: &str = "llm_gateway_quota_limited_total";
/// Tokens charged to a consumer (after correction): `consumer`, `type` = `input`,
/// `output` or `charged` (the metered cost).
pub const CONSUMER_TOKENS: &str = "llm_gateway_consumer_tokens_total";
/// Quota machinery failures: `reason` = `busy` (CAS retries exhausted),
/// `service_failure_allowed`, `service_failure_denied`.
pub const ERRORS: &str = "llm_gateway_quota_errors_total";

/// Labels these metrics add to `crate::metrics::LABELS`.
pub const LABELS: &[&str] = &["rule", "consumer"];

/// The `consumer` label: configured consumers and `anonymous` by name; callers named by
/// a header or a JWT claim that are not configured share `unlisted`, so a stream of
/// distinct subjects cannot grow Envoy's stats without bound.
pub fn consumer_label(caller: &Caller) -> String {
    if caller.is_listed() {
        label_value(&caller.name)
    } else {
        "unlisted".to_string()
    }
}

pub fn allowed(rule: &str, caller: &Caller) -> String {
    format!(
        "{ALLOWED};rule={};consumer={}",
        label_value(rule),
        consumer_label(caller)
    )
}

pub fn limited(rule: &str, caller: &Caller) -> String {
    format!(
        "{LIMITED};rule={};consumer={}",
        label_value(rule),
        consumer_label(caller)
    )
}

/// `kind`: `input`, `output` or `charged`.
pub fn consumer_tokens(caller: &Caller, kind: &str) -> String {
    format!(
        "{CONSUMER_TOKENS};consumer={};type={}",
        consumer_label(caller),
        label_value(kind)
    )
}

pub fn error(reason: &str) -> String {
    format!("{ERRORS};reason={}", label_value(reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::identity::Source;

    #[test]
    fn names() {
        let listed = Caller {
            name: "team a".into(),
            consumer: Some(0),
            source: Source::ApiKey,
        };
        let jwt = Caller {
            name: "user-123".into(),
            consumer: None,
            source: Source::Jwt,
        };
        let anon = Caller {
            name: "anonymous".into(),
            consumer: None,
            source: Source::Anonymous,
        };
        assert_eq!(
            allowed("daily", &listed),
            "llm_gateway_quota_allowed_total;rule=daily;consumer=team_a"
        );
        assert_eq!(
            limited("d;x", &jwt),
            "llm_gateway_quota_limited_total;rule=d_x;consumer=unlisted"
        );
        assert_eq!(
            consumer_tokens(&anon, "input"),
            "llm_gateway_consumer_tokens_total;consumer=anonymous;type=input"
        );
        assert_eq!(error("busy"), "llm_gateway_quota_errors_total;reason=busy");
    }
}
