//! What the root context does, once per Envoy worker: load the configuration, keep the
//! Vertex AI tokens fresh, and send the queued global-quota corrections.
//!
//! Host-free like the per-request flow: the glue implements [`RootHost`] (a few calls
//! out and a clock) and hands each root callback to [`RootFlow`]; unit tests use a fake.

use crate::config::{Config, ConfigError};
use crate::flow::Worker;
use crate::providers::vertex::token::{self, TokenCache};
use crate::quota::rls;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// How often the root context sends queued quota corrections and checks the tokens.
pub const TICK: Duration = Duration::from_millis(200);

/// How long a token fetch may take.
const TOKEN_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// What the root context needs from its host.
pub trait RootHost {
    /// Wall-clock seconds since the Unix epoch.
    fn now_s(&self) -> u64;
    /// Starts an HTTP call without a body; `None` when it could not be started. Its answer
    /// reaches [`RootFlow::on_http_call_response`] with the returned id.
    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Option<u32>;
    /// Starts a unary gRPC call whose answer nobody waits for; `false` when it could not
    /// be started.
    fn dispatch_grpc_call(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout: Duration,
    ) -> bool;
}

/// The root context's state: the configuration and the worker state its requests share.
pub struct RootFlow {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
    /// Token fetches in flight: call id → provider index.
    token_calls: HashMap<u32, usize>,
}

impl RootFlow {
    /// Loads the configuration (`env` reads the environment), with a token cache for
    /// every provider that fetches its token from an endpoint.
    pub fn configure(
        json: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RootFlow, ConfigError> {
        let config = Config::parse(json, env)?;
        config.log_missing_keys();
        let mut worker = Worker::default();
        for (i, p) in config.providers.iter().enumerate() {
            if p.token_endpoint.is_some() {
                worker.tokens.insert(i, TokenCache::fetched());
            }
        }
        Ok(RootFlow {
            config: Rc::new(config),
            worker: Rc::new(RefCell::new(worker)),
            token_calls: HashMap::new(),
        })
    }

    pub fn config(&self) -> &Rc<Config> {
        &self.config
    }

    pub fn worker(&self) -> &Rc<RefCell<Worker>> {
        &self.worker
    }

    /// The tick the root context needs: only with global quotas (corrections to send) or
    /// tokens to refresh.
    pub fn tick_period(&self) -> Option<Duration> {
        let global = self
            .config
            .policy
            .as_ref()
            .and_then(|p| p.quotas.as_ref())
            .is_some_and(|q| q.global.is_some());
        (global || !self.worker.borrow().tokens.is_empty()).then_some(TICK)
    }

    pub fn on_tick(&mut self, host: &mut dyn RootHost) {
        self.refresh_tokens(host);
        let calls = self.worker.borrow_mut().outbox.drain();
        for call in calls {
            let sent = host.dispatch_grpc_call(
                &call.cluster,
                rls::SERVICE,
                rls::METHOD,
                &call.message,
                Duration::from_millis(call.timeout_ms),
            );
            if !sent {
                log::warn!(
                    "llm-gateway: could not send a quota correction to cluster {:?}",
                    call.cluster
                );
            }
        }
    }

    /// A token endpoint answered (`status` 0 when the call failed). Answers to calls this
    /// flow did not start are ignored.
    pub fn on_http_call_response(&mut self, call: u32, status: u32, body: &[u8], now_s: u64) {
        let Some(index) = self.token_calls.remove(&call) else {
            return;
        };
        if let Some(cache) = self.worker.borrow_mut().tokens.get_mut(&index) {
            if let Err(e) = cache.on_fetch_response(status, body, now_s) {
                log::warn!("llm-gateway: Vertex AI token fetch failed: {e}");
            }
        }
    }

    /// Starts a token fetch for every provider whose token is missing or close to expiry;
    /// requests keep using the current token meanwhile.
    fn refresh_tokens(&mut self, host: &mut dyn RootHost) {
        let now = host.now_s();
        let mut worker = self.worker.borrow_mut();
        for (index, cache) in worker.tokens.iter_mut() {
            if !cache.needs_refresh(now) {
                continue;
            }
            let Some(endpoint) = self
                .config
                .provider(*index)
                .and_then(|p| p.token_endpoint.as_ref())
            else {
                continue;
            };
            let (cluster, headers) = token::fetch_request(endpoint);
            match host.dispatch_http_call(cluster, &headers, TOKEN_FETCH_TIMEOUT) {
                Some(call) => {
                    cache.begin_fetch(now);
                    self.token_calls.insert(call, *index);
                }
                None => {
                    cache.on_fetch_failed(now, "the token endpoint cluster could not be called")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::rls::{Correction, Descriptor, RateLimitRequest};

    #[derive(Default)]
    struct FakeRoot {
        now: u64,
        http: Vec<(String, Vec<(String, String)>)>,
        grpc: Vec<(String, String, String, Vec<u8>, Duration)>,
        refuse: bool,
    }

    impl RootHost for FakeRoot {
        fn now_s(&self) -> u64 {
            self.now
        }
        fn dispatch_http_call(
            &mut self,
            cluster: &str,
            headers: &[(&str, &str)],
            _timeout: Duration,
        ) -> Option<u32> {
            if self.refuse {
                return None;
            }
            let headers = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.http.push((cluster.to_string(), headers));
            u32::try_from(self.http.len()).ok()
        }
        fn dispatch_grpc_call(
            &mut self,
            cluster: &str,
            service: &str,
            method: &str,
            message: &[u8],
            timeout: Duration,
        ) -> bool {
            self.grpc.push((
                cluster.into(),
                service.into(),
                method.into(),
                message.to_vec(),
                timeout,
            ));
            !self.refuse
        }
    }

    const VERTEX: &str = r#"{"providers":[
        {"name":"v","type":"vertex","cluster":"vertex","project":"p","region":"us-central1",
         "token_endpoint":{"cluster":"metadata"}},
        {"name":"o","type":"openai","cluster":"o"}]}"#;

    fn root(json: &str) -> RootFlow {
        RootFlow::configure(json.as_bytes(), &|_| None).unwrap()
    }

    #[test]
    fn tokens_are_fetched_once_per_need_and_kept() {
        let mut r = root(VERTEX);
        assert_eq!(r.tick_period(), Some(TICK));
        let mut host = FakeRoot {
            now: 1_000,
            ..FakeRoot::default()
        };
        r.on_tick(&mut host);
        assert_eq!(host.http.len(), 1);
        let (cluster, headers) = &host.http[0];
        assert_eq!(cluster, "metadata");
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get(":method"), Some("GET"));
        assert_eq!(get(":authority"), Some(token::METADATA_HOST));
        assert_eq!(get(":path"), Some(token::METADATA_TOKEN_PATH));
        assert_eq!(get("metadata-flavor"), Some("Google"));
        // In flight: the next tick does not ask again.
        r.on_tick(&mut host);
        assert_eq!(host.http.len(), 1);
        // An answer to a call it did not start changes nothing.
        r.on_http_call_response(99, 200, br#"{"access_token":"x","expires_in":3600}"#, 1_000);
        assert!(r.worker().borrow().tokens[&0]
            .authorization(1_000)
            .is_none());
        r.on_http_call_response(
            1,
            200,
            br#"{"access_token":"ya29.t","expires_in":3600}"#,
            1_000,
        );
        assert_eq!(
            r.worker().borrow().tokens[&0]
                .authorization(1_001)
                .as_deref(),
            Some("Bearer ya29.t")
        );
        // Fresh: no fetch until it nears expiry.
        host.now = 2_000;
        r.on_tick(&mut host);
        assert_eq!(host.http.len(), 1);
        host.now = 1_000 + 3_600 - 10;
        r.on_tick(&mut host);
        assert_eq!(host.http.len(), 2);
    }

    #[test]
    fn a_fetch_that_cannot_start_is_a_failure_tried_again_later() {
        let mut r = root(VERTEX);
        let mut host = FakeRoot {
            now: 50,
            refuse: true,
            ..FakeRoot::default()
        };
        r.on_tick(&mut host);
        let w = r.worker().borrow();
        assert_eq!(w.tokens[&0].failures(), 1);
        assert!(w.tokens[&0].next_attempt_s() > 50);
    }

    #[test]
    fn queued_corrections_go_out_on_the_tick() {
        let mut r = root(r#"{"providers":[{"name":"o","type":"openai","cluster":"o"}]}"#);
        assert_eq!(r.tick_period(), None);
        let req = RateLimitRequest {
            domain: "llm-gateway".to_string(),
            descriptors: vec![Descriptor {
                entries: vec![("consumer".to_string(), "a".to_string())],
                limit: None,
            }],
            hits_addend: 0,
        };
        r.worker().borrow_mut().outbox.push(
            "rls",
            250,
            Correction {
                target: req.encode(),
                hits: 7,
            },
        );
        let mut host = FakeRoot::default();
        r.on_tick(&mut host);
        assert_eq!(host.grpc.len(), 1);
        let (cluster, service, method, message, timeout) = &host.grpc[0];
        assert_eq!(cluster, "rls");
        assert_eq!(
            (service.as_str(), method.as_str()),
            (rls::SERVICE, rls::METHOD)
        );
        assert_eq!(*timeout, Duration::from_millis(250));
        assert_eq!(message, &Correction::message(&req.encode(), 7));
        r.on_tick(&mut host);
        assert_eq!(host.grpc.len(), 1, "the outbox is empty after a tick");
    }

    #[test]
    fn a_bad_configuration_names_its_path() {
        let e = RootFlow::configure(
            br#"{"providers":[{"name":"x","type":"nope","cluster":"c"}]}"#,
            &|_| None,
        )
        .err()
        .unwrap();
        assert_eq!(e.path, "providers[0].type");
    }
}
