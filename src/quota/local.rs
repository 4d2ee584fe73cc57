//! Local mode: exact token counters in proxy-wasm shared data, shared by every worker
//! (every Wasm VM) of one Envoy process.
//!
//! Each counter is one shared-data key (see `plan::counter_key`) holding
//! `(window start, tokens used)`. Every change is a compare-and-swap: read the value and
//! its `cas`, write the new value with that `cas`, and start over on `CasMismatch`, so
//! concurrent workers never lose an update. The window lives in the value: a new window
//! starts by overwriting an older window's value, and a key is created once per Envoy
//! process.
//!
//! **Creating a key.** proxy-wasm has no "create if absent", and `set` with `cas` 0 (or
//! none) is unconditional, so two workers creating the same key could overwrite each
//! other. A missing key is therefore created with the empty value and `cas = CREATE_CAS`
//! (`u32::MAX`): the host ignores the `cas` of an absent key, so the write creates it,
//! but a key another worker created meanwhile has a different `cas` (the host hands them
//! out from a counter starting at 1), so the write fails instead of overwriting it. Then
//! the loop reads again and proceeds with a normal CAS.
//!
//! **Bounded retries.** At most [`MAX_CAS_ATTEMPTS`] reads+writes per counter. When they
//! are exhausted, a reservation fails *closed* ([`Busy`]: the filter answers 503
//! `quota_busy`, the request is not admitted uncounted) and anything it already reserved
//! on other rules is given back; a settlement leaves that counter as reserved (the
//! consumer may be charged the reservation instead of the actual usage).

use super::errors::Exceeded;
use super::headers::RateLimitInfo;
use super::meter::Meter;
use super::plan::Plan;
use super::window::Span;
use crate::tokens::usage::Usage;

/// The host refused a write because the value changed since it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasMismatch;

/// What the quota logic needs from proxy-wasm shared data
/// (`get_shared_data` / `set_shared_data`).
pub trait SharedStore {
    /// The value and its cas; `(None, None)` when the key does not exist.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes when `cas` is `None`/0 or equals the current cas (or the key is absent).
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch>;
}

/// Reads+writes tried per counter before giving up.
pub const MAX_CAS_ATTEMPTS: u32 = 64;
/// The cas used to create a missing key (see the module docs).
pub const CREATE_CAS: u32 = u32::MAX;

/// The counters could not be updated within [`MAX_CAS_ATTEMPTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    pub rule: String,
}

const MAGIC: &[u8; 2] = b"q1";

/// The value of one counter key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Start of the window `used` belongs to (Unix seconds).
    pub window: u64,
    pub used: u64,
}

impl Counter {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(18);
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&self.window.to_le_bytes());
        v.extend_from_slice(&self.used.to_le_bytes());
        v
    }

    /// `None` for anything but exactly what `encode` writes.
    pub fn decode(b: &[u8]) -> Option<Counter> {
        if b.len() != 18 || b.get(..2)? != MAGIC {
            return None;
        }
        let w: [u8; 8] = b.get(2..10)?.try_into().ok()?;
        let u: [u8; 8] = b.get(10..18)?.try_into().ok()?;
        Some(Counter {
            window: u64::from_le_bytes(w),
            used: u64::from_le_bytes(u),
        })
    }

    /// Tokens used in `window` (0 when the stored value belongs to another window).
    fn used_in(value: Option<Counter>, window: u64) -> u64 {
        match value {
            Some(c) if c.window == window => c.used,
            _ => 0,
        }
    }
}

enum Step<T> {
    /// Write this value (CAS), then return T.
    Write(Counter, T),
    /// Return T without writing.
    Done(T),
}

/// The CAS loop. `f` sees the current value (`None` when unreadable: a foreign or
/// corrupt value is replaced) and decides. Returns `None` when attempts run out.
fn update<T>(
    store: &mut dyn SharedStore,
    key: &str,
    mut f: impl FnMut(Option<Counter>) -> Step<T>,
) -> Option<T> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (value, cas) = store.get(key);
        let Some(bytes) = value else {
            // Create-if-absent; whether it wins or not, read again.
            let _ = store.set(key, &Counter::default().encode(), Some(CREATE_CAS));
            continue;
        };
        // A present key always has a non-zero cas; never write unconditionally.
        let cas = cas.filter(|c| *c != 0).unwrap_or(CREATE_CAS);
        match f(Counter::decode(&bytes)) {
            Step::Done(t) => return Some(t),
            Step::Write(next, t) => {
                if store.set(key, &next.encode(), Some(cas)).is_ok() {
                    return Some(t);
                }
            }
        }
    }
    None
}

/// Tokens held on one counter by one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub rule: usize,
    pub name: String,
    pub key: String,
    pub span: Span,
    pub limit: u64,
    pub amount: u64,
    /// The counter right after this reservation.
    pub used_after: u64,
}

/// The tokens a request holds until it is settled. Carries each counter's window, so a
/// settlement after the window rolled over leaves the new window alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub holds: Vec<Hold>,
    pub meter: Meter,
}

/// The outcome of [`reserve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Every matching rule covered the reservation (also when no rule matched).
    Admitted(Reservation),
    /// A rule could not cover it; nothing stays reserved.
    Denied(Exceeded),
}

/// How a request ended, for [`Reservation::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Usage is known: the reservation is replaced by its cost.
    Usage(Usage),
    /// Nothing was consumed (the request never reached the provider, or the provider
    /// answered an error without usage): the reservation is refunded.
    Release,
    /// Consumption is unknown (e.g. the client went away mid-stream): the reservation
    /// stands as the charge.
    KeepReserved,
}

/// What a settlement did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Counters corrected (refund or extra charge).
    pub adjusted: usize,
    /// Counters left alone because their window ended (the reservation expired with it).
    pub expired: usize,
    /// Counters left as reserved because CAS attempts ran out.
    pub busy: usize,
}

/// Reserves `plan.reserved` tokens on every counter of the plan, or none.
///
/// A rule admits when `used + reserved ≤ limit` (a reservation of 0 still needs
/// `used < limit`). Counters are reserved one after the other; when one refuses, the
/// ones already taken are given back, so a concurrent request may briefly see them taken
/// (a possible extra 429, never an overshoot).
pub fn reserve(store: &mut dyn SharedStore, now_ns: u64, plan: &Plan) -> Result<Admission, Busy> {
    let amount = plan.reserved;
    let mut holds: Vec<Hold> = Vec::with_capacity(plan.charges.len());
    for c in &plan.charges {
        let span = c.window.span_ns(now_ns);
        let limit = c.limit;
        let result = update(store, &c.key, |cur| {
            let used = Counter::used_in(cur, span.start);
            let after = used.saturating_add(amount);
            if used.saturating_add(amount.max(1)) > limit {
                Step::Done(Err(used))
            } else if amount == 0 && cur.is_some_and(|v| v.window == span.start) {
                Step::Done(Ok(after))
            } else {
                Step::Write(
                    Counter {
                        window: span.start,
                        used: after,
                    },
                    Ok(after),
                )
            }
        });
        match result {
            Some(Ok(used_after)) => holds.push(Hold {
                rule: c.rule,
                name: c.name.clone(),
                key: c.key.clone(),
                span,
                limit,
                amount,
                used_after,
            }),
            Some(Err(used)) => {
                give_back(store, &holds);
                return Ok(Admission::Denied(Exceeded {
                    rule: c.name.clone(),
                    limit,
                    used: Some(used),
                    requested: amount,
                    reset_ns: span.reset_ns(now_ns),
                }));
            }
            None => {
                give_back(store, &holds);
                return Err(Busy {
                    rule: c.name.clone(),
                });
            }
        }
    }
    Ok(Admission::Admitted(Reservation {
        holds,
        meter: plan.meter,
    }))
}

fn give_back(store: &mut dyn SharedStore, holds: &[Hold]) {
    for h in holds {
        adjust(store, h, 0);
    }
}

enum Adjusted {
    Done,
    Expired,
    Busy,
}

/// Replaces `h.amount` by `actual` on `h`'s counter, if it is still in `h`'s window.
fn adjust(store: &mut dyn SharedStore, h: &Hold, actual: u64) -> Adjusted {
    let r = update(store, &h.key, |cur| match cur {
        Some(c) if c.window == h.span.start => Step::Write(
            Counter {
                window: c.window,
                used: c.used.saturating_sub(h.amount).saturating_add(actual),
            },
            Adjusted::Done,
        ),
        _ => Step::Done(Adjusted::Expired),
    });
    r.unwrap_or(Adjusted::Busy)
}

impl Reservation {
    /// The tightest rule after this reservation, for the `x-ratelimit-*` headers of the
    /// response (`None` when no rule matched).
    pub fn info(&self, now_ns: u64) -> Option<RateLimitInfo> {
        RateLimitInfo::tightest(self.holds.iter().map(|h| RateLimitInfo {
            limit: h.limit,
            remaining: h.limit.saturating_sub(h.used_after),
            reset_ns: h.span.reset_ns(now_ns),
        }))
    }

    /// Whether there is anything left to settle.
    pub fn is_settled(&self) -> bool {
        self.holds.is_empty()
    }

    /// Replaces the reservation by the request's real cost. Idempotent: the holds are
    /// taken out first, so a second call does nothing. A counter whose window has ended
    /// is left alone (neither refunded nor charged extra): the new window never pays for
    /// a request admitted in the old one.
    pub fn settle(&mut self, store: &mut dyn SharedStore, outcome: Outcome) -> Settled {
        let holds = std::mem::take(&mut self.holds);
        let mut s = Settled::default();
        for h in &holds {
            let actual = match outcome {
                Outcome::Usage(u) => self.meter.usage_cost(&u),
                Outcome::Release => 0,
                Outcome::KeepReserved => h.amount,
            };
            if actual == h.amount {
                continue;
            }
            match adjust(store, h, actual) {
                Adjusted::Done => s.adjusted += 1,
                Adjusted::Expired => s.expired += 1,
                Adjusted::Busy => s.busy += 1,
            }
        }
        s
    }
}

/// Creates the counter keys of rules without `group_by` ahead of traffic (call from
/// `on_configure`); optional, since `reserve` creates missing keys safely too.
pub fn precreate(store: &mut dyn SharedStore, keys: &[String]) {
    for k in keys {
        if store.get(k).0.is_none() {
            let _ = store.set(k, &Counter::default().encode(), Some(CREATE_CAS));
        }
    }
}

/// An in-memory `SharedStore` with the host's semantics (tests and benches/hot_paths.rs).
pub mod mem {
    use super::*;
    use std::collections::HashMap;

    /// Mirrors proxy-wasm-cpp-host's `SharedData`: one process-wide cas counter starting
    /// at 1 and skipping 0; `cas` 0/None writes unconditionally; a non-zero `cas` must
    /// equal the key's, except that an absent key is always created.
    #[derive(Debug, Default, Clone)]
    pub struct MemStore {
        pub data: HashMap<String, (Vec<u8>, u32)>,
        pub next_cas: u32,
        pub sets: usize,
        pub conflicts: usize,
    }

    impl MemStore {
        pub fn allocate_cas(&mut self) -> u32 {
            if self.next_cas == 0 {
                self.next_cas = 1;
            }
            let c = self.next_cas;
            self.next_cas = self.next_cas.wrapping_add(1);
            if self.next_cas == 0 {
                self.next_cas = 1;
            }
            c
        }

        pub fn counter(&self, key: &str) -> Option<Counter> {
            self.data.get(key).and_then(|(v, _)| Counter::decode(v))
        }
    }

    impl SharedStore for MemStore {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.data.get(key) {
                Some((v, c)) => (Some(v.clone()), Some(*c)),
                None => (None, None),
            }
        }

        fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
            self.sets += 1;
            if let (Some(c), Some((_, cur))) = (cas, self.data.get(key)) {
                if c != 0 && c != *cur {
                    self.conflicts += 1;
                    return Err(CasMismatch);
                }
            }
            let c = self.allocate_cas();
            self.data.insert(key.to_string(), (value.to_vec(), c));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mem::MemStore;
    use super::*;
    use crate::quota::config::Sections;
    use crate::quota::identity::{Caller, Source};
    use crate::quota::plan::RequestFacts;

    const S: u64 = 1_000_000_000;
    // 2026-11-23T05:50:53Z
    const NOW: u64 = 1_795_413_053 * S;

    fn plan_for(rules: &str, reserved_input: u64, max_output: u64) -> Plan {
        let q = Sections::parse(
            format!(r#"{{"quotas":{{"rules":{rules}}}}}"#).as_bytes(),
            &["openai"],
        )
        .unwrap()
        .unwrap()
        .quotas
        .unwrap();
        let caller = Caller {
            name: "team-a".into(),
            consumer: None,
            source: Source::Anonymous,
        };
        q.plan(
            &caller,
            &RequestFacts {
                requested_model: "gpt-4o",
                model: "gpt-4o",
                provider: "openai",
                estimated_input: reserved_input,
                max_output: Some(max_output),
                expects_output: true,
            },
        )
    }

    fn one_rule(limit: u64, reserved: u64) -> Plan {
        plan_for(
            &format!(r#"[{{"name":"r","limit":{limit},"window":"minute"}}]"#),
            reserved,
            0,
        )
    }

    fn admitted(a: Admission) -> Reservation {
        match a {
            Admission::Admitted(r) => r,
            Admission::Denied(e) => panic!("denied: {e:?}"),
        }
    }

    fn used(store: &MemStore, plan: &Plan, i: usize) -> u64 {
        store
            .counter(&plan.charges[i].key)
            .map(|c| c.used)
            .unwrap_or(0)
    }

    fn usage(input: u64, output: u64) -> Usage {
        Usage {
            input,
            output,
            ..Usage::default()
        }
    }

    #[test]
    fn counter_encoding_round_trips_and_rejects_garbage() {
        let c = Counter {
            window: 123,
            used: u64::MAX,
        };
        assert_eq!(Counter::decode(&c.encode()), Some(c));
        assert_eq!(Counter::decode(b""), None);
        assert_eq!(Counter::decode(&c.encode()[..17]), None);
        let mut bad = c.encode();
        bad[0] = b'x';
        assert_eq!(Counter::decode(&bad), None);
    }

    #[test]
    fn reserve_then_settle_refunds_or_charges_more() {
        let mut store = MemStore::default();
        let plan = plan_for(r#"[{"name":"r","limit":1000,"window":"minute"}]"#, 100, 200);
        assert_eq!(plan.reserved, 300);
        let mut r = admitted(reserve(&mut store, NOW, &plan).unwrap());
        assert_eq!(used(&store, &plan, 0), 300);
        let info = r.info(NOW).unwrap();
        assert_eq!((info.limit, info.remaining), (1000, 700));
        assert_eq!(info.reset_ns, 7 * S); // 05:50:53 → 05:51:00
                                          // Actual 80 + 20: refund 200.
        let s = r.settle(&mut store, Outcome::Usage(usage(80, 20)));
        assert_eq!(s.adjusted, 1);
        assert_eq!(used(&store, &plan, 0), 100);
        // Idempotent.
        assert_eq!(r.settle(&mut store, Outcome::Release), Settled::default());
        assert_eq!(used(&store, &plan, 0), 100);
        assert!(r.is_settled());

        // More than reserved: charged in full, even above the limit.
        let mut r = admitted(reserve(&mut store, NOW, &plan).unwrap());
        r.settle(&mut store, Outcome::Usage(usage(900, 300)));
        assert_eq!(used(&store, &plan, 0), 1300);
        match reserve(&mut store, NOW, &plan).unwrap() {
            Admission::Denied(e) => assert_eq!((e.used, e.limit), (Some(1300), 1000)),
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn release_and_keep_reserved() {
        let mut store = MemStore::default();
        let plan = one_rule(1000, 300);
        let mut r = admitted(reserve(&mut store, NOW, &plan).unwrap());
        r.settle(&mut store, Outcome::Release);
        assert_eq!(used(&store, &plan, 0), 0);
        let mut r = admitted(reserve(&mut store, NOW, &plan).unwrap());
        let s = r.settle(&mut store, Outcome::KeepReserved);
        assert_eq!((s.adjusted, used(&store, &plan, 0)), (0, 300));
    }

    #[test]
    fn exact_limit_is_admitted_one_more_is_not() {
        let mut store = MemStore::default();
        let plan = one_rule(1000, 500);
        admitted(reserve(&mut store, NOW, &plan).unwrap());
        admitted(reserve(&mut store, NOW, &plan).unwrap());
        assert_eq!(used(&store, &plan, 0), 1000);
        match reserve(&mut store, NOW, &one_rule(1000, 0)).unwrap() {
            Admission::Denied(e) => {
                assert_eq!((e.requested, e.used), (0, Some(1000)));
                assert_eq!(e.reset_ns, 7 * S);
            }
            a => panic!("{a:?}"),
        }
        // A request larger than the whole limit is "too large".
        let mut fresh = MemStore::default();
        match reserve(&mut fresh, NOW, &one_rule(1000, 1001)).unwrap() {
            Admission::Denied(e) => assert!(e.too_large()),
            a => panic!("{a:?}"),
        }
        assert_eq!(used(&fresh, &plan, 0), 0);
    }

    #[test]
    fn strictest_rule_wins_and_failed_reservations_are_rolled_back() {
        let mut store = MemStore::default();
        let plan = plan_for(
            r#"[{"name":"day","limit":100000,"window":"day"},
                {"name":"minute","limit":500,"window":"minute"},
                {"name":"hour","limit":50000,"window":"hour"}]"#,
            300,
            0,
        );
        let r = admitted(reserve(&mut store, NOW, &plan).unwrap());
        let info = r.info(NOW).unwrap();
        assert_eq!((info.limit, info.remaining), (500, 200));
        match reserve(&mut store, NOW, &plan).unwrap() {
            Admission::Denied(e) => assert_eq!(e.rule, "minute"),
            a => panic!("{a:?}"),
        }
        // The day counter was reserved then given back; the hour one never touched.
        assert_eq!(
            (
                used(&store, &plan, 0),
                used(&store, &plan, 1),
                used(&store, &plan, 2)
            ),
            (300, 300, 300)
        );
    }

    #[test]
    fn new_window_starts_from_zero_and_old_settlements_do_not_touch_it() {
        let mut store = MemStore::default();
        let plan = one_rule(1000, 600);
        let mut old = admitted(reserve(&mut store, NOW, &plan).unwrap());
        // 7 s later the minute rolled over.
        let later = NOW + 7 * S;
        let mut new = admitted(reserve(&mut store, later, &plan).unwrap());
        assert_eq!(store.counter(&plan.charges[0].key).unwrap().used, 600);
        // The old request finishes with 10 tokens: nothing is refunded into the new window.
        let s = old.settle(&mut store, Outcome::Usage(usage(10, 0)));
        assert_eq!((s.adjusted, s.expired), (0, 1));
        assert_eq!(used(&store, &plan, 0), 600);
        new.settle(&mut store, Outcome::Usage(usage(100, 0)));
        assert_eq!(used(&store, &plan, 0), 100);
    }

    #[test]
    fn corrupt_values_are_replaced() {
        let mut store = MemStore::default();
        let plan = one_rule(1000, 10);
        store.set(&plan.charges[0].key, b"garbage", None).unwrap();
        admitted(reserve(&mut store, NOW, &plan).unwrap());
        assert_eq!(used(&store, &plan, 0), 10);
    }

    #[test]
    fn no_rule_matched_is_admitted_without_writes() {
        let mut store = MemStore::default();
        let mut plan = one_rule(1000, 10);
        plan.charges.clear();
        let mut r = admitted(reserve(&mut store, NOW, &plan).unwrap());
        assert!(r.info(NOW).is_none());
        r.settle(&mut store, Outcome::Usage(usage(5, 5)));
        assert_eq!(store.sets, 0);
    }

    #[test]
    fn create_cas_never_overwrites_an_existing_key() {
        let mut store = MemStore::default();
        store.set("k", b"v", None).unwrap();
        assert_eq!(store.set("k", b"w", Some(CREATE_CAS)), Err(CasMismatch));
        assert_eq!(store.get("k").0.unwrap(), b"v");
        precreate(&mut store, &["k".to_string(), "new".to_string()]);
        assert_eq!(store.get("k").0.unwrap(), b"v");
        assert_eq!(store.counter("new"), Some(Counter::default()));
    }

    /// A store whose first `fail` writes report a CAS conflict (as if another worker had
    /// written in between).
    struct Conflicting {
        inner: MemStore,
        fail: u32,
    }

    impl SharedStore for Conflicting {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            self.inner.get(key)
        }
        fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
            if self.fail > 0 {
                self.fail -= 1;
                // Another worker's write: bumps the cas without changing the value.
                if let Some((v, _)) = self.inner.data.get(key).cloned() {
                    self.inner.set(key, &v, None).unwrap();
                }
                return Err(CasMismatch);
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn cas_conflicts_are_retried_up_to_the_bound() {
        let plan = one_rule(1000, 10);
        let key = plan.charges[0].key.clone();
        for fail in [1, 10, MAX_CAS_ATTEMPTS - 2] {
            let mut s = Conflicting {
                inner: MemStore::default(),
                fail,
            };
            precreate(&mut s.inner, std::slice::from_ref(&key));
            admitted(reserve(&mut s, NOW, &plan).unwrap());
            assert_eq!(s.inner.counter(&key).unwrap().used, 10, "fail={fail}");
        }
        // Exhausted: fails closed, nothing left reserved.
        let mut s = Conflicting {
            inner: MemStore::default(),
            fail: MAX_CAS_ATTEMPTS,
        };
        precreate(&mut s.inner, std::slice::from_ref(&key));
        assert_eq!(reserve(&mut s, NOW, &plan), Err(Busy { rule: "r".into() }));
        assert_eq!(s.inner.counter(&key).unwrap().used, 0);

        // Exhaustion on the second rule gives the first one back.
        let plan2 = plan_for(
            r#"[{"name":"a","limit":1000,"window":"day"},{"name":"b","limit":1000,"window":"day"}]"#,
            10,
            0,
        );
        let mut s = Conflicting {
            inner: MemStore::default(),
            fail: 0,
        };
        precreate(
            &mut s.inner,
            &[plan2.charges[0].key.clone(), plan2.charges[1].key.clone()],
        );
        // 1 write for rule a, then every write for rule b conflicts; the give-back of a
        // then succeeds.
        struct FailSecond(Conflicting, String);
        impl SharedStore for FailSecond {
            fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
                self.0.get(key)
            }
            fn set(&mut self, key: &str, v: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
                if key == self.1 {
                    return Err(CasMismatch);
                }
                self.0.set(key, v, cas)
            }
        }
        let mut f = FailSecond(s, plan2.charges[1].key.clone());
        assert!(reserve(&mut f, NOW, &plan2).is_err());
        assert_eq!(f.0.inner.counter(&plan2.charges[0].key).unwrap().used, 0);

        // Settlement under exhaustion leaves the reservation standing.
        let mut s = Conflicting {
            inner: MemStore::default(),
            fail: 0,
        };
        let mut r = admitted(reserve(&mut s, NOW, &plan).unwrap());
        s.fail = MAX_CAS_ATTEMPTS;
        let st = r.settle(&mut s, Outcome::Usage(usage(1, 0)));
        assert_eq!(st.busy, 1);
        assert_eq!(s.inner.counter(&key).unwrap().used, 10);
    }
}
