//! Global-mode corrections waiting for the root context's next tick.
//!
//! A correction has no answer anyone waits for, so corrections are sent from the root
//! context on its tick rather than from the request that ends. Corrections for the same
//! descriptors (same rate limit cluster, domain, rules, dimension values and limits) add
//! up into one `ShouldRateLimit` call per tick: under load a consumer's requests on one
//! worker cost one correction call per tick instead of one per request. The service sees
//! the same total (it counts `hits_addend`), at most one tick later.

use std::collections::BTreeMap;

use super::rls::Correction;

/// A gRPC call for the root context to make: `ShouldRateLimit(message)` on `cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCall {
    pub cluster: String,
    pub message: Vec<u8>,
    pub timeout_ms: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    cluster: String,
    timeout_ms: u64,
    /// The encoded request without `hits_addend` (domain and descriptors).
    target: Vec<u8>,
}

/// The corrections queued since the last tick, merged by target.
#[derive(Debug, Default)]
pub struct Outbox {
    queued: BTreeMap<Key, u64>,
}

impl Outbox {
    pub fn push(&mut self, cluster: &str, timeout_ms: u64, correction: Correction) {
        let key = Key {
            cluster: cluster.to_string(),
            timeout_ms,
            target: correction.target,
        };
        let hits = self.queued.entry(key).or_insert(0);
        *hits = hits.saturating_add(correction.hits);
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The calls to send now, one per target (more only when a target's hits exceed
    /// `hits_addend`'s `u32` range); the outbox is left empty.
    pub fn drain(&mut self) -> Vec<PendingCall> {
        let mut calls = Vec::with_capacity(self.queued.len());
        for (key, mut hits) in std::mem::take(&mut self.queued) {
            while hits > 0 {
                let part = hits.min(u64::from(u32::MAX));
                hits -= part;
                calls.push(PendingCall {
                    cluster: key.cluster.clone(),
                    message: Correction::message(&key.target, part),
                    timeout_ms: key.timeout_ms,
                });
            }
        }
        calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::rls::{Descriptor, RateLimitRequest};

    fn correction(consumer: &str, hits: u64) -> Correction {
        let req = RateLimitRequest {
            domain: "llm-gateway".to_string(),
            descriptors: vec![Descriptor {
                entries: vec![
                    ("llm_gateway_rule".to_string(), "day".to_string()),
                    ("consumer".to_string(), consumer.to_string()),
                ],
                limit: None,
            }],
            hits_addend: 0,
        };
        Correction {
            target: req.encode(),
            hits,
        }
    }

    fn decoded(calls: &[PendingCall]) -> Vec<(String, String, u32)> {
        calls
            .iter()
            .map(|c| {
                let r = RateLimitRequest::decode(&c.message).unwrap();
                let consumer = r.descriptors[0].entries[1].1.clone();
                (c.cluster.clone(), consumer, r.hits_addend)
            })
            .collect()
    }

    #[test]
    fn corrections_for_the_same_descriptors_add_up_into_one_call() {
        let mut o = Outbox::default();
        o.push("rls", 500, correction("a", 10));
        o.push("rls", 500, correction("b", 7));
        o.push("rls", 500, correction("a", 5));
        o.push("other", 500, correction("a", 1));
        let mut calls = decoded(&o.drain());
        calls.sort();
        assert_eq!(
            calls,
            vec![
                ("other".to_string(), "a".to_string(), 1),
                ("rls".to_string(), "a".to_string(), 15),
                ("rls".to_string(), "b".to_string(), 7),
            ]
        );
        assert!(o.is_empty());
        assert!(o.drain().is_empty());
    }

    #[test]
    fn hits_beyond_u32_are_split_across_calls() {
        let mut o = Outbox::default();
        o.push("rls", 500, correction("a", u64::from(u32::MAX)));
        o.push("rls", 500, correction("a", 3));
        let calls = decoded(&o.drain());
        assert_eq!(
            calls.iter().map(|c| u64::from(c.2)).collect::<Vec<_>>(),
            vec![u64::from(u32::MAX), 3]
        );
    }
}
