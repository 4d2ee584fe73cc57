//! Vertex AI bearer tokens, host-free: a small state machine the filter's root
//! context drives from its tick (no proxy-wasm calls here).
//!
//! A token is either **static** (read once from the environment, never refreshed) or
//! **fetched** from a token endpoint that answers like Google's metadata server,
//! `GET http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token`
//! with `Metadata-Flavor: Google` → `{"access_token","expires_in","token_type":"Bearer"}`.
//!
//! How the root context uses it (times are whole seconds of any monotonic-enough clock):
//!
//! ```text
//! on tick / on configure:  if cache.needs_refresh(now) { dispatch GET; cache.begin_fetch(now) }
//!                           (dispatch failed → cache.on_fetch_failed(now, reason))
//! on HTTP call response:   cache.on_fetch_response(status, body, now)  // Err → log, backoff
//! on each request:         match cache.token(now) { Some(t) => "authorization: Bearer t",
//!                                                   None => answer 503 }
//! ```
//!
//! Requests never wait for a refresh: the refresh starts [`DEFAULT_REFRESH_MARGIN_S`]
//! before expiry while the current token is still served, and only when there is no
//! valid token at all does a request fail. After a failed fetch the next attempt
//! waits 1 s, 2 s, 4 s, … up to 60 s ([`backoff_s`]); a success resets it. A fetch
//! that never answers is abandoned after [`DEFAULT_FETCH_TIMEOUT_S`].

use std::fmt;

use serde::Deserialize;

/// Host of the GCE / GKE metadata server.
pub const METADATA_HOST: &str = "metadata.google.internal";
/// Path of the default service account's access token on the metadata server.
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// The header the metadata server requires (and without which it answers 403).
pub const METADATA_FLAVOR_HEADER: (&str, &str) = ("metadata-flavor", "Google");

/// The call that fetches a token from `endpoint`: its cluster and request headers.
pub fn fetch_request(
    endpoint: &crate::providers::config::TokenEndpoint,
) -> (&str, [(&str, &str); 4]) {
    let host = endpoint.host.as_deref().unwrap_or(METADATA_HOST);
    let path = endpoint.path.as_deref().unwrap_or(METADATA_TOKEN_PATH);
    (
        &endpoint.cluster,
        [
            (":method", "GET"),
            (":path", path),
            (":authority", host),
            METADATA_FLAVOR_HEADER,
        ],
    )
}

/// Start refreshing this long before the token expires.
pub const DEFAULT_REFRESH_MARGIN_S: u64 = 300;
/// A fetch without an answer after this long is considered lost.
pub const DEFAULT_FETCH_TIMEOUT_S: u64 = 30;
/// First and last retry delay after failed fetches.
pub const MIN_BACKOFF_S: u64 = 1;
pub const MAX_BACKOFF_S: u64 = 60;

/// Retry delay after `failures` consecutive failed fetches (≥ 1): 1, 2, 4, … 60 s.
pub fn backoff_s(failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(16);
    MIN_BACKOFF_S.saturating_mul(1u64 << exp).min(MAX_BACKOFF_S)
}

#[derive(Clone, PartialEq, Eq)]
struct Token {
    value: String,
    /// `None`: never expires (static token).
    expires_at_s: Option<u64>,
    /// When to start refreshing (fetched tokens only).
    refresh_at_s: u64,
}

/// See the module documentation. `Debug` never shows the token.
#[derive(Clone)]
pub struct TokenCache {
    fetched: bool,
    token: Option<Token>,
    refresh_margin_s: u64,
    fetch_timeout_s: u64,
    in_flight_since_s: Option<u64>,
    failures: u32,
    next_attempt_s: u64,
    last_error: Option<String>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("source", &if self.fetched { "endpoint" } else { "static" })
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "expires_at_s",
                &self.token.as_ref().and_then(|t| t.expires_at_s),
            )
            .field("in_flight_since_s", &self.in_flight_since_s)
            .field("failures", &self.failures)
            .field("next_attempt_s", &self.next_attempt_s)
            .field("last_error", &self.last_error)
            .finish()
    }
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    token_type: Option<String>,
}

/// An OAuth 2 bearer token is a `b64token` (RFC 6750 §2.1): it goes into a header,
/// so anything else (spaces, control characters, non-ASCII) is refused.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

impl TokenCache {
    /// A cache that fetches its token from an endpoint, refreshing
    /// [`DEFAULT_REFRESH_MARGIN_S`] before expiry.
    pub fn fetched() -> Self {
        Self::fetched_with(DEFAULT_REFRESH_MARGIN_S, DEFAULT_FETCH_TIMEOUT_S)
    }

    pub fn fetched_with(refresh_margin_s: u64, fetch_timeout_s: u64) -> Self {
        TokenCache {
            fetched: true,
            token: None,
            refresh_margin_s,
            fetch_timeout_s: fetch_timeout_s.max(1),
            in_flight_since_s: None,
            failures: 0,
            next_attempt_s: 0,
            last_error: None,
        }
    }

    /// A static token (e.g. from the environment): never fetched, never expires.
    /// An empty or malformed token gives a cache without a token (requests get 503).
    pub fn from_static(token: &str) -> Self {
        let token = token.trim();
        let valid = is_b64token(token);
        TokenCache {
            fetched: false,
            token: valid.then(|| Token {
                value: token.to_string(),
                expires_at_s: None,
                refresh_at_s: u64::MAX,
            }),
            refresh_margin_s: 0,
            fetch_timeout_s: DEFAULT_FETCH_TIMEOUT_S,
            in_flight_since_s: None,
            failures: 0,
            next_attempt_s: 0,
            last_error: (!valid).then(|| "static token is empty or malformed".to_string()),
        }
    }

    /// True when the root context should start a fetch now: the cache fetches its
    /// token, no fetch is in flight (or the one in flight timed out), the backoff
    /// after a failure has passed, and there is no token or it is within the refresh
    /// margin of its expiry.
    pub fn needs_refresh(&self, now_s: u64) -> bool {
        if !self.fetched || self.fetch_in_flight(now_s) || now_s < self.next_attempt_s {
            return false;
        }
        match &self.token {
            None => true,
            Some(t) => now_s >= t.refresh_at_s,
        }
    }

    /// True while a fetch started less than the fetch timeout ago is unanswered.
    pub fn fetch_in_flight(&self, now_s: u64) -> bool {
        matches!(self.in_flight_since_s,
            Some(since) if now_s < since.saturating_add(self.fetch_timeout_s))
    }

    /// Records that a fetch was dispatched. Returns false (and changes nothing) when
    /// one is already in flight or the cache holds a static token.
    pub fn begin_fetch(&mut self, now_s: u64) -> bool {
        if !self.fetched || self.fetch_in_flight(now_s) {
            return false;
        }
        if self.in_flight_since_s.is_some() {
            // The previous fetch never answered.
            self.record_failure(now_s, "token fetch timed out".to_string());
            // A timed-out fetch still counts, but the caller is already dispatching.
        }
        self.in_flight_since_s = Some(now_s);
        true
    }

    /// Handles the token endpoint's answer (`status` 0: no response). On success the
    /// new token replaces the old one and the backoff resets; on failure the current
    /// token (if still valid) stays in use and the next attempt is delayed.
    pub fn on_fetch_response(
        &mut self,
        status: u32,
        body: &[u8],
        now_s: u64,
    ) -> Result<(), String> {
        self.in_flight_since_s = None;
        match Self::parse(status, body) {
            Ok((value, expires_in)) => {
                let expires_at = now_s.saturating_add(expires_in);
                // A margin longer than the token's life would refresh continuously:
                // refresh at the latest half-way through the lifetime.
                let margin = self.refresh_margin_s.min(expires_in / 2);
                self.token = Some(Token {
                    value,
                    expires_at_s: Some(expires_at),
                    refresh_at_s: expires_at.saturating_sub(margin),
                });
                self.failures = 0;
                self.next_attempt_s = 0;
                self.last_error = None;
                Ok(())
            }
            Err(e) => {
                self.record_failure(now_s, e.clone());
                Err(e)
            }
        }
    }

    /// The fetch could not be dispatched or was abandoned without an answer.
    pub fn on_fetch_failed(&mut self, now_s: u64, reason: &str) {
        self.in_flight_since_s = None;
        self.record_failure(now_s, reason.to_string());
    }

    /// The token to send, if one is valid now (not yet expired).
    pub fn token(&self, now_s: u64) -> Option<&str> {
        self.token
            .as_ref()
            .filter(|t| t.expires_at_s.is_none_or(|e| now_s < e))
            .map(|t| t.value.as_str())
    }

    /// `Bearer <token>` for the `authorization` header, if a token is valid now.
    pub fn authorization(&self, now_s: u64) -> Option<String> {
        self.token(now_s).map(|t| format!("Bearer {t}"))
    }

    /// Expiry of the current token (`None`: no token, or a static one).
    pub fn expires_at_s(&self) -> Option<u64> {
        self.token.as_ref().and_then(|t| t.expires_at_s)
    }

    /// Consecutive failed fetches since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Earliest time of the next fetch after a failure (0 when not backing off).
    pub fn next_attempt_s(&self) -> u64 {
        self.next_attempt_s
    }

    /// Why the last fetch failed (never contains a token).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn record_failure(&mut self, now_s: u64, reason: String) {
        self.failures = self.failures.saturating_add(1);
        self.next_attempt_s = now_s.saturating_add(backoff_s(self.failures));
        self.last_error = Some(reason);
    }

    fn parse(status: u32, body: &[u8]) -> Result<(String, u64), String> {
        if status == 0 {
            return Err("token endpoint did not answer".to_string());
        }
        if status != 200 {
            return Err(format!("token endpoint answered HTTP {status}"));
        }
        let r: TokenResponse = serde_json::from_slice(body)
            .map_err(|e| format!("token endpoint answer is not a token: {e}"))?;
        if let Some(kind) = &r.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(format!(
                    "token endpoint returned token_type `{kind}`, expected Bearer"
                ));
            }
        }
        if !is_b64token(&r.access_token) {
            return Err("token endpoint returned an empty or malformed access_token".to_string());
        }
        if r.expires_in == 0 {
            return Err("token endpoint returned expires_in 0".to_string());
        }
        Ok((r.access_token, r.expires_in))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(token: &str, expires_in: u64) -> Vec<u8> {
        format!(r#"{{"access_token":"{token}","expires_in":{expires_in},"token_type":"Bearer"}}"#)
            .into_bytes()
    }

    #[test]
    fn fetch_then_serve_then_refresh_within_margin_keeping_the_old_token() {
        let mut c = TokenCache::fetched();
        let t0 = 1_000;
        assert!(c.needs_refresh(t0));
        assert_eq!(c.token(t0), None);
        assert!(c.begin_fetch(t0));
        assert!(!c.needs_refresh(t0 + 1), "in flight");
        c.on_fetch_response(200, &answer("ya29.first", 3599), t0 + 1)
            .unwrap();
        let exp = t0 + 1 + 3599;
        assert_eq!(c.expires_at_s(), Some(exp));
        assert_eq!(c.token(t0 + 1), Some("ya29.first"));
        assert_eq!(
            c.authorization(t0 + 1).as_deref(),
            Some("Bearer ya29.first")
        );
        // Not yet within the 300 s margin.
        assert!(!c.needs_refresh(exp - 301));
        assert!(c.needs_refresh(exp - 300));
        // The refresh is in flight: requests keep using the current token.
        assert!(c.begin_fetch(exp - 300));
        assert_eq!(c.token(exp - 200), Some("ya29.first"));
        c.on_fetch_response(200, &answer("ya29.second", 3600), exp - 200)
            .unwrap();
        assert_eq!(c.token(exp - 200), Some("ya29.second"));
        assert!(!c.needs_refresh(exp));
    }

    #[test]
    fn token_is_not_served_once_expired() {
        let mut c = TokenCache::fetched();
        c.begin_fetch(0);
        c.on_fetch_response(200, &answer("tok", 100), 0).unwrap();
        assert_eq!(c.token(99), Some("tok"));
        assert_eq!(c.token(100), None);
        assert_eq!(c.authorization(100), None);
        assert!(c.needs_refresh(100));
    }

    #[test]
    fn short_lived_token_refreshes_half_way_not_continuously() {
        let mut c = TokenCache::fetched();
        c.begin_fetch(0);
        c.on_fetch_response(200, &answer("tok", 120), 0).unwrap();
        assert!(!c.needs_refresh(0));
        assert!(!c.needs_refresh(59));
        assert!(c.needs_refresh(60));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_a_minute_and_success_resets() {
        assert_eq!(
            (1..=9).map(backoff_s).collect::<Vec<_>>(),
            vec![1, 2, 4, 8, 16, 32, 60, 60, 60]
        );
        assert_eq!(backoff_s(u32::MAX), 60);
        let mut c = TokenCache::fetched();
        let mut now = 10;
        for (i, delay) in [1u64, 2, 4, 8, 16, 32, 60, 60].into_iter().enumerate() {
            assert!(c.needs_refresh(now), "attempt {i}");
            assert!(c.begin_fetch(now));
            let err = c.on_fetch_response(503, b"busy", now).unwrap_err();
            assert!(err.contains("503"), "{err}");
            assert_eq!(c.failures(), u32::try_from(i + 1).unwrap());
            assert!(!c.needs_refresh(now + delay - 1), "attempt {i} too early");
            now += delay;
        }
        assert!(c.needs_refresh(now));
        c.begin_fetch(now);
        c.on_fetch_response(200, &answer("tok", 3600), now).unwrap();
        assert_eq!(
            (c.failures(), c.next_attempt_s(), c.last_error()),
            (0, 0, None)
        );
    }

    #[test]
    fn a_failed_refresh_keeps_the_valid_token() {
        let mut c = TokenCache::fetched();
        c.begin_fetch(0);
        c.on_fetch_response(200, &answer("tok", 1000), 0).unwrap();
        assert!(c.begin_fetch(700));
        c.on_fetch_failed(700, "dispatch failed");
        assert_eq!(c.token(701), Some("tok"));
        assert!(!c.needs_refresh(700));
        assert!(c.needs_refresh(701));
        assert_eq!(c.last_error(), Some("dispatch failed"));
    }

    #[test]
    fn concurrent_begin_fetch_is_ignored_until_the_fetch_times_out() {
        let mut c = TokenCache::fetched_with(300, 30);
        assert!(c.begin_fetch(0));
        assert!(!c.begin_fetch(0));
        assert!(!c.begin_fetch(29));
        assert!(c.fetch_in_flight(29));
        // Lost fetch: after the timeout it counts as a failure and the backoff applies.
        assert!(!c.fetch_in_flight(30));
        assert!(c.needs_refresh(30));
        assert!(c.begin_fetch(30));
        assert_eq!(c.failures(), 1);
        assert_eq!(c.last_error(), Some("token fetch timed out"));
        // The late answer of either fetch is still a usable token.
        c.on_fetch_response(200, &answer("late", 3600), 31).unwrap();
        assert_eq!(c.token(31), Some("late"));
        assert!(!c.fetch_in_flight(31));
    }

    #[test]
    fn malformed_answers_are_rejected() {
        let cases: &[(u32, &[u8])] = &[
            (0, b""),
            (
                403,
                br#"{"error":"Missing Metadata-Flavor:Google header."}"#,
            ),
            (200, b"not json"),
            (200, b""),
            (200, br#"{"expires_in":3599,"token_type":"Bearer"}"#),
            (
                200,
                br#"{"access_token":"","expires_in":3599,"token_type":"Bearer"}"#,
            ),
            (200, br#"{"access_token":"a b","expires_in":3599}"#),
            (
                200,
                br#"{"access_token":"tok\r\nx-evil: 1","expires_in":3599}"#,
            ),
            (200, br#"{"access_token":"tok","expires_in":0}"#),
            (200, br#"{"access_token":"tok","expires_in":-5}"#),
            (200, br#"{"access_token":"tok","expires_in":"3599"}"#),
            (200, br#"{"access_token":"tok"}"#),
            (
                200,
                br#"{"access_token":"tok","expires_in":3599,"token_type":"MAC"}"#,
            ),
            (200, br#"{"access_token":42,"expires_in":3599}"#),
            (200, br#"[]"#),
        ];
        for (status, body) in cases {
            let mut c = TokenCache::fetched();
            c.begin_fetch(0);
            let r = c.on_fetch_response(*status, body, 0);
            assert!(r.is_err(), "{status} {}", String::from_utf8_lossy(body));
            assert_eq!(c.token(0), None);
            assert_eq!(c.failures(), 1);
            assert!(!c.needs_refresh(0), "backing off");
        }
        // Token type is case-insensitive and optional; `=` padding is allowed.
        let mut c = TokenCache::fetched();
        c.on_fetch_response(
            200,
            br#"{"access_token":"ab+/c==","expires_in":60,"token_type":"bearer"}"#,
            0,
        )
        .unwrap();
        c.on_fetch_response(200, br#"{"access_token":"x.y-z_~","expires_in":60}"#, 0)
            .unwrap();
        assert_eq!(c.token(0), Some("x.y-z_~"));
    }

    #[test]
    fn static_token_is_served_forever_and_never_fetched() {
        let mut c = TokenCache::from_static("  ya29.static \n");
        assert_eq!(c.token(u64::MAX), Some("ya29.static"));
        assert!(!c.needs_refresh(0));
        assert!(!c.begin_fetch(0));
        assert_eq!(c.expires_at_s(), None);
        let empty = TokenCache::from_static("");
        assert_eq!(empty.token(0), None);
        assert!(!empty.needs_refresh(0));
        assert!(empty.last_error().is_some());
        assert_eq!(TokenCache::from_static("a\nb").token(0), None);
    }

    #[test]
    fn debug_redacts_the_token() {
        let mut c = TokenCache::fetched();
        c.on_fetch_response(200, &answer("ya29.secret-value", 3600), 0)
            .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("secret"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
        let d = format!("{:?}", TokenCache::from_static("ya29.secret-static"));
        assert!(!d.contains("secret"), "{d}");
    }

    #[test]
    fn expiry_saturates_near_the_end_of_time() {
        let mut c = TokenCache::fetched();
        c.on_fetch_response(200, &answer("tok", u64::MAX), u64::MAX - 1)
            .unwrap();
        assert_eq!(c.token(u64::MAX - 1), Some("tok"));
        assert_eq!(c.expires_at_s(), Some(u64::MAX));
    }

    proptest::proptest! {
        #[test]
        fn random_answers_and_clocks_never_panic(
            status in 0u32..700,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            now in proptest::prelude::any::<u64>(),
            margin in proptest::prelude::any::<u64>(),
        ) {
            let mut c = TokenCache::fetched_with(margin, 30);
            let _ = c.needs_refresh(now);
            c.begin_fetch(now);
            let ok = c.on_fetch_response(status, &body, now).is_ok();
            if !ok {
                proptest::prop_assert!(c.token(now).is_none());
            }
            let _ = (c.needs_refresh(now.saturating_add(1)), format!("{c:?}"));
        }
    }
}
