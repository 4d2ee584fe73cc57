//! Global mode: Envoy's rate limit service protocol
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`), encoded by hand.
//!
//! Field numbers, from `api/envoy/service/ratelimit/v3/rls.proto` and
//! `api/envoy/extensions/common/ratelimit/v3/ratelimit.proto`:
//!
//! ```text
//! RateLimitRequest     { string domain = 1; repeated RateLimitDescriptor descriptors = 2;
//!                        uint32 hits_addend = 3; }
//! RateLimitDescriptor  { repeated Entry entries = 1; RateLimitOverride limit = 2; }
//!   Entry              { string key = 1; string value = 2; }
//!   RateLimitOverride  { uint32 requests_per_unit = 1; envoy.type.v3.RateLimitUnit unit = 2; }
//! RateLimitResponse    { Code overall_code = 1; repeated DescriptorStatus statuses = 2;
//!                        (3..7: headers, raw_body, dynamic_metadata, quota — skipped) }
//!   DescriptorStatus   { Code code = 1; RateLimit current_limit = 2; uint32 limit_remaining = 3;
//!                        google.protobuf.Duration duration_until_reset = 4; (quota = 5) }
//!   RateLimit          { uint32 requests_per_unit = 1; Unit unit = 2; string name = 3; }
//!   Duration           { int64 seconds = 1; int32 nanos = 2; }
//! Code { UNKNOWN = 0; OK = 1; OVER_LIMIT = 2; }
//! Unit { UNKNOWN = 0; SECOND = 1; MINUTE = 2; HOUR = 3; DAY = 4; MONTH = 5; YEAR = 6; }
//! ```
//!
//! (`envoy.type.v3.RateLimitUnit`, used by the override, has only SECOND..DAY.)
//!
//! The scheme (see docs/quotas.md): admission sends one descriptor per matching rule with
//! `hits_addend` = the reservation, and the rule's limit as the descriptor's limit
//! override; the service admits only when every descriptor stays within its limit. After
//! the response, when the actual cost exceeds the reservation, a correction call adds the
//! difference. Refunds do not exist in the protocol, so an unused reservation stays
//! counted until the window ends.

use super::config::{FailureMode, Global};
use super::errors::{self, Exceeded};
use super::headers::RateLimitInfo;
use super::plan::Plan;
use super::proto::{self, ProtoError, Reader};
use super::window::Window;
use crate::api::errors::GatewayError;

pub const SERVICE: &str = "envoy.service.ratelimit.v3.RateLimitService";
pub const METHOD: &str = "ShouldRateLimit";
/// First entry of every descriptor: the rule name.
pub const RULE_KEY: &str = "llm_gateway_rule";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Unknown,
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

impl Unit {
    pub fn number(self) -> u64 {
        match self {
            Unit::Unknown => 0,
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
        }
    }

    pub fn from_number(n: u64) -> Unit {
        match n {
            1 => Unit::Second,
            2 => Unit::Minute,
            3 => Unit::Hour,
            4 => Unit::Day,
            5 => Unit::Month,
            6 => Unit::Year,
            _ => Unit::Unknown,
        }
    }
}

/// The override unit of a window; `None` when the protocol cannot express it.
pub fn unit_of(w: Window) -> Option<Unit> {
    match w.fixed_length()? {
        1 => Some(Unit::Second),
        60 => Some(Unit::Minute),
        3600 => Some(Unit::Hour),
        86_400 => Some(Unit::Day),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitOverride {
    pub requests_per_unit: u32,
    pub unit: Unit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub entries: Vec<(String, String)>,
    pub limit: Option<LimitOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitRequest {
    pub domain: String,
    pub descriptors: Vec<Descriptor>,
    pub hits_addend: u32,
}

impl RateLimitRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        proto::put_string(&mut out, 1, &self.domain);
        for d in &self.descriptors {
            let mut desc = Vec::new();
            for (k, v) in &d.entries {
                let mut e = Vec::new();
                proto::put_string(&mut e, 1, k);
                proto::put_string(&mut e, 2, v);
                proto::put_bytes(&mut desc, 1, &e);
            }
            if let Some(l) = &d.limit {
                let mut o = Vec::new();
                proto::put_uint(&mut o, 1, u64::from(l.requests_per_unit));
                proto::put_uint(&mut o, 2, l.unit.number());
                proto::put_bytes(&mut desc, 2, &o);
            }
            proto::put_bytes(&mut out, 2, &desc);
        }
        proto::put_uint(&mut out, 3, u64::from(self.hits_addend));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<RateLimitRequest, ProtoError> {
        let mut req = RateLimitRequest {
            domain: String::new(),
            descriptors: Vec::new(),
            hits_addend: 0,
        };
        let mut r = Reader::new(bytes);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => req.domain = v.as_str()?.to_string(),
                2 => {
                    let mut d = Descriptor {
                        entries: Vec::new(),
                        limit: None,
                    };
                    let mut dr = Reader::new(v.as_bytes()?);
                    while let Some((df, dv)) = dr.next()? {
                        match df {
                            1 => {
                                let (mut k, mut val) = (String::new(), String::new());
                                let mut er = Reader::new(dv.as_bytes()?);
                                while let Some((ef, ev)) = er.next()? {
                                    match ef {
                                        1 => k = ev.as_str()?.to_string(),
                                        2 => val = ev.as_str()?.to_string(),
                                        _ => {}
                                    }
                                }
                                d.entries.push((k, val));
                            }
                            2 => {
                                let mut o = LimitOverride {
                                    requests_per_unit: 0,
                                    unit: Unit::Unknown,
                                };
                                let mut or = Reader::new(dv.as_bytes()?);
                                while let Some((of, ov)) = or.next()? {
                                    match of {
                                        1 => o.requests_per_unit = ov.as_u32()?,
                                        2 => o.unit = Unit::from_number(ov.as_u64()?),
                                        _ => {}
                                    }
                                }
                                d.limit = Some(o);
                            }
                            _ => {}
                        }
                    }
                    req.descriptors.push(d);
                }
                3 => req.hits_addend = v.as_u32()?,
                _ => {}
            }
        }
        Ok(req)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unknown,
    Ok,
    OverLimit,
}

impl Code {
    fn from_number(n: u64) -> Code {
        match n {
            1 => Code::Ok,
            2 => Code::OverLimit,
            _ => Code::Unknown,
        }
    }

    fn number(self) -> u64 {
        match self {
            Code::Unknown => 0,
            Code::Ok => 1,
            Code::OverLimit => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentLimit {
    pub requests_per_unit: u32,
    pub unit: Unit,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorStatus {
    pub code: Code,
    pub current_limit: Option<CurrentLimit>,
    pub limit_remaining: u32,
    /// `duration_until_reset` in nanoseconds (negative durations read as 0).
    pub reset_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitResponse {
    pub overall_code: Code,
    pub statuses: Vec<DescriptorStatus>,
}

fn decode_duration(b: &[u8]) -> Result<u64, ProtoError> {
    let (mut secs, mut nanos) = (0i64, 0i64);
    let mut r = Reader::new(b);
    while let Some((f, v)) = r.next()? {
        match f {
            // int64/int32 are two's complement varints.
            1 => secs = v.as_u64()? as i64,
            2 => nanos = i64::from(v.as_u64()? as i32),
            _ => {}
        }
    }
    let ns = i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Ok(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
}

impl RateLimitResponse {
    pub fn decode(bytes: &[u8]) -> Result<RateLimitResponse, ProtoError> {
        let mut resp = RateLimitResponse {
            overall_code: Code::Unknown,
            statuses: Vec::new(),
        };
        let mut r = Reader::new(bytes);
        while let Some((f, v)) = r.next()? {
            match f {
                1 => resp.overall_code = Code::from_number(v.as_u64()?),
                2 => {
                    let mut s = DescriptorStatus {
                        code: Code::Unknown,
                        current_limit: None,
                        limit_remaining: 0,
                        reset_ns: None,
                    };
                    let mut sr = Reader::new(v.as_bytes()?);
                    while let Some((sf, sv)) = sr.next()? {
                        match sf {
                            1 => s.code = Code::from_number(sv.as_u64()?),
                            2 => {
                                let mut l = CurrentLimit {
                                    requests_per_unit: 0,
                                    unit: Unit::Unknown,
                                    name: String::new(),
                                };
                                let mut lr = Reader::new(sv.as_bytes()?);
                                while let Some((lf, lv)) = lr.next()? {
                                    match lf {
                                        1 => l.requests_per_unit = lv.as_u32()?,
                                        2 => l.unit = Unit::from_number(lv.as_u64()?),
                                        3 => l.name = lv.as_str()?.to_string(),
                                        _ => {}
                                    }
                                }
                                s.current_limit = Some(l);
                            }
                            3 => s.limit_remaining = sv.as_u32()?,
                            4 => s.reset_ns = Some(decode_duration(sv.as_bytes()?)?),
                            _ => {}
                        }
                    }
                    resp.statuses.push(s);
                }
                _ => {}
            }
        }
        Ok(resp)
    }

    /// The inverse of `decode` (tests, and the reference for the Python test service).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        proto::put_uint(&mut out, 1, self.overall_code.number());
        for s in &self.statuses {
            let mut b = Vec::new();
            proto::put_uint(&mut b, 1, s.code.number());
            if let Some(l) = &s.current_limit {
                let mut lb = Vec::new();
                proto::put_uint(&mut lb, 1, u64::from(l.requests_per_unit));
                proto::put_uint(&mut lb, 2, l.unit.number());
                proto::put_string(&mut lb, 3, &l.name);
                proto::put_bytes(&mut b, 2, &lb);
            }
            proto::put_uint(&mut b, 3, u64::from(s.limit_remaining));
            if let Some(ns) = s.reset_ns {
                let mut d = Vec::new();
                proto::put_uint(&mut d, 1, ns / 1_000_000_000);
                proto::put_uint(&mut d, 2, ns % 1_000_000_000);
                proto::put_bytes(&mut b, 4, &d);
            }
            proto::put_bytes(&mut out, 2, &b);
        }
        out
    }
}

// ---------------------------------------------------------------------------- the scheme

/// The descriptors of a plan: one per matching rule, in plan order,
/// `[("llm_gateway_rule", rule), (dimension, value)…]` with the rule's limit as override.
pub fn descriptors(plan: &Plan) -> Vec<Descriptor> {
    plan.charges
        .iter()
        .map(|c| {
            let mut entries = vec![(RULE_KEY.to_string(), c.name.clone())];
            entries.extend(c.group.iter().map(|(k, v)| (k.to_string(), v.clone())));
            Descriptor {
                entries,
                limit: unit_of(c.window).map(|unit| LimitOverride {
                    requests_per_unit: u32::try_from(c.limit).unwrap_or(u32::MAX),
                    unit,
                }),
            }
        })
        .collect()
}

/// The admission call for a plan, or what to do without one:
///
/// * `Ok(None)`: no rule matched — admit without calling the service;
/// * `Err(e)`: the reservation alone exceeds a rule's limit — 429 without calling;
/// * `Ok(Some(bytes))`: send `ShouldRateLimit(bytes)` with `hits_addend` = reservation.
///
/// A reservation of 0 is sent as `hits_addend` 0, which the protocol reads as 1.
pub fn admission_request(
    global: &Global,
    plan: &Plan,
    now_ns: u64,
) -> Result<Option<Vec<u8>>, Exceeded> {
    if plan.is_empty() {
        return Ok(None);
    }
    if let Some(c) = plan.charges.iter().find(|c| plan.reserved > c.limit) {
        return Err(Exceeded {
            rule: c.name.clone(),
            limit: c.limit,
            used: None,
            requested: plan.reserved,
            reset_ns: c.window.span_ns(now_ns).reset_ns(now_ns),
        });
    }
    let req = RateLimitRequest {
        domain: global.domain.clone(),
        descriptors: descriptors(plan),
        // Limits are ≤ u32::MAX in global mode, and reserved ≤ limit here.
        hits_addend: u32::try_from(plan.reserved).unwrap_or(u32::MAX),
    };
    Ok(Some(req.encode()))
}

/// The admission decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; the tightest rule's numbers for the `x-ratelimit-*` headers when the
    /// service reported them.
    Admit(Option<RateLimitInfo>),
    /// Over a limit: answer 429 (`errors::rate_limited`).
    Deny(Exceeded),
    /// The service failed (error, timeout, malformed or UNKNOWN answer) and
    /// `failure_mode` is `allow`: admit uncounted. No correction is sent later.
    FailOpen,
    /// The service failed and `failure_mode` is `deny`: answer this 503.
    FailClosed(GatewayError),
}

impl Decision {
    /// Whether the request goes to the provider and a correction may follow.
    pub fn counted(&self) -> bool {
        matches!(self, Decision::Admit(_))
    }
}

/// Decides from the service's answer: `Some(bytes)` = the `ShouldRateLimit` response
/// message, `None` = the call failed or timed out (non-OK gRPC status included).
pub fn decide(global: &Global, plan: &Plan, response: Option<&[u8]>, now_ns: u64) -> Decision {
    let failed = || match global.failure_mode {
        FailureMode::Allow => Decision::FailOpen,
        FailureMode::Deny => Decision::FailClosed(errors::quota_service_unavailable()),
    };
    let Some(resp) = response.and_then(|b| RateLimitResponse::decode(b).ok()) else {
        return failed();
    };
    let info = |i: usize, s: &DescriptorStatus| -> Option<RateLimitInfo> {
        let l = s.current_limit.as_ref()?;
        let reset_ns = s.reset_ns.unwrap_or_else(|| {
            plan.charges
                .get(i)
                .map(|c| c.window.span_ns(now_ns).reset_ns(now_ns))
                .unwrap_or(0)
        });
        Some(RateLimitInfo {
            limit: u64::from(l.requests_per_unit),
            remaining: u64::from(s.limit_remaining),
            reset_ns,
        })
    };
    match resp.overall_code {
        Code::Ok => Decision::Admit(RateLimitInfo::tightest(
            resp.statuses
                .iter()
                .enumerate()
                .filter_map(|(i, s)| info(i, s)),
        )),
        Code::OverLimit => {
            let i = resp
                .statuses
                .iter()
                .position(|s| s.code == Code::OverLimit)
                .unwrap_or(0);
            let charge = plan.charges.get(i).or(plan.charges.first());
            let status = resp.statuses.get(i);
            let window_reset = charge
                .map(|c| c.window.span_ns(now_ns).reset_ns(now_ns))
                .unwrap_or(0);
            Decision::Deny(Exceeded {
                rule: charge.map(|c| c.name.clone()).unwrap_or_default(),
                limit: status
                    .and_then(|s| s.current_limit.as_ref())
                    .map(|l| u64::from(l.requests_per_unit))
                    .or(charge.map(|c| c.limit))
                    .unwrap_or(0),
                used: None,
                requested: plan.reserved,
                reset_ns: status.and_then(|s| s.reset_ns).unwrap_or(window_reset),
            })
        }
        Code::Unknown => failed(),
    }
}

/// A correction to send: `hits` more for the target (domain and descriptors) of the
/// request's admission. Corrections wait in the [`super::outbox::Outbox`], which adds up
/// those for the same target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// The encoded `RateLimitRequest` without `hits_addend` (fields 1 and 2).
    pub target: Vec<u8>,
    pub hits: u64,
}

impl Correction {
    /// The `ShouldRateLimit` message adding `hits` (1..=`u32::MAX`) to `target`.
    pub fn message(target: &[u8], hits: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(target.len() + 6);
        out.extend_from_slice(target);
        proto::put_uint(&mut out, 3, hits.min(u64::from(u32::MAX)));
        out
    }
}

/// The correction after the response: `Some` with `actual − reserved` hits when the
/// request cost more than it reserved; `None` otherwise (the protocol cannot refund).
/// Send it only when the admission was `Admit`.
pub fn correction(global: &Global, plan: &Plan, actual: u64) -> Option<Correction> {
    let extra = actual.checked_sub(plan.reserved).filter(|e| *e > 0)?;
    if plan.is_empty() {
        return None;
    }
    let target = RateLimitRequest {
        domain: global.domain.clone(),
        descriptors: descriptors(plan),
        // 0 is not encoded: the target carries no `hits_addend`.
        hits_addend: 0,
    };
    Some(Correction {
        target: target.encode(),
        hits: extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::config::{Quotas, Sections};
    use crate::quota::identity::{Caller, Source};
    use crate::quota::plan::RequestFacts;

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 1_795_413_053 * S;

    fn setup(failure: &str) -> (Global, Quotas) {
        let q = Sections::parse(
            format!(
                r#"{{"quotas":{{"mode":"global","global":{{"cluster":"rls","failure_mode":"{failure}"}},
                "rules":[{{"name":"per-consumer","limit":1000,"window":"minute","group_by":["consumer","model"]}},
                         {{"name":"all","limit":100000,"window":"day"}}]}}}}"#
            )
            .as_bytes(),
            &["openai"],
        )
        .unwrap()
        .unwrap()
        .quotas
        .unwrap();
        (q.global.clone().unwrap(), q)
    }

    fn plan(q: &Quotas, input: u64, output: u64) -> Plan {
        q.plan(
            &Caller {
                name: "team-a".into(),
                consumer: Some(0),
                source: Source::ApiKey,
            },
            &RequestFacts {
                requested_model: "gpt-4o",
                model: "gpt-4o",
                provider: "openai",
                estimated_input: input,
                max_output: Some(output),
                expects_output: true,
            },
        )
    }

    #[test]
    fn request_encoding_matches_hand_computed_bytes() {
        let req = RateLimitRequest {
            domain: "d".into(),
            descriptors: vec![Descriptor {
                entries: vec![("k".into(), "v".into())],
                limit: Some(LimitOverride {
                    requests_per_unit: 300,
                    unit: Unit::Minute,
                }),
            }],
            hits_addend: 150,
        };
        #[rustfmt::skip]
        let expected = vec![
            0x0a, 0x01, b'd',                         // domain = 1
            0x12, 0x0f,                               // descriptors = 2, 15 bytes
              0x0a, 0x06,                             //   entries = 1, 6 bytes
                0x0a, 0x01, b'k', 0x12, 0x01, b'v',   //     key = 1, value = 2
              0x12, 0x05, 0x08, 0xac, 0x02, 0x10, 0x02, // limit = 2 {rpu = 300, unit = MINUTE}
            0x18, 0x96, 0x01,                         // hits_addend = 3: 150
        ];
        assert_eq!(req.encode(), expected);
        assert_eq!(RateLimitRequest::decode(&expected).unwrap(), req);
    }

    #[test]
    fn response_decoding_of_hand_encoded_bytes() {
        #[rustfmt::skip]
        let bytes = vec![
            0x08, 0x02,                               // overall_code = OVER_LIMIT
            0x12, 0x0f,                               // statuses = 2, 15 bytes
              0x08, 0x01,                             //   code = OK
              0x12, 0x05, 0x08, 0xe8, 0x07, 0x10, 0x02, // current_limit {1000, MINUTE}
              0x18, 0x2a,                             //   limit_remaining = 42
              0x22, 0x02, 0x08, 0x07,                 //   duration_until_reset {seconds: 7}
            0x12, 0x02, 0x08, 0x02,                   // statuses: {code = OVER_LIMIT}
            0x1a, 0x00,                               // response_headers_to_add (skipped)
            0x2a, 0x03, b'a', b'b', b'c',             // raw_body = 5 (skipped)
        ];
        let r = RateLimitResponse::decode(&bytes).unwrap();
        assert_eq!(r.overall_code, Code::OverLimit);
        assert_eq!(r.statuses.len(), 2);
        assert_eq!(
            r.statuses[0],
            DescriptorStatus {
                code: Code::Ok,
                current_limit: Some(CurrentLimit {
                    requests_per_unit: 1000,
                    unit: Unit::Minute,
                    name: String::new()
                }),
                limit_remaining: 42,
                reset_ns: Some(7 * S),
            }
        );
        assert_eq!(r.statuses[1].code, Code::OverLimit);
        assert_eq!(
            RateLimitResponse::decode(&[]).unwrap().overall_code,
            Code::Unknown
        );
        for cut in 1..bytes.len() {
            let _ = RateLimitResponse::decode(&bytes[..cut]);
        }
        assert!(RateLimitResponse::decode(&bytes[..5]).is_err());
        // Negative duration and nanos.
        let mut d = Vec::new();
        proto::put_uint(&mut d, 1, 1);
        proto::put_uint(&mut d, 2, 500_000_000);
        assert_eq!(decode_duration(&d).unwrap(), 1_500_000_000);
        let mut neg = Vec::new();
        proto::put_uint(&mut neg, 1, (-5i64) as u64);
        assert_eq!(decode_duration(&neg).unwrap(), 0);
    }

    #[test]
    fn admission_request_has_one_descriptor_per_rule_and_hits_the_reservation() {
        let (g, q) = setup("allow");
        let p = plan(&q, 100, 200);
        let bytes = admission_request(&g, &p, NOW).unwrap().unwrap();
        let req = RateLimitRequest::decode(&bytes).unwrap();
        assert_eq!(req.domain, "llm-gateway");
        assert_eq!(req.hits_addend, 300);
        assert_eq!(
            req.descriptors[0].entries,
            vec![
                ("llm_gateway_rule".to_string(), "per-consumer".to_string()),
                ("consumer".to_string(), "team-a".to_string()),
                ("model".to_string(), "gpt-4o".to_string()),
            ]
        );
        assert_eq!(
            req.descriptors[0].limit,
            Some(LimitOverride {
                requests_per_unit: 1000,
                unit: Unit::Minute
            })
        );
        assert_eq!(req.descriptors[1].entries.len(), 1);
        assert_eq!(req.descriptors[1].limit.as_ref().unwrap().unit, Unit::Day);
        // Larger than a limit → denied without a call.
        let e = admission_request(&g, &plan(&q, 900, 200), NOW).unwrap_err();
        assert!(e.too_large());
        assert_eq!(e.rule, "per-consumer");
        let mut empty = p.clone();
        empty.charges.clear();
        assert_eq!(admission_request(&g, &empty, NOW), Ok(None));
    }

    fn status(code: Code, limit: u32, remaining: u32, reset: u64) -> DescriptorStatus {
        DescriptorStatus {
            code,
            current_limit: Some(CurrentLimit {
                requests_per_unit: limit,
                unit: Unit::Minute,
                name: String::new(),
            }),
            limit_remaining: remaining,
            reset_ns: Some(reset),
        }
    }

    #[test]
    fn decisions() {
        let (g, q) = setup("allow");
        let p = plan(&q, 100, 200);
        let ok = RateLimitResponse {
            overall_code: Code::Ok,
            statuses: vec![
                status(Code::Ok, 1000, 700, 7 * S),
                status(Code::Ok, 100_000, 99_000, 3600 * S),
            ],
        };
        assert_eq!(
            decide(&g, &p, Some(&ok.encode()), NOW),
            Decision::Admit(Some(RateLimitInfo {
                limit: 1000,
                remaining: 700,
                reset_ns: 7 * S
            }))
        );
        let over = RateLimitResponse {
            overall_code: Code::OverLimit,
            statuses: vec![
                status(Code::Ok, 1000, 700, 7 * S),
                status(Code::OverLimit, 100_000, 0, 3600 * S),
            ],
        };
        match decide(&g, &p, Some(&over.encode()), NOW) {
            Decision::Deny(e) => {
                assert_eq!(
                    (e.rule.as_str(), e.limit, e.requested),
                    ("all", 100_000, 300)
                );
                assert_eq!(e.reset_ns, 3600 * S);
                assert!(!decide(&g, &p, Some(&over.encode()), NOW).counted());
            }
            d => panic!("{d:?}"),
        }
        // Failures: call failed, garbage, UNKNOWN.
        let unknown = RateLimitResponse {
            overall_code: Code::Unknown,
            statuses: vec![],
        };
        for r in [None, Some(&[0x0b][..]), Some(&unknown.encode()[..])] {
            assert_eq!(decide(&g, &p, r, NOW), Decision::FailOpen);
        }
        let (gd, _) = setup("deny");
        match decide(&gd, &p, None, NOW) {
            Decision::FailClosed(e) => {
                assert_eq!((e.status, e.code), (503, "quota_service_unavailable"))
            }
            d => panic!("{d:?}"),
        }
        // OK without statuses: admitted, no header info; reset falls back to the window.
        assert_eq!(
            decide(
                &g,
                &p,
                Some(
                    &RateLimitResponse {
                        overall_code: Code::Ok,
                        statuses: vec![]
                    }
                    .encode()
                ),
                NOW
            ),
            Decision::Admit(None)
        );
        let mut no_reset = status(Code::Ok, 1000, 10, 0);
        no_reset.reset_ns = None;
        let r = RateLimitResponse {
            overall_code: Code::Ok,
            statuses: vec![no_reset],
        };
        match decide(&g, &p, Some(&r.encode()), NOW) {
            Decision::Admit(Some(i)) => assert_eq!(i.reset_ns, 7 * S),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn correction_only_charges_more() {
        let (g, q) = setup("allow");
        let p = plan(&q, 100, 200);
        assert_eq!(correction(&g, &p, 300), None);
        assert_eq!(correction(&g, &p, 10), None);
        let c = correction(&g, &p, 450).unwrap();
        assert_eq!(c.hits, 150);
        let target = RateLimitRequest::decode(&c.target).unwrap();
        assert_eq!(target.hits_addend, 0);
        let req = RateLimitRequest::decode(&Correction::message(&c.target, c.hits)).unwrap();
        assert_eq!(req.hits_addend, 150);
        assert_eq!(req.domain, g.domain);
        assert_eq!(req.descriptors, descriptors(&p));
    }

    #[test]
    fn units() {
        assert_eq!(unit_of(Window::Second), Some(Unit::Second));
        assert_eq!(unit_of(Window::Seconds(3600)), Some(Unit::Hour));
        assert_eq!(unit_of(Window::Day), Some(Unit::Day));
        assert_eq!(unit_of(Window::Month), None);
        assert_eq!(unit_of(Window::Seconds(90)), None);
        for n in 0..8 {
            let u = Unit::from_number(n);
            assert!(u == Unit::Unknown || u.number() == n);
        }
    }
}
