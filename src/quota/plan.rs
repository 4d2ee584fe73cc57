//! Which rules apply to a request, the counter each one uses, and how many tokens to
//! reserve.

use super::config::{Dimension, Quotas, Rule};
use super::identity::Caller;
use super::meter::{CountMode, Meter};
use super::window::Window;
use std::fmt::Write;

/// What the body of a routed request tells the quota logic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    /// The model the client asked for (may be an alias or `provider/model`).
    pub requested_model: &'a str,
    /// The upstream model after routing.
    pub model: &'a str,
    pub provider: &'a str,
    /// Estimated input tokens (see `meter::estimate_input_tokens`).
    pub estimated_input: u64,
    /// `max_completion_tokens`/`max_tokens`/`max_output_tokens` from the body.
    pub max_output: Option<u64>,
    /// False for endpoints without output tokens (embeddings): nothing is reserved for
    /// output.
    pub expects_output: bool,
}

/// One rule's counter for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// Index in `Quotas::rules`.
    pub rule: usize,
    pub name: String,
    pub limit: u64,
    pub window: Window,
    /// Shared-data key of the counter (local mode).
    pub key: String,
    /// `group_by` dimensions with this request's values (global mode descriptor entries).
    pub group: Vec<(&'static str, String)>,
}

/// The quota work for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub consumer: String,
    pub meter: Meter,
    /// Tokens reserved at admission (by the meter: estimated input and/or output budget).
    pub reserved: u64,
    pub charges: Vec<Charge>,
}

impl Plan {
    /// No rule matched: nothing to reserve or settle.
    pub fn is_empty(&self) -> bool {
        self.charges.is_empty()
    }
}

/// Prefix of every counter key in shared data.
pub const KEY_PREFIX: &str = "llm_gateway.quota.v1";

fn rule_matches(r: &Rule, caller: &Caller, f: &RequestFacts<'_>) -> bool {
    r.consumer.as_ref().is_none_or(|g| g.matches(&caller.name))
        && r.model
            .as_ref()
            .is_none_or(|g| g.matches(f.model) || g.matches(f.requested_model))
        && r.provider.as_ref().is_none_or(|g| g.matches(f.provider))
}

/// `llm_gateway.quota.v1|<rule>|<window>|<dim>=<len>:<value>|…` — values are
/// length-prefixed, so no value can forge another counter's key.
pub fn counter_key(rule: &str, window: Window, group: &[(&'static str, String)]) -> String {
    let need = group
        .iter()
        .map(|(d, v)| d.len() + v.len() + 8)
        .sum::<usize>();
    let mut key = String::with_capacity(KEY_PREFIX.len() + rule.len() + 24 + need);
    let _ = write!(key, "{KEY_PREFIX}|{}:{rule}|{window}", rule.len());
    for (dim, value) in group {
        let _ = write!(key, "|{dim}={}:{value}", value.len());
    }
    key
}

impl Quotas {
    /// The meter for an upstream model: weights from the first matching `weights` entry
    /// with `count: "weighted"`, else the plain count mode.
    pub fn meter_for(&self, model: &str) -> Meter {
        if self.count == CountMode::Weighted {
            if let Some((_, m)) = self.weights.iter().find(|(g, _)| g.matches(model)) {
                return *m;
            }
        }
        Meter::new(self.count)
    }

    /// The rules that apply and the reservation: estimated input plus the output budget
    /// (the request's max tokens, else `default_max_tokens`; 0 without output), costed by
    /// the meter (no input is assumed cached).
    pub fn plan(&self, caller: &Caller, f: &RequestFacts<'_>) -> Plan {
        let meter = self.meter_for(f.model);
        let output = if f.expects_output {
            f.max_output.unwrap_or(self.default_max_tokens)
        } else {
            0
        };
        let reserved = meter.cost(f.estimated_input, 0, output);
        let charges = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| rule_matches(r, caller, f))
            .map(|(i, r)| {
                let group: Vec<(&'static str, String)> = r
                    .group_by
                    .iter()
                    .map(|d| {
                        let v = match d {
                            Dimension::Consumer => caller.name.clone(),
                            Dimension::Model => f.model.to_string(),
                            Dimension::Provider => f.provider.to_string(),
                        };
                        (d.as_str(), v)
                    })
                    .collect();
                Charge {
                    rule: i,
                    name: r.name.clone(),
                    limit: r.limit,
                    window: r.window,
                    key: counter_key(&r.name, r.window, &group),
                    group,
                }
            })
            .collect();
        Plan {
            consumer: caller.name.clone(),
            meter,
            reserved,
            charges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::config::Sections;
    use crate::quota::identity::Source;

    fn quotas(json: &str) -> Quotas {
        Sections::parse(json.as_bytes(), &["openai", "groq"])
            .unwrap()
            .unwrap()
            .quotas
            .unwrap()
    }

    fn caller(name: &str) -> Caller {
        Caller {
            name: name.into(),
            consumer: None,
            source: Source::Header,
        }
    }

    fn facts<'a>(model: &'a str, provider: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            requested_model: model,
            model,
            provider,
            estimated_input: 100,
            max_output: None,
            expects_output: true,
        }
    }

    const RULES: &str = r#"{"identity":{"header":"x-c"},"quotas":{"default_max_tokens":1000,"rules":[
        {"name":"all","limit":1000000,"window":"day"},
        {"name":"per-consumer","limit":50000,"window":"hour","group_by":["consumer","model"]},
        {"name":"gpt4o","model":"gpt-4o*","provider":"openai","limit":30000,"window":"minute"},
        {"name":"team-b","consumer":"team-b","limit":100,"window":"month"},
        {"name":"groq","provider":"groq","limit":10,"window":"second"}
    ]}}"#;

    #[test]
    fn rules_match_by_any_combination() {
        let q = quotas(RULES);
        let names = |p: &Plan| p.charges.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let p = q.plan(&caller("team-a"), &facts("gpt-4o-mini", "openai"));
        assert_eq!(names(&p), ["all", "per-consumer", "gpt4o"]);
        let p = q.plan(&caller("team-b"), &facts("llama", "groq"));
        assert_eq!(names(&p), ["all", "per-consumer", "team-b", "groq"]);
        // The model pattern also matches the requested name (an alias).
        let mut f = facts("llama-3.1-8b", "openai");
        f.requested_model = "gpt-4o-fast";
        assert!(names(&q.plan(&caller("x"), &f)).contains(&"gpt4o".to_string()));
    }

    #[test]
    fn reservation_is_input_plus_output_budget() {
        let q = quotas(RULES);
        let mut f = facts("m", "openai");
        assert_eq!(q.plan(&caller("a"), &f).reserved, 1100);
        f.max_output = Some(50);
        assert_eq!(q.plan(&caller("a"), &f).reserved, 150);
        f.expects_output = false;
        assert_eq!(q.plan(&caller("a"), &f).reserved, 100);
    }

    #[test]
    fn counter_keys_group_and_cannot_collide() {
        let q = quotas(RULES);
        let p = q.plan(&caller("team-a"), &facts("gpt-4o", "openai"));
        assert_eq!(p.charges[0].key, "llm_gateway.quota.v1|3:all|day");
        assert_eq!(
            p.charges[1].key,
            "llm_gateway.quota.v1|12:per-consumer|hour|consumer=6:team-a|model=6:gpt-4o"
        );
        assert_eq!(
            p.charges[1].group,
            vec![
                ("consumer", "team-a".to_string()),
                ("model", "gpt-4o".to_string())
            ]
        );
        let a = counter_key("r", Window::Day, &[("consumer", "a|model=1:b".into())]);
        let b = counter_key(
            "r",
            Window::Day,
            &[("consumer", "a".into()), ("model", "b".into())],
        );
        assert_ne!(a, b);
    }

    #[test]
    fn weighted_meter_per_model() {
        let q = quotas(
            r#"{"quotas":{"count":"weighted","weights":[
                {"match":"gpt-4o*","input":1,"output":4,"cached_input":0.5},
                {"match":"*","output":2}],
               "rules":[{"name":"r","limit":10,"window":"day"}]}}"#,
        );
        assert_eq!(q.meter_for("gpt-4o"), Meter::weighted(1000, 4000, 500));
        assert_eq!(q.meter_for("llama"), Meter::weighted(1000, 2000, 1000));
        let mut f = facts("gpt-4o", "openai");
        f.max_output = Some(10);
        assert_eq!(q.plan(&caller("a"), &f).reserved, 100 + 40);
        let plain = quotas(
            r#"{"quotas":{"count":"output","rules":[{"name":"r","limit":10,"window":"day"}]}}"#,
        );
        assert_eq!(plain.meter_for("x"), Meter::new(CountMode::Output));
    }
}
