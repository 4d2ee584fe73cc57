//! Quota metric names and labels, in the `name;label=value` scheme of `crate::metrics`
//! (each new label needs a `stats_tags` entry, see docs/quotas.md).

use crate::metrics::Label;
use crate::quota::identity::Caller;
use std::fmt;

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
pub fn consumer_label(caller: &Caller) -> Label<'_> {
    if caller.is_listed() {
        Label(&caller.name)
    } else {
        Label("unlisted")
    }
}

/// A quota metric name with its labels, written straight into the metric-name buffer
/// (`crate::metrics::Metrics::add`): nothing is allocated per request.
pub struct Name<'a> {
    metric: &'static str,
    first: (&'static str, Label<'a>),
    second: Option<(&'static str, Label<'a>)>,
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, v) = self.first;
        write!(f, "{};{k}={v}", self.metric)?;
        if let Some((k, v)) = self.second {
            write!(f, ";{k}={v}")?;
        }
        Ok(())
    }
}

pub fn allowed<'a>(rule: &'a str, caller: &'a Caller) -> Name<'a> {
    Name {
        metric: ALLOWED,
        first: ("rule", Label(rule)),
        second: Some(("consumer", consumer_label(caller))),
    }
}

pub fn limited<'a>(rule: &'a str, caller: &'a Caller) -> Name<'a> {
    Name {
        metric: LIMITED,
        first: ("rule", Label(rule)),
        second: Some(("consumer", consumer_label(caller))),
    }
}

/// `kind`: `input`, `output` or `charged`.
pub fn consumer_tokens<'a>(caller: &'a Caller, kind: &'a str) -> Name<'a> {
    Name {
        metric: CONSUMER_TOKENS,
        first: ("consumer", consumer_label(caller)),
        second: Some(("type", Label(kind))),
    }
}

pub fn error(reason: &str) -> Name<'_> {
    Name {
        metric: ERRORS,
        first: ("reason", Label(reason)),
        second: None,
    }
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
            allowed("daily", &listed).to_string(),
            "llm_gateway_quota_allowed_total;rule=daily;consumer=team_a"
        );
        assert_eq!(
            limited("d;x", &jwt).to_string(),
            "llm_gateway_quota_limited_total;rule=d_x;consumer=unlisted"
        );
        assert_eq!(
            consumer_tokens(&anon, "input").to_string(),
            "llm_gateway_consumer_tokens_total;consumer=anonymous;type=input"
        );
        assert_eq!(
            error("busy").to_string(),
            "llm_gateway_quota_errors_total;reason=busy"
        );
    }
}
