//! Metric names, labels and the per-VM cache of metric ids.
//!
//! Envoy metrics have no labels; the filter encodes them in the name as
//! `name;label=value;label=value` and the shipped `stats_tags` turn each `;label=value`
//! into a Prometheus label (see `envoy/envoy.yaml` and docs/metrics.md). In `/stats` the
//! names appear as `wasmcustom.<name>`.

pub mod quota;

use crate::host::{Host, MetricKind};
use crate::tokens::usage::Usage;
use std::collections::HashMap;
use std::fmt::{self, Write};

pub const REQUESTS: &str = "llm_gateway_requests_total";
pub const TOKENS: &str = "llm_gateway_tokens_total";
pub const REJECTED: &str = "llm_gateway_rejected_total";
pub const UPSTREAM_ERRORS: &str = "llm_gateway_upstream_errors_total";
// Histograms named after the OpenTelemetry GenAI metrics, with the unit in the name
// (Envoy histograms hold integers): gen_ai.server.request.duration,
// gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token,
// gen_ai.client.token.usage.
pub const DURATION: &str = "gen_ai_server_request_duration_ms";
pub const TTFT: &str = "gen_ai_server_time_to_first_token_ms";
pub const TPOT: &str = "gen_ai_server_time_per_output_token_us";
pub const TOKEN_USAGE: &str = "gen_ai_client_token_usage";

/// Every label name the filter uses, in the order they appear in names. Each needs a
/// `stats_tags` entry `(;NAME=([^;]*))` in the Envoy config.
pub const LABELS: &[&str] = &[
    "provider",
    "model",
    "operation",
    "status_class",
    "type",
    "token_type",
    "estimated",
    "reason",
];

/// One metric family: its name, kind and label names in the order names carry them.
/// Hosts that define metrics up front with real labels (the native Envoy module) define
/// exactly these; every name the filter writes is `NAME;label=value…` of one of them
/// (the fake host of the unit tests checks each name it is asked to define).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: MetricKind,
    pub labels: &'static [&'static str],
}

const PM: &[&str] = &["provider", "model"];

pub const FAMILIES: &[Family] = &[
    Family {
        name: REQUESTS,
        kind: MetricKind::Counter,
        labels: &["provider", "model", "operation", "status_class"],
    },
    Family {
        name: DURATION,
        kind: MetricKind::Histogram,
        labels: &["provider", "model", "operation"],
    },
    Family {
        name: TTFT,
        kind: MetricKind::Histogram,
        labels: PM,
    },
    Family {
        name: TPOT,
        kind: MetricKind::Histogram,
        labels: PM,
    },
    Family {
        name: UPSTREAM_ERRORS,
        kind: MetricKind::Counter,
        labels: &["provider", "model", "type"],
    },
    Family {
        name: TOKENS,
        kind: MetricKind::Counter,
        labels: &["provider", "model", "type", "estimated"],
    },
    Family {
        name: TOKEN_USAGE,
        kind: MetricKind::Histogram,
        labels: &["provider", "model", "token_type"],
    },
    Family {
        name: REJECTED,
        kind: MetricKind::Counter,
        labels: &["reason"],
    },
    Family {
        name: crate::metrics::quota::ALLOWED,
        kind: MetricKind::Counter,
        labels: &["rule", "consumer"],
    },
    Family {
        name: crate::metrics::quota::LIMITED,
        kind: MetricKind::Counter,
        labels: &["rule", "consumer"],
    },
    Family {
        name: crate::metrics::quota::CONSUMER_TOKENS,
        kind: MetricKind::Counter,
        labels: &["consumer", "type"],
    },
    Family {
        name: crate::metrics::quota::ERRORS,
        kind: MetricKind::Counter,
        labels: &["reason"],
    },
];

/// Splits `NAME;label=value…` into the index of its family in [`FAMILIES`] and the
/// label values in order; `None` when the name, kind or label names match no family.
pub fn split_name(kind: MetricKind, name: &str) -> Option<(usize, Vec<&str>)> {
    let mut parts = name.split(';');
    let metric = parts.next()?;
    let index = FAMILIES
        .iter()
        .position(|f| f.name == metric && f.kind == kind)?;
    let family = FAMILIES.get(index)?;
    let mut values = Vec::with_capacity(family.labels.len());
    // Labels first: `zip` stops on them without taking one more part.
    for (label, part) in family.labels.iter().zip(parts.by_ref()) {
        let (k, v) = part.split_once('=')?;
        if k != *label {
            return None;
        }
        values.push(v);
    }
    (values.len() == family.labels.len() && parts.next().is_none()).then_some((index, values))
}

/// Distinct metric names one VM defines at most; past it the model label becomes
/// `other` so a client cycling model names cannot grow Envoy's stats without bound.
pub const MAX_SERIES: usize = 2000;

/// Longest label value, in characters.
const MAX_LABEL_CHARS: usize = 80;

fn label_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '@') {
        c
    } else {
        '_'
    }
}

/// A label value made safe for the `;k=v` encoding and bounded in length, written
/// without allocating (`format_args!("…;rule={}", Label(name))`). Values that are
/// already safe (the usual case) are written as they are.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a>(pub &'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_empty() {
            return f.write_str("unknown");
        }
        if v.len() <= MAX_LABEL_CHARS && v.chars().all(|c| label_char(c) == c) {
            return f.write_str(v);
        }
        v.chars()
            .take(MAX_LABEL_CHARS)
            .try_for_each(|c| f.write_char(label_char(c)))
    }
}

/// `Label(v)` as a `String`.
pub fn label_value(v: &str) -> String {
    Label(v).to_string()
}

/// Appends `Label(v)` to `out`.
fn push_label_value(out: &mut String, v: &str) {
    let _ = write!(out, "{}", Label(v));
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
    /// The ids a request records, per `provider=…;model=…;operation=…`: one lookup
    /// per request instead of a name to write and look up per value.
    series: HashMap<String, usize>,
    series_ids: Vec<RequestSeries>,
    /// Reused buffers for the metric name being looked up and the `provider=…;model=…`
    /// labels of the request being recorded: no allocation per recorded value.
    name: String,
    labels: String,
}

/// Status classes in the order of [`RequestSeries::requests`].
const STATUS_CLASSES: [&str; 6] = ["2xx", "3xx", "4xx", "5xx", "other", "reset"];

/// Token types in the order of [`RequestSeries::tokens`].
const TOKEN_TYPES: [&str; 5] = [
    "input",
    "output",
    "cached_input",
    "cache_creation_input",
    "reasoning",
];

/// Metric ids of one provider, model and operation, each defined on first use.
#[derive(Default)]
struct RequestSeries {
    requests: [Option<u32>; STATUS_CLASSES.len()],
    duration: Option<u32>,
    ttft: Option<u32>,
    tpot: Option<u32>,
    /// Per token type: reported, estimated.
    tokens: [[Option<u32>; 2]; TOKEN_TYPES.len()],
    /// Input, output.
    token_usage: [Option<u32>; 2],
}

/// Labels of one routed request.
pub struct RequestLabels<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub operation: &'a str,
}

/// What one routed request measured, recorded when it ends.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Response status; `None` when no response came (reset, client gone).
    pub status: Option<u32>,
    pub duration_ms: u64,
    /// From request start to the first content delta (streams only).
    pub ttft_ms: Option<u64>,
    pub usage: Option<Usage>,
    /// Error type reported by the provider (error body or mid-stream error event).
    pub upstream_error: Option<String>,
}

impl Outcome {
    /// Mean time per output token after the first, in microseconds.
    pub fn time_per_output_token_us(&self) -> Option<u64> {
        let ttft = self.ttft_ms?;
        let out = self.usage.as_ref()?.output;
        if out < 2 {
            return None;
        }
        let after_first_us = self.duration_ms.saturating_sub(ttft).saturating_mul(1000);
        Some(after_first_us / (out - 1))
    }
}

impl Metrics {
    fn id(&mut self, host: &mut dyn Host, kind: MetricKind, name: fmt::Arguments) -> Option<u32> {
        self.name.clear();
        let _ = self.name.write_fmt(name);
        if let Some(id) = self.ids.get(self.name.as_str()) {
            return Some(*id);
        }
        let id = host.define_metric(kind, &self.name)?;
        self.ids.insert(self.name.clone(), id);
        Some(id)
    }

    /// Adds `delta` to the counter `name` (`name;label=value…`), defining it on first use.
    pub fn add(&mut self, host: &mut dyn Host, name: fmt::Arguments, delta: u64) {
        if delta == 0 {
            return;
        }
        if let Some(id) = self.id(host, MetricKind::Counter, name) {
            host.increment_metric(id, delta);
        }
    }

    /// One routed request ended (completed, failed, reset or abandoned).
    pub fn record_request(&mut self, host: &mut dyn Host, l: &RequestLabels<'_>, o: &Outcome) {
        let mut pm = std::mem::take(&mut self.labels);
        pm.clear();
        pm.push_str("provider=");
        push_label_value(&mut pm, l.provider);
        pm.push_str(";model=");
        if self.ids.len() >= MAX_SERIES {
            pm.push_str("other");
        } else {
            push_label_value(&mut pm, l.model);
        }
        self.record_request_with(host, &pm, l.operation, o);
        self.labels = pm;
    }

    /// The index in `series_ids` of `pm` and `op`'s ids.
    fn series_index(&mut self, pm: &str, op: &str) -> usize {
        self.name.clear();
        self.name.push_str(pm);
        self.name.push_str(";operation=");
        self.name.push_str(op);
        if let Some(at) = self.series.get(self.name.as_str()) {
            return *at;
        }
        let at = self.series_ids.len();
        self.series_ids.push(RequestSeries::default());
        self.series.insert(self.name.clone(), at);
        at
    }

    /// The id in `slot` of the series at `at`; on first use defined from `name`.
    fn series_id(
        &mut self,
        host: &mut dyn Host,
        at: usize,
        slot: impl Fn(&mut RequestSeries) -> Option<&mut Option<u32>>,
        kind: MetricKind,
        name: fmt::Arguments,
    ) -> Option<u32> {
        if let Some(id) = self.series_ids.get_mut(at).and_then(&slot).and_then(|s| *s) {
            return Some(id);
        }
        let id = self.id(host, kind, name)?;
        if let Some(s) = self.series_ids.get_mut(at).and_then(slot) {
            *s = Some(id);
        }
        Some(id)
    }

    fn record_request_with(&mut self, host: &mut dyn Host, pm: &str, op: &str, o: &Outcome) {
        let at = self.series_index(pm, op);
        let class = status_class(o.status);
        let c = STATUS_CLASSES.iter().position(|k| *k == class).unwrap_or(0);
        let counter = MetricKind::Counter;
        let histogram = MetricKind::Histogram;
        let name = format_args!("{REQUESTS};{pm};operation={op};status_class={class}");
        if let Some(id) = self.series_id(host, at, |s| s.requests.get_mut(c), counter, name) {
            host.increment_metric(id, 1);
        }
        let name = format_args!("{DURATION};{pm};operation={op}");
        if let Some(id) = self.series_id(host, at, |s| Some(&mut s.duration), histogram, name) {
            host.record_metric(id, o.duration_ms);
        }
        if let Some(ttft) = o.ttft_ms {
            let name = format_args!("{TTFT};{pm}");
            if let Some(id) = self.series_id(host, at, |s| Some(&mut s.ttft), histogram, name) {
                host.record_metric(id, ttft);
            }
        }
        if let Some(tpot) = o.time_per_output_token_us() {
            let name = format_args!("{TPOT};{pm}");
            if let Some(id) = self.series_id(host, at, |s| Some(&mut s.tpot), histogram, name) {
                host.record_metric(id, tpot);
            }
        }
        if let Some(kind) = &o.upstream_error {
            let kind = label_value(kind);
            self.add(host, format_args!("{UPSTREAM_ERRORS};{pm};type={kind}"), 1);
        }
        if let Some(u) = &o.usage {
            let (e, est) = if u.estimated {
                (1, "true")
            } else {
                (0, "false")
            };
            let counts = [
                u.input,
                u.output,
                u.cached_input,
                u.cache_creation_input,
                u.reasoning,
            ];
            for (t, (kind, n)) in TOKEN_TYPES.iter().zip(counts).enumerate() {
                if n == 0 {
                    continue;
                }
                let name = format_args!("{TOKENS};{pm};type={kind};estimated={est}");
                let id =
                    self.series_id(host, at, |s| s.tokens.get_mut(t)?.get_mut(e), counter, name);
                if let Some(id) = id {
                    host.increment_metric(id, n);
                }
            }
            for (i, (kind, n)) in [("input", u.input), ("output", u.output)]
                .into_iter()
                .enumerate()
            {
                let name = format_args!("{TOKEN_USAGE};{pm};token_type={kind}");
                let id = self.series_id(host, at, |s| s.token_usage.get_mut(i), histogram, name);
                if let Some(id) = id {
                    host.record_metric(id, n);
                }
            }
        }
    }

    /// The gateway answered the request itself (`reason` is the error code).
    pub fn record_rejection(&mut self, host: &mut dyn Host, reason: &str) {
        let reason = label_value(reason);
        self.add(host, format_args!("{REJECTED};reason={reason}"), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_their_family_and_label_values() {
        let (i, v) = split_name(
            MetricKind::Counter,
            "llm_gateway_requests_total;provider=p;model=m;operation=chat;status_class=2xx",
        )
        .unwrap();
        assert_eq!(FAMILIES[i].name, REQUESTS);
        assert_eq!(v, ["p", "m", "chat", "2xx"]);
        // Wrong kind, missing, extra or misnamed labels match no family.
        assert!(split_name(MetricKind::Histogram, "llm_gateway_rejected_total;reason=x").is_none());
        assert!(split_name(MetricKind::Counter, "llm_gateway_rejected_total").is_none());
        assert!(split_name(
            MetricKind::Counter,
            "llm_gateway_rejected_total;reason=x;a=b"
        )
        .is_none());
        assert!(split_name(MetricKind::Counter, "llm_gateway_rejected_total;cause=x").is_none());
        // Every family's labels are known to the shipped stats_tags.
        for f in FAMILIES {
            for l in f.labels {
                assert!(
                    LABELS.contains(l) || crate::metrics::quota::LABELS.contains(l),
                    "{l}"
                );
            }
        }
    }

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
        // Exactly 80 safe characters pass whole; non-ASCII characters count as one each.
        assert_eq!(label_value(&"y".repeat(80)), "y".repeat(80));
        assert_eq!(label_value(&"é".repeat(100)), "_".repeat(80));
        assert_eq!(label_value("modèle-α"), "mod_le-_");
        // Written in place, as metric names are built.
        assert_eq!(
            format!("m;model={};type={}", Label("a b"), Label("")),
            "m;model=a_b;type=unknown"
        );
    }

    #[test]
    fn shipped_envoy_config_tags_every_label() {
        let yaml = include_str!("../../envoy/envoy.yaml");
        for label in LABELS.iter().chain(crate::metrics::quota::LABELS) {
            let tag = format!("tag_name: {label}, regex: \"(;{label}=([^;]*))\"");
            assert!(
                yaml.contains(&tag),
                "envoy/envoy.yaml lacks the stats_tag for `{label}`"
            );
        }
    }

    /// Each series is defined once and found again by its labels; every value lands
    /// on the name of its own labels.
    #[test]
    fn request_series_are_defined_once_and_recorded_under_their_names() {
        use crate::host::fake::FakeHost;
        let mut host = FakeHost::default();
        let mut m = Metrics::default();
        let labels = |model| RequestLabels {
            provider: "openai",
            model,
            operation: "chat",
        };
        let outcome = |status, estimated, input| Outcome {
            status,
            duration_ms: 7,
            ttft_ms: Some(2),
            usage: Some(Usage {
                input,
                output: 3,
                estimated,
                ..Usage::default()
            }),
            ..Outcome::default()
        };
        for _ in 0..3 {
            m.record_request(&mut host, &labels("a"), &outcome(Some(200), false, 10));
        }
        m.record_request(&mut host, &labels("a"), &outcome(Some(503), true, 0));
        m.record_request(&mut host, &labels("b b"), &outcome(None, false, 1));
        let pm = "provider=openai;model=a";
        let c = |name: String| host.counter(&name);
        assert_eq!(
            c(format!("{REQUESTS};{pm};operation=chat;status_class=2xx")),
            3
        );
        assert_eq!(
            c(format!("{REQUESTS};{pm};operation=chat;status_class=5xx")),
            1
        );
        assert_eq!(c(format!("{TOKENS};{pm};type=input;estimated=false")), 30);
        assert_eq!(c(format!("{TOKENS};{pm};type=output;estimated=false")), 9);
        assert_eq!(c(format!("{TOKENS};{pm};type=output;estimated=true")), 3);
        assert_eq!(c(format!("{TOKENS};{pm};type=input;estimated=true")), 0);
        let pm_b = "provider=openai;model=b_b";
        assert_eq!(
            c(format!(
                "{REQUESTS};{pm_b};operation=chat;status_class=reset"
            )),
            1
        );
        assert_eq!(c(format!("{TOKENS};{pm_b};type=input;estimated=false")), 1);
        let h = |name: String| host.histograms.get(&name).cloned().unwrap_or_default();
        assert_eq!(h(format!("{DURATION};{pm};operation=chat")), [7, 7, 7, 7]);
        assert_eq!(h(format!("{TTFT};{pm}")), [2, 2, 2, 2]);
        assert_eq!(
            h(format!("{TOKEN_USAGE};{pm};token_type=input")),
            [10, 10, 10, 0]
        );
        assert_eq!(h(format!("{TOKEN_USAGE};{pm_b};token_type=output")), [3]);
        // Every name was defined once.
        let mut names: Vec<_> = host.metric_names.iter().map(|(_, n)| n.clone()).collect();
        let defined = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), defined);
    }

    #[test]
    fn time_per_output_token() {
        let mut o = Outcome {
            duration_ms: 1100,
            ttft_ms: Some(100),
            usage: Some(Usage {
                output: 11,
                ..Usage::default()
            }),
            ..Outcome::default()
        };
        assert_eq!(o.time_per_output_token_us(), Some(100_000));
        o.usage = Some(Usage {
            output: 1,
            ..Usage::default()
        });
        assert_eq!(o.time_per_output_token_us(), None);
        o.ttft_ms = None;
        assert_eq!(o.time_per_output_token_us(), None);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(Some(200)), "2xx");
        assert_eq!(status_class(Some(429)), "4xx");
        assert_eq!(status_class(Some(503)), "5xx");
        assert_eq!(status_class(None), "reset");
    }
}
