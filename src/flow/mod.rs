//! The per-request logic: what happens to one HTTP request and its response.
//!
//! Host-free: it talks to Envoy only through the `host` traits, so every branch is
//! unit-tested natively; `filter` maps proxy-wasm callbacks onto these methods.

pub mod models_list;
pub mod request;
pub mod response;
pub mod root;

use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint, CLIENT_CREDENTIAL_HEADERS};
use crate::config::{Attribute, Config};
use crate::host::{BodyHost, PlacedBuf};
use crate::metrics::{Metrics, Outcome, RequestLabels};
use crate::providers;
use crate::providers::config::Provider;
use crate::quota::errors::Exceeded;
use crate::quota::local::{self, Admission, Reservation};
use crate::quota::outbox::Outbox;
use crate::quota::{self, meter, rls, Caller, Plan, RateLimitInfo, RequestFacts};
use crate::tokens::estimate;

use crate::flow::response::{ResponsePlan, ResponseTap, TapMode};
use crate::tokens::usage::Usage;
use crate::translate::anthropic as translate;
use std::cell::RefCell;
use std::rc::Rc;

/// What the filter tells Envoy after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Let the headers/body go on.
    Continue,
    /// Hold headers and buffer the body until more arrives.
    Pause,
    /// A local reply was sent; stop processing.
    Replied,
}

/// Set to `true` on routed streaming requests, so routes can tell streams apart (the
/// shipped demo provider answers them with an event stream). Internal like the routing
/// headers: a client-sent copy is removed.
pub const STREAM_HEADER: &str = "x-llm-gateway-stream";

/// Streaming request bodies up to this size get the tokenizer-free estimate of their
/// prompt (kept in case usage never arrives); larger ones the cheap `bytes / 4` bound.
const FULL_ESTIMATE_MAX_BYTES: usize = 256 * 1024;

/// Streaming request bodies up to this size are kept (instead of estimated at once) until
/// the provider reports usage, which for OpenAI-style streams is their last chunk: this
/// bounds what a stream holds in the VM while it lasts.
const DEFERRED_ESTIMATE_MAX_BYTES: usize = 16 * 1024;

/// The prompt tokens to charge for a stream that never reports usage.
enum InputEstimate {
    /// Not a stream, or the provider has reported usage: nothing to estimate.
    None,
    Known(u64),
    /// The request body, estimated only if the stream ends without usage, so the
    /// estimate (a parse and a pass over all prompt text) leaves the common path. Kept
    /// until usage arrives: up to [`DEFERRED_ESTIMATE_MAX_BYTES`] for any stream, and up
    /// to [`FULL_ESTIMATE_MAX_BYTES`] for providers that report usage in their first
    /// event (Anthropic's `message_start`), where the copy lives only until that event.
    Deferred(Vec<u8>),
}

impl InputEstimate {
    fn tokens(&self) -> Option<u64> {
        match self {
            InputEstimate::None => None,
            InputEstimate::Known(n) => Some(*n),
            InputEstimate::Deferred(body) => Some(estimate::estimate_request_input_tokens(body)),
        }
    }
}

/// Names of the access-log attributes (Envoy filter state `wasm.<name>`).
pub mod attr {
    use crate::config::Attribute;
    pub const PROVIDER: &str = Attribute::Provider.name();
    pub const MODEL: &str = Attribute::Model.name();
    pub const REQUESTED_MODEL: &str = Attribute::RequestedModel.name();
    pub const INPUT_TOKENS: &str = Attribute::InputTokens.name();
    pub const OUTPUT_TOKENS: &str = Attribute::OutputTokens.name();
    pub const TOTAL_TOKENS: &str = Attribute::TotalTokens.name();
    pub const CACHED_INPUT_TOKENS: &str = Attribute::CachedInputTokens.name();
    pub const USAGE_ESTIMATED: &str = Attribute::UsageEstimated.name();
    pub const ERROR: &str = Attribute::Error.name();
}

/// State shared by all requests of one Wasm VM (one Envoy worker).
#[derive(Default)]
pub struct Worker {
    pub metrics: Metrics,
    /// Quota corrections waiting for the root context's next tick.
    pub outbox: Outbox,
    /// Vertex AI token caches by provider index (providers with a `token_endpoint`).
    pub tokens: std::collections::HashMap<usize, crate::providers::vertex::token::TokenCache>,
}

struct Route {
    provider: usize,
    upstream_model: String,
    endpoint: Endpoint,
    upstream: Api,
}

pub struct RequestFlow {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
    started_ns: u64,
    endpoint: Option<Endpoint>,
    route: Option<Route>,
    status: Option<u32>,
    /// The gateway added `stream_options.include_usage`; the usage chunk is not the client's.
    injected_usage: bool,
    /// The client asked for `stream_options.include_usage` itself.
    client_include_usage: bool,
    /// Prompt tokens for a stream that never reports usage.
    input_estimate: InputEstimate,
    tap: ResponseTap,
    response_complete: bool,
    first_content_ns: Option<u64>,
    usage: Option<Usage>,
    logged: bool,
    /// Who is calling (when consumers/identity are configured).
    caller: Option<Caller>,
    /// The quota charges of this request, while an admission or correction may follow.
    plan: Option<Plan>,
    /// Local-mode tokens held for this request until its usage is known.
    reservation: Option<Reservation>,
    /// A global-mode admission answered `Admit`: a correction may follow.
    globally_counted: bool,
    /// Waiting for the rate limit service's answer.
    awaiting_admission: bool,
    /// `x-ratelimit-*` for the response.
    rate_limit: Option<RateLimitInfo>,
}

impl RequestFlow {
    pub fn new(config: Rc<Config>, worker: Rc<RefCell<Worker>>) -> Self {
        RequestFlow {
            config,
            worker,
            started_ns: 0,
            endpoint: None,
            route: None,
            status: None,
            injected_usage: false,
            client_include_usage: false,
            input_estimate: InputEstimate::None,
            tap: ResponseTap::Ignore,
            response_complete: false,
            first_content_ns: None,
            usage: None,
            logged: false,
            caller: None,
            plan: None,
            reservation: None,
            globally_counted: false,
            awaiting_admission: false,
            rate_limit: None,
        }
    }

    fn reject(
        &mut self,
        host: &mut dyn BodyHost,
        e: &GatewayError,
        extra: &[(&str, &str)],
    ) -> Flow {
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        headers.extend_from_slice(extra);
        self.plan = None;
        self.publish(host, Attribute::Error, e.code.as_bytes());
        let api = self.endpoint.map(Api::of_client).unwrap_or(Api::OpenAi);
        host.send_reply(e.status, &e.body_for(api), &headers);
        self.worker
            .borrow_mut()
            .metrics
            .record_rejection(host, e.code);
        Flow::Replied
    }

    /// Writes an access-log attribute, unless the configuration leaves it out.
    fn publish(&self, host: &mut dyn BodyHost, a: Attribute, value: &[u8]) {
        if self.config.attributes.contains(a) {
            host.set_attribute(a.name(), value);
        }
    }

    /// [`Self::publish`] for a value that is only formatted when it is written.
    fn publish_with(&self, host: &mut dyn BodyHost, a: Attribute, value: impl FnOnce() -> Vec<u8>) {
        if self.config.attributes.contains(a) {
            host.set_attribute(a.name(), &value());
        }
    }

    pub fn on_request_headers(&mut self, host: &mut dyn BodyHost, end_of_stream: bool) -> Flow {
        self.started_ns = host.now_ns();
        strip_internal_headers(host, &self.config);

        let path = host.request_header(":path").unwrap_or_default();
        if let Some(listing) = ModelsRequest::from_path(&path) {
            return self.list_models(host, listing);
        }
        let Some(endpoint) = Endpoint::from_path(&path) else {
            return Flow::Continue;
        };
        self.endpoint = Some(endpoint);
        let method = host.request_header(":method").unwrap_or_default();
        if method != "POST" {
            let e = GatewayError::method_not_allowed(&method, &path);
            return self.reject(host, &e, &[("allow", "POST")]);
        }
        let limit = self.config.max_request_bytes;
        if let Some(len) = host.request_header("content-length") {
            if len
                .trim()
                .parse::<u64>()
                .map(|n| n > limit)
                .unwrap_or(false)
            {
                return self.reject(host, &GatewayError::payload_too_large(limit), &[]);
            }
        }
        if end_of_stream {
            let e = GatewayError::invalid_json("the request has no body");
            return self.reject(host, &e, &[]);
        }
        let config = Rc::clone(&self.config);
        if let Some(policy) = &config.policy {
            let jwt = policy.jwt_payload_path().and_then(|p| host.property(&p));
            let caller = {
                let header = |name: &str| host.request_header(name);
                policy.identify(&header, jwt.as_deref())
            };
            match caller {
                Ok(c) => self.caller = Some(c),
                Err(e) => return self.reject(host, &e, &[]),
            }
        }
        Flow::Pause
    }

    pub fn on_request_body(
        &mut self,
        host: &mut dyn BodyHost,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        let Some(endpoint) = self.endpoint else {
            return Flow::Continue;
        };
        if self.route.is_some() {
            return Flow::Continue;
        }
        let limit = self.config.max_request_bytes;
        if body_size as u64 > limit {
            return self.reject(host, &GatewayError::payload_too_large(limit), &[]);
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        let body = host.request_body(body_size).unwrap_or_default();
        match self.route_request(host, endpoint, &body) {
            Ok(flow) => flow,
            Err(Rejection(e, headers)) => {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.reject(host, &e, &headers)
            }
        }
    }

    fn route_request(
        &mut self,
        host: &mut dyn BodyHost,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<Flow, Rejection> {
        let config = Rc::clone(&self.config);
        let info = request::inspect(body)?;
        let resolved = config
            .routes
            .resolve(&info.model)
            .ok_or_else(|| GatewayError::model_not_found(&info.model))?;
        let provider = config
            .provider(resolved.provider)
            .ok_or_else(|| GatewayError::model_not_found(&info.model))?;
        if let (Some(var), None) = (&provider.api_key_env, &provider.api_key) {
            return Err(GatewayError::provider_key_missing(&provider.name, var).into());
        }
        if let (Some(policy), Some(caller)) = (&config.policy, &self.caller) {
            policy.check_model(
                caller,
                &info.model,
                &resolved.upstream_model,
                &provider.name,
            )?;
        }

        let client_api = Api::of_client(endpoint);
        let adapter = providers::adapter(provider.kind);
        let upstream_api = adapter.api();
        let upstream_endpoint = providers::upstream_endpoint(endpoint, provider)?;
        let model = resolved.upstream_model.as_ref();
        let mut inject_usage = false;
        let whole = |b: Vec<u8>| Some(crate::host::BodyEdit::whole(b, body.len()));
        let edit = match (client_api, upstream_api) {
            (Api::OpenAi, Api::Anthropic) => whole(
                translate::chat_request_to_messages(body, model, provider.default_max_tokens)
                    .map_err(GatewayError::from_translate)?,
            ),
            (Api::Anthropic, Api::OpenAi) => whole(
                translate::messages_request_to_chat(body, model)
                    .map_err(GatewayError::from_translate)?,
            ),
            (_, Api::Bedrock) => whole(
                crate::translate::bedrock::chat_request_to_converse(body)
                    .map_err(GatewayError::from_translate)?
                    .0,
            ),
            (_, Api::Gemini) => whole(
                crate::translate::gemini::chat_request_to_gemini(body)
                    .map_err(GatewayError::from_translate)?
                    .0,
            ),
            _ => {
                // Streams report usage only when asked: ask on the client's behalf, and
                // remove the traces of it from what the client receives.
                inject_usage = info.stream && endpoint.streams_usage() && !info.include_usage;
                let rw = request::Rewrite {
                    model: Some(model),
                    include_usage: inject_usage,
                };
                request::rewrite(body, &info, &rw)
            }
        };
        if let Some(edit) = &edit {
            host.edit_request_body(body, edit);
            let len = edit.new_len(body.len());
            host.set_request_header("content-length", &len.to_string());
        }
        if info.stream {
            host.set_request_header(STREAM_HEADER, "true");
        }
        // Where the request goes and how it is authenticated: the provider's adapter
        // decides both, over the request as it will leave Envoy.
        let authority = providers::upstream_host(provider);
        let client_path = host.request_header(":path").unwrap_or_default();
        let query = client_path
            .find('?')
            .and_then(|i| client_path.get(i..))
            .unwrap_or("");
        let path = adapter.path(provider, upstream_endpoint, model, query, info.stream);
        let client_version = (client_api == Api::Anthropic)
            .then(|| host.request_header("anthropic-version"))
            .flatten();
        let worker = Rc::clone(&self.worker);
        let provider_index = resolved.provider;
        let cached_token = move |now_s: u64| {
            worker
                .borrow()
                .tokens
                .get(&provider_index)?
                .authorization(now_s)
        };
        let clock = &*host;
        let now_s = || clock.now_ns() / 1_000_000_000;
        let auth = adapter.authenticate(
            provider,
            &providers::Outgoing {
                authority: authority.as_deref().unwrap_or(""),
                path: &path,
                body_read: body,
                edit: edit.as_ref(),
                now_s: &now_s,
                client_anthropic_version: client_version.as_deref(),
                cached_token: &cached_token,
            },
        )?;
        set_upstream_headers(host, &config, provider, authority.as_deref(), &path, &auth);
        if upstream_api != Api::Anthropic {
            host.remove_request_header("anthropic-version");
            host.remove_request_header("anthropic-beta");
        }
        for (name, value) in &auth {
            host.set_request_header(name, value);
        }
        host.clear_route_cache();

        self.client_include_usage = info.include_usage;
        self.injected_usage = inject_usage;
        if info.stream {
            // Only used when the provider never reports usage; large bodies get the cheap
            // bound instead of a second parse on the request path.
            self.input_estimate = if body.len() > FULL_ESTIMATE_MAX_BYTES {
                InputEstimate::Known(meter::estimate_input_tokens(body.len()))
            } else if body.len() <= DEFERRED_ESTIMATE_MAX_BYTES || upstream_api == Api::Anthropic {
                InputEstimate::Deferred(body.to_vec())
            } else {
                InputEstimate::Known(estimate::estimate_request_input_tokens(body))
            };
        }
        self.publish(host, Attribute::Provider, provider.name.as_bytes());
        self.publish(host, Attribute::Model, resolved.upstream_model.as_bytes());
        self.publish(host, Attribute::RequestedModel, info.model.as_bytes());
        let facts = RequestFacts {
            requested_model: &info.model,
            model,
            provider: &provider.name,
            estimated_input: meter::estimate_input_tokens(body.len()),
            max_output: info.max_output_tokens,
            expects_output: endpoint != Endpoint::Embeddings,
        };
        let flow = self.admit(host, &facts)?;
        self.route = Some(Route {
            provider: resolved.provider,
            upstream_model: resolved.upstream_model.into_owned(),
            endpoint,
            upstream: upstream_api,
        });
        Ok(flow)
    }

    /// Quota admission: reserve locally, or ask the rate limit service (then the request
    /// waits for `on_grpc_response`).
    fn admit(
        &mut self,
        host: &mut dyn BodyHost,
        facts: &RequestFacts<'_>,
    ) -> Result<Flow, Rejection> {
        let config = Rc::clone(&self.config);
        let (Some(quotas), Some(caller)) = (
            config.policy.as_ref().and_then(|p| p.quotas.as_ref()),
            self.caller.clone(),
        ) else {
            return Ok(Flow::Continue);
        };
        let caller = &caller;
        let plan = quotas.plan(caller, facts);
        if plan.is_empty() {
            return Ok(Flow::Continue);
        }
        let now = host.now_ns();
        match &quotas.global {
            None => match local::reserve(host.shared_data(), now, &plan) {
                Ok(Admission::Admitted(reservation)) => {
                    self.rate_limit = reservation.info(now);
                    self.reservation = Some(reservation);
                    self.count_allowed(host, &plan, caller);
                    self.plan = Some(plan);
                    Ok(Flow::Continue)
                }
                Ok(Admission::Denied(e)) => Err(self.limited(host, caller, &e)),
                Err(_busy) => {
                    self.count_quota_error(host, "busy");
                    Err(quota::errors::quota_busy().into())
                }
            },
            Some(global) => match rls::admission_request(global, &plan, now) {
                Ok(None) => Ok(Flow::Continue),
                Ok(Some(message)) => {
                    let call = host.dispatch_grpc(
                        &global.cluster,
                        rls::SERVICE,
                        rls::METHOD,
                        &message,
                        global.timeout_ms,
                    );
                    self.plan = Some(plan);
                    if call.is_some() {
                        self.awaiting_admission = true;
                        Ok(Flow::Pause)
                    } else {
                        self.decide_global(host, None)
                    }
                }
                Err(e) => Err(self.limited(host, caller, &e)),
            },
        }
    }

    /// The rate limit service answered (`None`: the call failed or timed out).
    pub fn on_grpc_response(&mut self, host: &mut dyn BodyHost, response: Option<&[u8]>) -> Flow {
        if !self.awaiting_admission {
            return Flow::Continue;
        }
        self.awaiting_admission = false;
        match self.decide_global(host, response) {
            Ok(_) => {
                host.resume_request();
                Flow::Continue
            }
            Err(Rejection(e, headers)) => {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.route = None;
                self.reject(host, &e, &headers)
            }
        }
    }

    fn decide_global(
        &mut self,
        host: &mut dyn BodyHost,
        response: Option<&[u8]>,
    ) -> Result<Flow, Rejection> {
        let config = Rc::clone(&self.config);
        let (Some(global), Some(plan), Some(caller)) = (
            config
                .policy
                .as_ref()
                .and_then(|p| p.quotas.as_ref())
                .and_then(|q| q.global.as_ref()),
            self.plan.as_ref(),
            self.caller.clone(),
        ) else {
            return Ok(Flow::Continue);
        };
        match rls::decide(global, plan, response, host.now_ns()) {
            rls::Decision::Admit(info) => {
                self.rate_limit = info;
                self.globally_counted = true;
                let plan = plan.clone();
                self.count_allowed(host, &plan, &caller);
                Ok(Flow::Continue)
            }
            rls::Decision::Deny(e) => Err(self.limited(host, &caller, &e)),
            rls::Decision::FailOpen => {
                self.count_quota_error(host, "service_failure_allowed");
                Ok(Flow::Continue)
            }
            rls::Decision::FailClosed(e) => {
                self.count_quota_error(host, "service_failure_denied");
                Err(e.into())
            }
        }
    }

    fn count_allowed(&mut self, host: &mut dyn BodyHost, plan: &Plan, caller: &Caller) {
        let mut w = self.worker.borrow_mut();
        for c in &plan.charges {
            w.metrics.add(
                host,
                format_args!("{}", crate::metrics::quota::allowed(&c.name, caller)),
                1,
            );
        }
    }

    fn count_quota_error(&mut self, host: &mut dyn BodyHost, reason: &str) {
        self.worker.borrow_mut().metrics.add(
            host,
            format_args!("{}", crate::metrics::quota::error(reason)),
            1,
        );
    }

    fn limited(&mut self, host: &mut dyn BodyHost, caller: &Caller, e: &Exceeded) -> Rejection {
        self.worker.borrow_mut().metrics.add(
            host,
            format_args!("{}", crate::metrics::quota::limited(&e.rule, caller)),
            1,
        );
        Rejection(
            quota::errors::rate_limited(&caller.name, e),
            e.info().rejection_headers(),
        )
    }

    pub fn on_response_headers(&mut self, host: &mut dyn BodyHost, end_of_stream: bool) -> Flow {
        let Some(route) = &self.route else {
            return Flow::Continue;
        };
        self.status = host
            .response_header(":status")
            .and_then(|s| s.trim().parse().ok());
        let content_type = host.response_header("content-type").unwrap_or_default();
        let plan = ResponsePlan {
            client: Api::of_client(route.endpoint),
            upstream: route.upstream,
            content_type: &content_type,
            status: self.status,
            drop_injected_usage: self.injected_usage,
            client_include_usage: self.client_include_usage,
            model_for_client: &route.upstream_model,
            // Only Bedrock names its errors in a header.
            error_type: (route.upstream == Api::Bedrock)
                .then(|| host.response_header("x-amzn-errortype"))
                .flatten(),
            // A clock read is a host call: only translated answers need `created`.
            created_unix: if Api::of_client(route.endpoint) == route.upstream {
                0
            } else {
                host.now_ns() / 1_000_000_000
            },
            max_json: self.config.max_response_bytes,
        };
        self.tap = ResponseTap::new(&plan);
        if let Some(info) = &self.rate_limit {
            for (name, value) in info.headers() {
                host.set_response_header(name, &value);
            }
        }
        if let Some(ct) = self.tap.client_content_type() {
            host.set_response_header("content-type", ct);
        }
        let mode = self.tap.mode();
        if matches!(mode, TapMode::Edit | TapMode::BufferWhole) {
            host.remove_response_header("content-length");
        }
        if end_of_stream {
            if mode == TapMode::BufferWhole {
                self.replace_whole_body(host, &[]);
            }
            self.finish_response(host);
            return Flow::Continue;
        }
        if mode == TapMode::BufferWhole {
            // The translated body's length (and, on failure, the status) are only known
            // at the end: hold the headers until then.
            return Flow::Pause;
        }
        Flow::Continue
    }

    pub fn on_response_body(
        &mut self,
        host: &mut dyn BodyHost,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.route.is_none() || self.response_complete {
            return Flow::Continue;
        }
        match self.tap.mode() {
            TapMode::Skip => {}
            TapMode::BufferWhole => {
                if !end_of_stream {
                    return Flow::Pause;
                }
                let body = host.response_body(body_size).unwrap_or_default();
                self.replace_whole_body(host, &body);
            }
            TapMode::Observe | TapMode::Edit => {
                let chunk = if body_size > 0 {
                    host.response_body(body_size).unwrap_or_default()
                } else {
                    PlacedBuf::default()
                };
                let result = self.tap.on_chunk(&chunk, end_of_stream);
                if result.first_content && self.first_content_ns.is_none() {
                    self.first_content_ns = Some(host.now_ns());
                }
                if let Some(bytes) = result.replace {
                    host.replace_response_body(bytes);
                }
                if matches!(self.input_estimate, InputEstimate::Deferred(_))
                    && self.tap.usage().is_some()
                {
                    // Reported usage wins from here on: the body copy can go.
                    self.input_estimate = InputEstimate::None;
                }
            }
        }
        if end_of_stream {
            self.finish_response(host);
        }
        Flow::Continue
    }

    fn replace_whole_body(&mut self, host: &mut dyn BodyHost, body: &[u8]) {
        if let Some(t) = self.tap.translate_whole(body) {
            if Some(t.status) != self.status {
                host.set_response_header(":status", &t.status.to_string());
            }
            host.set_response_header("content-type", "application/json");
            host.set_response_header("content-length", &t.body.len().to_string());
            host.replace_response_body(&t.body);
        }
    }

    /// Usage as reported, or estimated for a stream that never reported it. An error
    /// answer (status >= 400) produced no tokens: nothing is estimated for it.
    fn final_usage(&self) -> Option<Usage> {
        if let Some(u) = self.tap.usage() {
            return Some(u);
        }
        if self.status.is_some_and(|s| s >= 400) {
            return None;
        }
        let input = self.input_estimate.tokens()?;
        let output = self.tap.estimated_output().unwrap_or(0);
        Some(Usage {
            input,
            output,
            estimated: true,
            ..Usage::default()
        })
    }

    fn finish_response(&mut self, host: &mut dyn BodyHost) {
        self.response_complete = true;
        self.usage = self.final_usage();
        if let Some(u) = self.usage {
            let count = |n: u64| n.to_string().into_bytes();
            self.publish_with(host, Attribute::InputTokens, || count(u.input));
            self.publish_with(host, Attribute::OutputTokens, || count(u.output));
            self.publish_with(host, Attribute::TotalTokens, || count(u.total()));
            self.publish_with(host, Attribute::CachedInputTokens, || count(u.cached_input));
            let estimated: &[u8] = if u.estimated { b"true" } else { b"false" };
            self.publish(host, Attribute::UsageEstimated, estimated);
        }
    }

    /// The stream is over (completed, reset or abandoned): record metrics once.
    pub fn on_log(&mut self, host: &mut dyn BodyHost) {
        if self.logged {
            return;
        }
        self.logged = true;
        let Some(route) = &self.route else {
            return;
        };
        if !self.response_complete {
            // Reset, client gone or stream cut: account for what is known.
            self.usage = self.final_usage();
        }
        let Some(provider) = self.config.provider(route.provider) else {
            return;
        };
        let now = host.now_ns();
        let ms = |ns: u64| ns / 1_000_000;
        let upstream_error = match self.status {
            Some(s) if s >= 400 => {
                Some(self.tap.error_type().unwrap_or_else(|| format!("http_{s}")))
            }
            _ => self.tap.error_type(),
        };
        let outcome = Outcome {
            status: self.status,
            duration_ms: ms(now.saturating_sub(self.started_ns)),
            ttft_ms: self
                .first_content_ns
                .map(|t| ms(t.saturating_sub(self.started_ns))),
            usage: self.usage,
            upstream_error,
        };
        let labels = RequestLabels {
            provider: &provider.name,
            model: &route.upstream_model,
            operation: route.endpoint.operation(),
        };
        self.worker
            .borrow_mut()
            .metrics
            .record_request(host, &labels, &outcome);
        self.settle_quota(host);
    }
}

impl RequestFlow {
    /// Replaces the request's reservation by its real cost (local), or reports what it
    /// cost beyond its reservation (global); counts the consumer's tokens.
    fn settle_quota(&mut self, host: &mut dyn BodyHost) {
        let Some(caller) = self.caller.clone() else {
            return;
        };
        if let Some(u) = &self.usage {
            let mut w = self.worker.borrow_mut();
            w.metrics.add(
                host,
                format_args!(
                    "{}",
                    crate::metrics::quota::consumer_tokens(&caller, "input")
                ),
                u.input,
            );
            w.metrics.add(
                host,
                format_args!(
                    "{}",
                    crate::metrics::quota::consumer_tokens(&caller, "output")
                ),
                u.output,
            );
        }
        let Some(plan) = self.plan.take() else {
            return;
        };
        let cost = self.usage.as_ref().map(|u| plan.meter.usage_cost(u));
        if let Some(mut reservation) = self.reservation.take() {
            let outcome = match (&self.usage, self.status) {
                (Some(u), _) => local::Outcome::Usage(*u),
                // The provider answered an error without usage, or never answered.
                (None, Some(s)) if s >= 400 => local::Outcome::Release,
                (None, None) if self.tap.mode() == TapMode::Skip && !self.response_complete => {
                    local::Outcome::Release
                }
                (None, _) => local::Outcome::KeepReserved,
            };
            let settled = reservation.settle(host.shared_data(), outcome);
            if settled.busy > 0 {
                self.count_quota_error_n(host, "busy", settled.busy as u64);
            }
        }
        let global = self
            .config
            .policy
            .as_ref()
            .and_then(|p| p.quotas.as_ref())
            .and_then(|q| q.global.as_ref());
        if let (true, Some(global), Some(cost)) = (self.globally_counted, global, cost) {
            if let Some(c) = rls::correction(global, &plan, cost) {
                let mut worker = self.worker.borrow_mut();
                worker.outbox.push(&global.cluster, global.timeout_ms, c);
            }
        }
        if let Some(cost) = cost {
            self.worker.borrow_mut().metrics.add(
                host,
                format_args!(
                    "{}",
                    crate::metrics::quota::consumer_tokens(&caller, "charged")
                ),
                cost,
            );
        }
    }

    fn count_quota_error_n(&mut self, host: &mut dyn BodyHost, reason: &str, n: u64) {
        self.worker.borrow_mut().metrics.add(
            host,
            format_args!("{}", crate::metrics::quota::error(reason)),
            n,
        );
    }
}

/// `GET /v1/models` or `GET /v1/models/{id}`, answered by the gateway.
pub enum ModelsRequest {
    List,
    One(String),
}

impl ModelsRequest {
    pub fn from_path(path: &str) -> Option<ModelsRequest> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.strip_suffix('/').unwrap_or(path);
        if path == "/v1/models" {
            return Some(ModelsRequest::List);
        }
        let id = path.strip_prefix("/v1/models/")?;
        (!id.is_empty()).then(|| ModelsRequest::One(id.to_string()))
    }
}

impl RequestFlow {
    /// Model discovery from the configured model names (exact rules and aliases), limited
    /// to what the caller may use when consumers are configured.
    fn list_models(&mut self, host: &mut dyn BodyHost, req: ModelsRequest) -> Flow {
        let method = host.request_header(":method").unwrap_or_default();
        if method != "GET" && method != "HEAD" {
            let path = host.request_header(":path").unwrap_or_default();
            let e = GatewayError::method_not_allowed(&method, &path);
            return self.reject(host, &e, &[("allow", "GET")]);
        }
        let config = Rc::clone(&self.config);
        let mut caller = None;
        if let Some(policy) = &config.policy {
            let jwt = policy.jwt_payload_path().and_then(|p| host.property(&p));
            let header = |name: &str| host.request_header(name);
            match policy.identify(&header, jwt.as_deref()) {
                Ok(c) => caller = Some(c),
                Err(e) => return self.reject(host, &e, &[]),
            }
        }
        let allowed = |name: &str| -> Option<String> {
            let r = config.routes.resolve(name)?;
            let provider = config.provider(r.provider)?;
            if let (Some(policy), Some(c)) = (&config.policy, &caller) {
                policy
                    .check_model(c, name, &r.upstream_model, &provider.name)
                    .ok()?;
            }
            Some(provider.name.clone())
        };
        let created = host.now_ns() / 1_000_000_000;
        let body = match req {
            ModelsRequest::List => {
                let mut names: Vec<(String, String)> = config
                    .routes
                    .exact_names()
                    .filter_map(|n| allowed(n).map(|p| (n.to_string(), p)))
                    .collect();
                names.sort();
                let refs: Vec<(&str, &str)> = names
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .collect();
                crate::flow::models_list::models_list(&refs, created)
            }
            ModelsRequest::One(id) => match allowed(&id) {
                Some(owner) => crate::flow::models_list::model_object(&id, &owner, created),
                None => {
                    let e = GatewayError::model_not_found(&id);
                    return self.reject(host, &e, &[]);
                }
            },
        };
        host.send_reply(200, &body, &[("content-type", "application/json")]);
        Flow::Replied
    }
}

/// A request the gateway answers itself, with extra response headers.
pub struct Rejection(pub GatewayError, pub Vec<(&'static str, String)>);

impl From<GatewayError> for Rejection {
    fn from(e: GatewayError) -> Self {
        Rejection(e, Vec::new())
    }
}

/// Routing headers are ours alone: a client-sent copy never survives, whatever the
/// request's path and method, and Envoy routes again without it.
///
/// Envoy may have chosen the route before this filter ran, on the client's copy, so the
/// route cache is cleared when one was removed. The proxy-wasm host clears it on every
/// request-header removal by itself; the dynamic-module host does not, which let a client
/// pick any provider cluster on paths the gateway does not handle. Doing it here, in the
/// shared flow, keeps every host glue honest.
fn strip_internal_headers(host: &mut dyn BodyHost, config: &Config) {
    let mut removed = false;
    for name in [
        config.cluster_header.as_str(),
        config.provider_header.as_str(),
        STREAM_HEADER,
    ] {
        if host.request_header(name).is_some() {
            host.remove_request_header(name);
            removed = true;
        }
    }
    if removed {
        host.clear_route_cache();
    }
}

fn set_upstream_headers(
    host: &mut dyn BodyHost,
    config: &Config,
    provider: &Provider,
    authority: Option<&str>,
    path: &str,
    auth: &providers::Headers,
) {
    host.set_request_header(&config.cluster_header, &provider.cluster);
    host.set_request_header(&config.provider_header, &provider.name);
    if let Some(authority) = authority {
        host.set_request_header(":authority", authority);
    }
    host.set_request_header(":path", path);
    for h in CLIENT_CREDENTIAL_HEADERS {
        if !auth.iter().any(|(name, _)| name == h) {
            host.remove_request_header(h);
        }
    }
    // Usage is read from the response body, so it must not come back compressed.
    host.remove_request_header("accept-encoding");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;
    use serde_json::Value;

    const CONFIG: &str = r#"{
        "providers": [
            {"name":"openai","type":"openai","cluster":"openai_cluster","host":"api.openai.com","api_key_env":"OPENAI_API_KEY"},
            {"name":"groq","type":"openai","cluster":"groq","path_prefix":"/openai/v1","api_key_env":"GROQ_API_KEY"}
        ],
        "models": [
            {"match":"fast","provider":"groq","upstream_model":"llama-3.1-8b-instant"},
            {"match":"gpt-*","provider":"openai"}
        ],
        "max_request_bytes": 1000
    }"#;

    fn flow(env: &[(&str, &str)]) -> RequestFlow {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let config = Config::parse(CONFIG.as_bytes(), &lookup).unwrap();
        RequestFlow::new(Rc::new(config), Rc::new(RefCell::new(Worker::default())))
    }

    fn keys() -> Vec<(&'static str, &'static str)> {
        vec![
            ("OPENAI_API_KEY", "sk-openai"),
            ("GROQ_API_KEY", "gsk-groq"),
        ]
    }

    /// Runs headers + body; returns the flow results.
    fn send(f: &mut RequestFlow, host: &mut FakeHost, body: &[u8]) -> (Flow, Flow) {
        host.request_body = body.to_vec();
        let a = f.on_request_headers(host, false);
        let b = f.on_request_body(host, body.len(), true);
        (a, b)
    }

    fn error_code(host: &FakeHost) -> (u32, String) {
        let reply = host.reply.as_ref().expect("a local reply");
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        (
            reply.status,
            v["error"]["code"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn alias_is_routed_rewritten_and_authorised() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request(
            "POST",
            "/v1/chat/completions?x=1",
            &[
                ("authorization", "Bearer client"),
                ("x-api-key", "c2"),
                ("x-llm-gateway-cluster", "evil"),
                ("accept-encoding", "gzip"),
            ],
        );
        let (a, b) = send(&mut f, &mut host, br#"{"model":"fast","messages":[]}"#);
        assert_eq!((a, b), (Flow::Pause, Flow::Continue));
        let h = &host.request_headers;
        assert_eq!(h["x-llm-gateway-cluster"], "groq");
        assert_eq!(h["x-llm-gateway-provider"], "groq");
        assert_eq!(h[":path"], "/openai/v1/chat/completions?x=1");
        assert_eq!(h["authorization"], "Bearer gsk-groq");
        assert!(!h.contains_key("x-api-key") && !h.contains_key("accept-encoding"));
        assert_eq!(
            host.request_body,
            br#"{"model":"llama-3.1-8b-instant","messages":[]}"#
        );
        assert_eq!(h["content-length"], host.request_body.len().to_string());
        // Once for the client's routing header, once for the gateway's.
        assert_eq!(host.route_cache_cleared, 2);
        assert_eq!(host.attributes[attr::MODEL], b"llama-3.1-8b-instant");
        assert_eq!(host.attributes[attr::REQUESTED_MODEL], b"fast");
    }

    #[test]
    fn unchanged_model_leaves_body_alone() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request("POST", "/v1/embeddings", &[]);
        send(&mut f, &mut host, br#"{"model":"gpt-x","input":"a"}"#);
        assert!(!host.request_headers.contains_key("content-length"));
        assert_eq!(host.request_headers[":authority"], "api.openai.com");
        assert_eq!(host.request_headers[":path"], "/v1/embeddings");
    }

    #[test]
    fn passthrough_paths_are_untouched_except_internal_headers() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request(
            "GET",
            "/v1/files",
            &[
                ("authorization", "Bearer c"),
                ("x-llm-gateway-provider", "x"),
            ],
        );
        assert_eq!(f.on_request_headers(&mut host, true), Flow::Continue);
        assert_eq!(f.on_request_body(&mut host, 0, true), Flow::Continue);
        assert_eq!(host.request_headers["authorization"], "Bearer c");
        assert!(!host.request_headers.contains_key("x-llm-gateway-provider"));
        // Envoy may have routed on the client's copy already: it must route again.
        assert_eq!(host.route_cache_cleared, 1);
        f.on_log(&mut host);
        assert!(host.counters.is_empty());
    }

    #[test]
    fn every_internal_header_is_stripped_on_every_path_and_method() {
        let mut config: Value = serde_json::from_str(CONFIG).unwrap();
        config["cluster_header"] = "x-route-to".into();
        config["provider_header"] = "x-route-provider".into();
        let env = |_: &str| Some("k".to_string());
        let config = Rc::new(Config::parse(config.to_string().as_bytes(), &env).unwrap());
        for (method, path) in [
            ("POST", "/v2/whatever"),
            ("GET", "/anything?x=1"),
            ("PUT", "/v1/chat/completions/"),
            ("DELETE", "/v1/models"),
            ("GET", "/v1/models"),
            ("GET", "/v1/chat/completions"),
            ("POST", "/v1/chat/completions"),
        ] {
            let mut f = RequestFlow::new(Rc::clone(&config), Rc::default());
            let mut host = FakeHost::request(
                method,
                path,
                &[
                    ("x-route-to", "groq"),
                    ("x-route-provider", "groq"),
                    ("x-llm-gateway-stream", "true"),
                    ("x-llm-gateway-cluster", "groq"),
                ],
            );
            f.on_request_headers(&mut host, false);
            let h = &host.request_headers;
            assert!(!h.contains_key("x-route-to"), "{method} {path}");
            assert!(!h.contains_key("x-route-provider"), "{method} {path}");
            assert!(!h.contains_key("x-llm-gateway-stream"), "{method} {path}");
            // Not a routing header under this configuration: left to the route table.
            assert_eq!(h["x-llm-gateway-cluster"], "groq");
            assert_eq!(host.route_cache_cleared, 1, "{method} {path}");
        }
        // Nothing to strip: the route stands.
        let mut f = RequestFlow::new(Rc::clone(&config), Rc::default());
        let mut host = FakeHost::request("GET", "/v1/files", &[]);
        assert_eq!(f.on_request_headers(&mut host, true), Flow::Continue);
        assert_eq!(host.route_cache_cleared, 0);
    }

    #[test]
    fn error_cases() {
        type Case<'a> = (
            &'a str,
            &'a str,
            Vec<(&'a str, &'a str)>,
            &'a [u8],
            u32,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "GET",
                "/v1/chat/completions",
                vec![],
                b"",
                405,
                "method_not_allowed",
            ),
            (
                "POST",
                "/v1/chat/completions",
                vec![("content-length", "5000")],
                b"{}",
                413,
                "request_too_large",
            ),
            (
                "POST",
                "/v1/chat/completions",
                vec![],
                b"{oops",
                400,
                "invalid_json",
            ),
            (
                "POST",
                "/v1/chat/completions",
                vec![],
                br#"{"messages":[]}"#,
                400,
                "missing_model",
            ),
            (
                "POST",
                "/v1/chat/completions",
                vec![],
                br#"{"model":"claude"}"#,
                404,
                "model_not_found",
            ),
        ];
        for (method, path, headers, body, status, code) in cases {
            let mut f = flow(&keys());
            let mut host = FakeHost::request(method, path, &headers);
            host.request_body = body.to_vec();
            if f.on_request_headers(&mut host, false) == Flow::Pause {
                assert_eq!(
                    f.on_request_body(&mut host, body.len(), true),
                    Flow::Replied
                );
            }
            assert_eq!(
                error_code(&host),
                (status, code.to_string()),
                "{method} {path}"
            );
            assert_eq!(
                host.counter(&format!("llm_gateway_rejected_total;reason={code}")),
                1
            );
            assert!(!host.request_headers.contains_key("x-llm-gateway-cluster"));
        }
    }

    #[test]
    fn body_growing_past_limit_while_buffering_is_413() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request("POST", "/v1/chat/completions", &[]);
        assert_eq!(f.on_request_headers(&mut host, false), Flow::Pause);
        assert_eq!(f.on_request_body(&mut host, 600, false), Flow::Pause);
        assert_eq!(f.on_request_body(&mut host, 1200, false), Flow::Replied);
        assert_eq!(error_code(&host), (413, "request_too_large".to_string()));
    }

    #[test]
    fn empty_body_is_400() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request("POST", "/v1/completions", &[]);
        assert_eq!(f.on_request_headers(&mut host, true), Flow::Replied);
        assert_eq!(error_code(&host), (400, "invalid_json".to_string()));
    }

    #[test]
    fn missing_key_is_503_and_names_only_the_variable() {
        let mut f = flow(&[("GROQ_API_KEY", "gsk-groq")]);
        let mut host = FakeHost::request(
            "POST",
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-client")],
        );
        send(&mut f, &mut host, br#"{"model":"gpt-4o"}"#);
        let (status, code) = error_code(&host);
        assert_eq!((status, code.as_str()), (503, "provider_not_configured"));
        let body = String::from_utf8(host.reply.unwrap().body).unwrap();
        assert!(
            body.contains("OPENAI_API_KEY")
                && !body.contains("sk-client")
                && !body.contains("gsk-groq")
        );
    }

    #[test]
    fn usage_from_chunked_json_response_is_recorded_once() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request("POST", "/v1/chat/completions", &[]);
        host.now = 1_000_000_000;
        send(&mut f, &mut host, br#"{"model":"gpt-4o"}"#);
        host.response_headers.insert(":status".into(), "200".into());
        host.response_headers.insert(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        );
        assert_eq!(f.on_response_headers(&mut host, false), Flow::Continue);
        let body = br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":3}}}"#;
        let (a, b) = body.split_at(30);
        host.response_chunk = a.to_vec();
        assert_eq!(
            f.on_response_body(&mut host, a.len(), false),
            Flow::Continue
        );
        host.response_chunk = b.to_vec();
        f.on_response_body(&mut host, b.len(), true);
        host.now = 1_250_000_000;
        f.on_log(&mut host);
        f.on_log(&mut host);
        let base = "provider=openai;model=gpt-4o";
        assert_eq!(
            host.counter(&format!(
                "llm_gateway_tokens_total;{base};type=input;estimated=false"
            )),
            7
        );
        assert_eq!(
            host.counter(&format!(
                "llm_gateway_tokens_total;{base};type=output;estimated=false"
            )),
            9
        );
        assert_eq!(
            host.counter(&format!(
                "llm_gateway_tokens_total;{base};type=cached_input;estimated=false"
            )),
            3
        );
        assert_eq!(
            host.counter(&format!(
                "llm_gateway_requests_total;{base};operation=chat;status_class=2xx"
            )),
            1
        );
        assert_eq!(
            host.histograms[&format!("gen_ai_server_request_duration_ms;{base};operation=chat")],
            vec![250]
        );
        assert_eq!(host.attributes[attr::TOTAL_TOKENS], b"16");
    }

    #[test]
    fn only_the_configured_access_log_attributes_are_written() {
        let run = |attributes: &str| {
            let cfg = CONFIG.replace(
                r#""max_request_bytes": 1000"#,
                &format!(r#""max_request_bytes": 1000, "access_log_attributes": {attributes}"#),
            );
            let config = Config::parse(cfg.as_bytes(), &|k: &str| {
                keys()
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
            let mut f = RequestFlow::new(Rc::new(config), Rc::new(RefCell::new(Worker::default())));
            let mut host = FakeHost::request("POST", "/v1/chat/completions", &[]);
            send(&mut f, &mut host, br#"{"model":"gpt-4o"}"#);
            host.response_headers.insert(":status".into(), "200".into());
            host.response_headers
                .insert("content-type".into(), "application/json".into());
            f.on_response_headers(&mut host, false);
            let body = br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":9,"total_tokens":16}}"#;
            host.response_chunk = body.to_vec();
            f.on_response_body(&mut host, body.len(), true);
            f.on_log(&mut host);
            let mut names: Vec<String> = host.attributes.keys().cloned().collect();
            names.sort();
            // Metrics do not depend on the attributes.
            let tokens = host.counter(
                "llm_gateway_tokens_total;provider=openai;model=gpt-4o;type=input;estimated=false",
            );
            (names, tokens)
        };
        let (names, tokens) = run(r#"["total_tokens", "provider"]"#);
        assert_eq!(names, [attr::PROVIDER, attr::TOTAL_TOKENS]);
        assert_eq!(tokens, 7);
        let (names, tokens) = run("[]");
        assert!(names.is_empty());
        assert_eq!(tokens, 7);
        let e = Config::parse(
            CONFIG
                .replace(
                    r#""max_request_bytes": 1000"#,
                    r#""access_log_attributes": ["provider", "tokens"]"#,
                )
                .as_bytes(),
            &|_| Some("k".into()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("access_log_attributes[1]"), "{e}");
    }

    /// Sends a streamed chat request whose prompt estimate is deferred, and the answer's
    /// headers (200, SSE); the host is ready for the answer's body.
    fn start_stream(f: &mut RequestFlow, body: &[u8]) -> FakeHost {
        let mut host = FakeHost::request("POST", "/v1/chat/completions", &[]);
        send(f, &mut host, body);
        assert!(matches!(f.input_estimate, InputEstimate::Deferred(_)));
        host.response_headers.insert(":status".into(), "200".into());
        host.response_headers
            .insert("content-type".into(), "text/event-stream".into());
        f.on_response_headers(&mut host, false);
        host
    }

    #[test]
    fn anthropic_stream_estimates_the_prompt_only_if_it_never_reports_usage() {
        let cfg = r#"{
            "providers": [{"name":"anthropic","type":"anthropic","cluster":"anthropic","api_key_env":"ANTHROPIC_API_KEY"}],
            "models": [{"match":"claude-*","provider":"anthropic"}]
        }"#;
        let body = br#"{"model":"claude-x","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"count the words of this prompt, please"}]}"#;
        let run = |events: &str| {
            let config = Config::parse(cfg.as_bytes(), &|_| Some("sk-ant".into())).unwrap();
            let mut f = RequestFlow::new(Rc::new(config), Rc::new(RefCell::new(Worker::default())));
            let mut host = start_stream(&mut f, body);
            host.response_chunk = events.as_bytes().to_vec();
            f.on_response_body(&mut host, events.len(), false);
            let kept = matches!(f.input_estimate, InputEstimate::Deferred(_));
            host.response_chunk.clear();
            f.on_response_body(&mut host, 0, true);
            f.on_log(&mut host);
            let attribute = |a: &str| String::from_utf8(host.attributes[a].clone()).unwrap();
            (
                kept,
                attribute(attr::INPUT_TOKENS),
                attribute(attr::USAGE_ESTIMATED),
            )
        };
        // Cut before `message_start`: the prompt is estimated from the kept body.
        let estimate = estimate::estimate_request_input_tokens(body);
        assert!(estimate > 10, "{estimate}");
        assert_eq!(
            run("event: ping\ndata: {\"type\":\"ping\"}\n\n"),
            (true, estimate.to_string(), "true".to_string())
        );
        // `message_start` reports the prompt: the body copy is dropped at once. (The
        // stream still ends before `message_delta`, so the output is estimated.)
        let start = r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":21,"output_tokens":1}}}"#;
        assert_eq!(
            run(&format!("event: message_start\ndata: {start}\n\n")),
            (false, "21".to_string(), "true".to_string())
        );
    }

    #[test]
    fn openai_stream_keeps_a_small_body_until_its_usage_chunk() {
        let body = br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"count the words of this prompt, please"}]}"#;
        let run = |events: &str| {
            let mut f = flow(&keys());
            let mut host = start_stream(&mut f, body);
            host.response_chunk = events.as_bytes().to_vec();
            f.on_response_body(&mut host, events.len(), true);
            f.on_log(&mut host);
            let input = String::from_utf8(host.attributes[attr::INPUT_TOKENS].clone()).unwrap();
            (
                matches!(f.input_estimate, InputEstimate::Deferred(_)),
                input,
            )
        };
        let delta = r#"data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
        let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":17,"completion_tokens":1,"total_tokens":18}}"#;
        assert_eq!(
            run(&format!("{delta}\n\n{usage}\n\ndata: [DONE]\n\n")),
            (false, "17".to_string())
        );
        // No usage chunk: the kept body is estimated when the stream ends.
        let estimate = estimate::estimate_request_input_tokens(body).to_string();
        assert_eq!(
            run(&format!("{delta}\n\ndata: [DONE]\n\n")),
            (true, estimate)
        );
    }

    #[test]
    fn error_answer_to_a_stream_request_is_not_estimated() {
        for content_type in ["application/json", "text/event-stream"] {
            let mut f = flow(&keys());
            let mut host = FakeHost::request("POST", "/v1/chat/completions", &[]);
            send(
                &mut f,
                &mut host,
                br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"a long enough prompt"}]}"#,
            );
            host.response_headers.insert(":status".into(), "429".into());
            host.response_headers
                .insert("content-type".into(), content_type.into());
            f.on_response_headers(&mut host, false);
            let body = br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#;
            host.response_chunk = body.to_vec();
            f.on_response_body(&mut host, body.len(), true);
            f.on_log(&mut host);
            assert!(
                !host
                    .counters
                    .keys()
                    .any(|k| k.starts_with("llm_gateway_tokens_total")),
                "{content_type}: {:?}",
                host.counters
            );
            assert_eq!(
                host.counter("llm_gateway_requests_total;provider=openai;model=gpt-4o;operation=chat;status_class=4xx"),
                1
            );
            assert!(!host.attributes.contains_key(attr::INPUT_TOKENS));
        }
    }

    #[test]
    fn models_are_listed_from_exact_rules() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request("GET", "/v1/models", &[]);
        assert_eq!(f.on_request_headers(&mut host, true), Flow::Replied);
        let reply = host.reply.clone().unwrap();
        assert_eq!(reply.status, 200);
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec!["fast"]);
        assert_eq!(v["data"][0]["owned_by"], "groq");

        let mut f = flow(&keys());
        let mut host = FakeHost::request("GET", "/v1/models/gpt-4o", &[]);
        f.on_request_headers(&mut host, true);
        let v: Value = serde_json::from_slice(&host.reply.unwrap().body).unwrap();
        assert_eq!(
            (v["id"].as_str(), v["owned_by"].as_str()),
            (Some("gpt-4o"), Some("openai"))
        );

        let mut f = flow(&keys());
        let mut host = FakeHost::request("GET", "/v1/models/claude", &[]);
        f.on_request_headers(&mut host, true);
        assert_eq!(error_code(&host), (404, "model_not_found".to_string()));

        let mut f = flow(&keys());
        let mut host = FakeHost::request("POST", "/v1/models", &[]);
        f.on_request_headers(&mut host, true);
        assert_eq!(error_code(&host), (405, "method_not_allowed".to_string()));
    }

    #[test]
    fn reset_before_response_counts_as_reset_without_tokens() {
        let mut f = flow(&keys());
        let mut host = FakeHost::request("POST", "/v1/chat/completions", &[]);
        send(&mut f, &mut host, br#"{"model":"gpt-4o"}"#);
        f.on_log(&mut host);
        assert_eq!(
            host.counter("llm_gateway_requests_total;provider=openai;model=gpt-4o;operation=chat;status_class=reset"),
            1
        );
        assert!(!host
            .counters
            .keys()
            .any(|k| k.starts_with("llm_gateway_tokens_total")));
    }
}
