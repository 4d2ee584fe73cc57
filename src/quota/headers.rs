//! `x-ratelimit-*` response headers in OpenAI's format, and `retry-after`.
//!
//! OpenAI sends `x-ratelimit-limit-tokens`, `x-ratelimit-remaining-tokens` and
//! `x-ratelimit-reset-tokens` on every response; the reset is a Go-style duration
//! (`"6m0s"`, `"1s"`, `"20ms"`, `"1.574s"`): the time until the limit is fully available
//! again. With fixed windows that is the time until the window ends.

pub const LIMIT_TOKENS: &str = "x-ratelimit-limit-tokens";
pub const REMAINING_TOKENS: &str = "x-ratelimit-remaining-tokens";
pub const RESET_TOKENS: &str = "x-ratelimit-reset-tokens";
pub const RETRY_AFTER: &str = "retry-after";

/// The state of one quota rule as seen by one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub limit: u64,
    pub remaining: u64,
    /// Nanoseconds until the window ends.
    pub reset_ns: u64,
}

impl RateLimitInfo {
    /// The tightest of several rules: the one with the fewest tokens remaining (on a tie,
    /// the one that resets last).
    pub fn tightest(items: impl IntoIterator<Item = RateLimitInfo>) -> Option<RateLimitInfo> {
        items
            .into_iter()
            .min_by_key(|i| (i.remaining, std::cmp::Reverse(i.reset_ns)))
    }

    /// `x-ratelimit-limit-tokens`, `x-ratelimit-remaining-tokens`, `x-ratelimit-reset-tokens`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (LIMIT_TOKENS, self.limit.to_string()),
            (REMAINING_TOKENS, self.remaining.to_string()),
            (RESET_TOKENS, format_reset(self.reset_ns)),
        ]
    }

    /// The headers of a 429: the three above and `retry-after` (whole seconds, at least 1).
    pub fn rejection_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = self.headers();
        h.push((RETRY_AFTER, retry_after_secs(self.reset_ns).to_string()));
        h
    }
}

/// Seconds a client should wait: the reset rounded up, at least 1.
pub fn retry_after_secs(reset_ns: u64) -> u64 {
    reset_ns.div_ceil(1_000_000_000).max(1)
}

/// Formats a duration like Go's `time.Duration.String()` at millisecond precision (what
/// OpenAI's `x-ratelimit-reset-*` headers use): `0s`, `20ms`, `1s`, `1.574s`, `6m0s`,
/// `1h2m3.5s`. Sub-millisecond remainders round up, so a reset is never reported early.
pub fn format_reset(ns: u64) -> String {
    let ms = ns.div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms / 1000) % 60;
    let frac = ms % 1000;
    let mut secs = s.to_string();
    if frac != 0 {
        let f = format!("{frac:03}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    #[test]
    fn go_duration_format() {
        assert_eq!(format_reset(0), "0s");
        assert_eq!(format_reset(1), "1ms");
        assert_eq!(format_reset(20 * MS), "20ms");
        assert_eq!(format_reset(999 * MS), "999ms");
        assert_eq!(format_reset(S), "1s");
        assert_eq!(format_reset(1574 * MS), "1.574s");
        assert_eq!(format_reset(1500 * MS), "1.5s");
        assert_eq!(format_reset(360 * S), "6m0s");
        assert_eq!(format_reset(90 * S + 100 * MS), "1m30.1s");
        assert_eq!(format_reset(3600 * S), "1h0m0s");
        assert_eq!(format_reset(86_400 * S), "24h0m0s");
        assert_eq!(format_reset(3723 * S + 500 * MS), "1h2m3.5s");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(0), 1);
        assert_eq!(retry_after_secs(S), 1);
        assert_eq!(retry_after_secs(S + 1), 2);
        assert_eq!(retry_after_secs(59 * S + 1), 60);
    }

    #[test]
    fn tightest_and_headers() {
        let a = RateLimitInfo {
            limit: 1000,
            remaining: 700,
            reset_ns: 30 * S,
        };
        let b = RateLimitInfo {
            limit: 100_000,
            remaining: 50,
            reset_ns: 3600 * S,
        };
        let c = RateLimitInfo {
            limit: 60,
            remaining: 50,
            reset_ns: S,
        };
        assert_eq!(RateLimitInfo::tightest([a, b, c]), Some(b));
        assert_eq!(RateLimitInfo::tightest([]), None);
        assert_eq!(
            b.headers(),
            vec![
                ("x-ratelimit-limit-tokens", "100000".to_string()),
                ("x-ratelimit-remaining-tokens", "50".to_string()),
                ("x-ratelimit-reset-tokens", "1h0m0s".to_string()),
            ]
        );
        let r = c.rejection_headers();
        assert_eq!(r.last().unwrap(), &("retry-after", "1".to_string()));
    }
}
