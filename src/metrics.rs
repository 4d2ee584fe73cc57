//! Metric names, labels and the per-VM cache of metric ids.
//!
//! Envoy metrics have no labels; the filter encodes them in the name as
//! `name;label=value;label=value` and the shipped `stats_tags` turn each `;label=value`
//! into a Prometheus label (see `envoy/envoy.yaml` and docs/metrics.md). In `/stats` the
//! names appear as `wasmcustom.<name>`.

use crate::host::{Host, MetricKind};
use crate::usage::Usage;
use std::collections::HashMap;

pub const REQUESTS: &str = "llm_gateway_requests_total";
pub const TOKENS: &str = "llm_gateway_tokens_total";
pub const DURATION: &str = "llm_gateway_request_duration_ms";
pub const REJECTED: &str = "llm_gateway_rejected_total";

/// Every label name the filter uses, in the order they appear in names. Each needs a
/// `stats_tags` entry `(;NAME=([^;]*))` in the Envoy config.
pub const LABELS: &[&str] = &[
    "provider",
    "model",
    "operation",
    "status_class",
    "type",
    "estimated",
    "reason",
];

/// Distinct metric names one VM defines at most; past it the model label becomes
/// `other` so a client cycling model names cannot grow Envoy's stats without bound.
pub const MAX_SERIES: usize = 2000;

/// Makes a label value safe for the `;k=v` encoding and bounded in length.
pub fn label_value(v: &str) -> String {
    let mut out: String = v
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

pub fn status_class(status: Option<u32>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        Some(_) => "other",
        None => "reset",
    }
}

/// Cache of defined metric ids for one VM (all requests of one Envoy worker).
#[derive(Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
}

/// Labels of one routed request.
pub struct RequestLabels<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub operation: &'a str,
}

impl Metrics {
    fn id(&mut self, host: &mut dyn Host, kind: MetricKind, name: String) -> Option<u32> {
        if let Some(id) = self.ids.get(&name) {
            return Some(*id);
        }
        let id = host.define_metric(kind, &name)?;
        self.ids.insert(name, id);
        Some(id)
    }

    fn model_label(&self, model: &str) -> String {
        if self.ids.len() >= MAX_SERIES {
            "other".to_string()
        } else {
            label_value(model)
        }
    }

    fn add(&mut self, host: &mut dyn Host, name: String, delta: u64) {
        if delta == 0 {
            return;
        }
        if let Some(id) = self.id(host, MetricKind::Counter, name) {
            host.increment_metric(id, delta);
        }
    }

    /// One routed request finished (or was reset).
    pub fn record_request(
        &mut self,
        host: &mut dyn Host,
        l: &RequestLabels<'_>,
        status: Option<u32>,
        duration_ms: u64,
        usage: Option<&Usage>,
    ) {
        let provider = label_value(l.provider);
        let model = self.model_label(l.model);
        let op = l.operation;
        let class = status_class(status);
        self.add(
            host,
            format!(
                "{REQUESTS};provider={provider};model={model};operation={op};status_class={class}"
            ),
            1,
        );
        let name = format!("{DURATION};provider={provider};model={model};operation={op}");
        if let Some(id) = self.id(host, MetricKind::Histogram, name) {
            host.record_metric(id, duration_ms);
        }
        if let Some(u) = usage {
            let est = if u.estimated { "true" } else { "false" };
            for (kind, n) in [
                ("input", u.input),
                ("output", u.output),
                ("cached_input", u.cached_input),
                ("cache_creation_input", u.cache_creation_input),
                ("reasoning", u.reasoning),
            ] {
                self.add(
                    host,
                    format!(
                        "{TOKENS};provider={provider};model={model};type={kind};estimated={est}"
                    ),
                    n,
                );
            }
        }
    }

    /// The gateway answered the request itself (`reason` is the error code).
    pub fn record_rejection(&mut self, host: &mut dyn Host, reason: &str) {
        let reason = label_value(reason);
        self.add(host, format!("{REJECTED};reason={reason}"), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_safe() {
        assert_eq!(label_value("gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(
            label_value("meta-llama/Llama-3.1-8B"),
            "meta-llama/Llama-3.1-8B"
        );
        assert_eq!(label_value("a;b=c d"), "a_b_c_d");
        assert_eq!(
            label_value("us.anthropic.claude:0"),
            "us.anthropic.claude_0"
        );
        assert_eq!(label_value(""), "unknown");
        assert_eq!(label_value(&"x".repeat(500)).len(), 80);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(200)), "2xx");
        assert_eq!(status_class(Some(429)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "reset");
    }
}
