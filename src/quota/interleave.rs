//! Model checking of the shared-data CAS logic: two workers run `reserve`/`settle` on
//! real threads, but a scheduler lets exactly one of them perform each `get`/`set`, in
//! an order it chooses. Every possible order is explored (stateless depth-first search),
//! and invariants are checked after each operation and at the end.

use super::local::mem::MemStore;
use super::local::{self, Admission, Counter, Outcome, SharedStore};
use super::plan::Plan;
use crate::tokens::usage::Usage;
use std::sync::{Arc, Condvar, Mutex};

type Check = dyn Fn(&MemStore) -> Result<(), String> + Send + Sync;

struct State {
    store: MemStore,
    /// Like a host that ignores `cas` (to show the checker finds lost updates).
    ignore_cas: bool,
    waiting: Vec<bool>,
    done: Vec<bool>,
    granted: Option<usize>,
    /// An invariant broken after some operation.
    violation: Option<String>,
}

struct Sched {
    m: Mutex<State>,
    cv: Condvar,
    check: Box<Check>,
}

struct ActorStore {
    sched: Arc<Sched>,
    id: usize,
}

impl ActorStore {
    fn op<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut g = self.sched.m.lock().unwrap();
        g.waiting[self.id] = true;
        self.sched.cv.notify_all();
        while g.granted != Some(self.id) {
            g = self.sched.cv.wait(g).unwrap();
        }
        let r = f(&mut g);
        if g.violation.is_none() {
            if let Err(e) = (self.sched.check)(&g.store) {
                g.violation = Some(e);
            }
        }
        g.granted = None;
        g.waiting[self.id] = false;
        self.sched.cv.notify_all();
        r
    }
}

impl SharedStore for ActorStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.op(|s| s.store.get(key))
    }
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), local::CasMismatch> {
        self.op(|s| {
            let cas = if s.ignore_cas { None } else { cas };
            s.store.set(key, value, cas)
        })
    }
}

/// What one actor did: tokens it left charged on the counters (0 when denied).
type Actor = Box<dyn FnOnce(&mut dyn SharedStore) -> u64 + Send>;

struct Run {
    store: MemStore,
    /// Number of enabled actors at each step, and the choice made.
    options: Vec<usize>,
    choices: Vec<usize>,
    charged: Vec<u64>,
    violation: Option<String>,
}

fn run_once(
    prefix: &[usize],
    init: &MemStore,
    ignore_cas: bool,
    actors: Vec<Actor>,
    check: &Arc<Check>,
) -> Run {
    let n = actors.len();
    let check = Arc::clone(check);
    let sched = Arc::new(Sched {
        m: Mutex::new(State {
            store: init.clone(),
            ignore_cas,
            waiting: vec![false; n],
            done: vec![false; n],
            granted: None,
            violation: None,
        }),
        cv: Condvar::new(),
        check: Box::new(move |s| check(s)),
    });
    let handles: Vec<_> = actors
        .into_iter()
        .enumerate()
        .map(|(id, actor)| {
            let sched = Arc::clone(&sched);
            std::thread::spawn(move || {
                let mut store = ActorStore {
                    sched: Arc::clone(&sched),
                    id,
                };
                let charged = actor(&mut store);
                let mut g = sched.m.lock().unwrap();
                g.done[id] = true;
                sched.cv.notify_all();
                charged
            })
        })
        .collect();
    let (mut options, mut choices) = (Vec::new(), Vec::new());
    loop {
        let mut g = sched.m.lock().unwrap();
        while !(g.granted.is_none() && (0..n).all(|i| g.done[i] || g.waiting[i])) {
            g = sched.cv.wait(g).unwrap();
        }
        let enabled: Vec<usize> = (0..n).filter(|&i| g.waiting[i]).collect();
        if enabled.is_empty() {
            break;
        }
        let step = choices.len();
        let choice = prefix
            .get(step)
            .copied()
            .unwrap_or(0)
            .min(enabled.len() - 1);
        options.push(enabled.len());
        choices.push(choice);
        g.granted = Some(enabled[choice]);
        sched.cv.notify_all();
    }
    let charged = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let g = sched.m.lock().unwrap();
    Run {
        store: g.store.clone(),
        options,
        choices,
        charged,
        violation: g.violation.clone(),
    }
}

/// Explores every interleaving; `make` builds fresh actors for each run, `check_end`
/// sees the final store and what each actor charged. Returns the number of runs.
fn explore(
    init: MemStore,
    ignore_cas: bool,
    make: impl Fn() -> Vec<Actor>,
    check_step: impl Fn(&MemStore) -> Result<(), String> + Send + Sync + 'static,
    mut check_end: impl FnMut(&MemStore, &[u64]) -> Result<(), String>,
) -> Result<usize, String> {
    let check: Arc<Check> = Arc::new(check_step);
    let mut prefix: Vec<usize> = Vec::new();
    let mut runs = 0;
    loop {
        let run = run_once(&prefix, &init, ignore_cas, make(), &check);
        runs += 1;
        if let Some(v) = run.violation {
            return Err(format!("schedule {:?}: {v}", run.choices));
        }
        check_end(&run.store, &run.charged)
            .map_err(|e| format!("schedule {:?}: {e}", run.choices))?;
        let Some(i) = (0..run.choices.len())
            .rev()
            .find(|&i| run.choices[i] + 1 < run.options[i])
        else {
            return Ok(runs);
        };
        prefix = run.choices[..i].to_vec();
        prefix.push(run.choices[i] + 1);
        assert!(runs < 200_000, "state space too large");
    }
}

// ---------------------------------------------------------------------------- scenarios

use super::config::Sections;
use super::identity::{Caller, Source};
use super::plan::RequestFacts;

const NOW: u64 = 1_795_413_053 * 1_000_000_000;

fn plan(rules: &str, reserve: u64) -> Plan {
    let q = Sections::parse(
        format!(r#"{{"quotas":{{"rules":{rules}}}}}"#).as_bytes(),
        &[],
    )
    .unwrap()
    .unwrap()
    .quotas
    .unwrap();
    q.plan(
        &Caller {
            name: "c".into(),
            consumer: None,
            source: Source::Anonymous,
        },
        &RequestFacts {
            requested_model: "m",
            model: "m",
            provider: "p",
            estimated_input: reserve,
            max_output: Some(0),
            expects_output: true,
        },
    )
}

fn used(store: &MemStore, key: &str) -> u64 {
    store.counter(key).map(|c| c.used).unwrap_or(0)
}

/// An actor that reserves and, when admitted, settles with `actual` input tokens
/// (`None`: keeps the reservation).
fn reserver(p: &Plan, actual: Option<u64>) -> Actor {
    let p = p.clone();
    Box::new(move |store: &mut dyn SharedStore| {
        match local::reserve(store, NOW, &p).expect("not busy") {
            Admission::Denied(_) => 0,
            Admission::Admitted(mut r) => match actual {
                None => p.reserved,
                Some(a) => {
                    let u = Usage {
                        input: a,
                        ..Usage::default()
                    };
                    r.settle(store, Outcome::Usage(u));
                    // Settling twice changes nothing.
                    r.settle(store, Outcome::Release);
                    a
                }
            },
        }
    })
}

fn within(key: String, limit: u64) -> impl Fn(&MemStore) -> Result<(), String> + Send + Sync {
    move |s: &MemStore| {
        let u = used(s, &key);
        if u > limit {
            Err(format!("overshoot: {u} > {limit}"))
        } else {
            Ok(())
        }
    }
}

fn precreated(keys: &[&str]) -> MemStore {
    let mut s = MemStore::default();
    for k in keys {
        s.set(k, &Counter::default().encode(), None).unwrap();
    }
    s
}

#[test]
fn two_reservers_that_do_not_both_fit_never_overshoot() {
    let p = plan(r#"[{"name":"r","limit":100,"window":"minute"}]"#, 60);
    let key = p.charges[0].key.clone();
    for init in [MemStore::default(), precreated(&[&key])] {
        let runs = explore(
            init,
            false,
            || vec![reserver(&p, None), reserver(&p, None)],
            within(key.clone(), 100),
            |s, charged| {
                let admitted = charged.iter().filter(|c| **c > 0).count();
                match (admitted, used(s, &key)) {
                    (1, 60) => Ok(()),
                    other => Err(format!("admitted/used = {other:?}")),
                }
            },
        )
        .unwrap();
        assert!(runs > 5, "{runs}");
    }
}

#[test]
fn two_reservers_that_fit_never_lose_an_update_even_creating_the_key() {
    let p = plan(r#"[{"name":"r","limit":100,"window":"minute"}]"#, 40);
    let key = p.charges[0].key.clone();
    for init in [MemStore::default(), precreated(&[&key])] {
        explore(
            init,
            false,
            || vec![reserver(&p, None), reserver(&p, None)],
            within(key.clone(), 100),
            |s, charged| match (charged, used(s, &key)) {
                ([40, 40], 80) => Ok(()),
                other => Err(format!("charged/used = {other:?}")),
            },
        )
        .unwrap();
    }
}

#[test]
fn settle_interleaved_with_a_reservation_is_exact() {
    let p = plan(r#"[{"name":"r","limit":100,"window":"minute"}]"#, 50);
    let p2 = plan(r#"[{"name":"r","limit":100,"window":"minute"}]"#, 40);
    let key = p.charges[0].key.clone();
    // A reserves 50 and settles at 30 (refund) or 70 (extra charge); B reserves 40.
    for actual in [30, 70] {
        let mut b_refused = false;
        explore(
            precreated(&[&key]),
            false,
            || vec![reserver(&p, Some(actual)), reserver(&p2, None)],
            |_| Ok(()),
            |s, charged| {
                let total: u64 = charged.iter().sum();
                // B always fits beside A's reservation (50 + 40); after A's extra charge
                // (70 + 40 > 100) it may be refused.
                let b_ok = charged[1] == 40 || (actual == 70 && charged[1] == 0);
                b_refused |= charged[1] == 0;
                if used(s, &key) == total && b_ok && charged[0] == actual {
                    Ok(())
                } else {
                    Err(format!("used {} != charged {charged:?}", used(s, &key)))
                }
            },
        )
        .unwrap();
        assert_eq!(b_refused, actual == 70);
    }
}

#[test]
fn two_rules_with_rollback_admit_exactly_one() {
    let rules =
        r#"[{"name":"a","limit":100,"window":"minute"},{"name":"b","limit":100,"window":"hour"}]"#;
    let p = plan(rules, 60);
    let (ka, kb) = (p.charges[0].key.clone(), p.charges[1].key.clone());
    let kb2 = kb.clone();
    explore(
        precreated(&[&ka, &kb]),
        false,
        || vec![reserver(&p, None), reserver(&p, None)],
        move |s| {
            within(ka.clone(), 100)(s)?;
            within(kb2.clone(), 100)(s)
        },
        |s, charged| {
            let admitted = charged.iter().filter(|c| **c > 0).count();
            let ka = &p.charges[0].key;
            match (admitted, used(s, ka), used(s, &kb)) {
                (1, 60, 60) => Ok(()),
                other => Err(format!("admitted/used = {other:?}")),
            }
        },
    )
    .unwrap();
}

#[test]
fn the_checker_finds_lost_updates_when_cas_is_ignored() {
    let p = plan(r#"[{"name":"r","limit":100,"window":"minute"}]"#, 40);
    let key = p.charges[0].key.clone();
    let r = explore(
        precreated(&[&key]),
        true,
        || vec![reserver(&p, None), reserver(&p, None)],
        |_| Ok(()),
        |s, _| match used(s, &key) {
            80 => Ok(()),
            u => Err(format!("lost update: used {u}")),
        },
    );
    assert!(r.unwrap_err().contains("lost update: used 40"));
}
