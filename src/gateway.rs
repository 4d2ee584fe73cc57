//! The per-request logic: what happens to one HTTP request and its response.
//!
//! Host-free: it talks to Envoy only through the `host` traits, so every branch is
//! unit-tested natively; `filter` maps proxy-wasm callbacks onto these methods.

use crate::config::{Config, Provider, ProviderType};
use crate::errors::GatewayError;
use crate::host::BodyHost;
use crate::metrics::{Metrics, RequestLabels};
use crate::request::{self, Endpoint};
use crate::usage::{self, Usage};
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

/// Client credentials removed before a routed request goes upstream.
pub const CLIENT_CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key"];

/// Names of the access-log attributes (Envoy filter state `wasm.<name>`).
pub mod attr {
    pub const PROVIDER: &str = "llm_gateway.provider";
    pub const MODEL: &str = "llm_gateway.model";
    pub const REQUESTED_MODEL: &str = "llm_gateway.requested_model";
    pub const INPUT_TOKENS: &str = "llm_gateway.input_tokens";
    pub const OUTPUT_TOKENS: &str = "llm_gateway.output_tokens";
    pub const TOTAL_TOKENS: &str = "llm_gateway.total_tokens";
    pub const CACHED_INPUT_TOKENS: &str = "llm_gateway.cached_input_tokens";
    pub const USAGE_ESTIMATED: &str = "llm_gateway.usage_estimated";
    pub const ERROR: &str = "llm_gateway.error";
}

struct Route {
    provider: usize,
    upstream_model: String,
    endpoint: Endpoint,
}

pub struct RequestFlow {
    config: Rc<Config>,
    metrics: Rc<RefCell<Metrics>>,
    started_ns: u64,
    endpoint: Option<Endpoint>,
    route: Option<Route>,
    status: Option<u32>,
    collect_response: bool,
    response: Vec<u8>,
    response_overflow: bool,
    usage: Option<Usage>,
    logged: bool,
}

impl RequestFlow {
    pub fn new(config: Rc<Config>, metrics: Rc<RefCell<Metrics>>) -> Self {
        RequestFlow {
            config,
            metrics,
            started_ns: 0,
            endpoint: None,
            route: None,
            status: None,
            collect_response: false,
            response: Vec::new(),
            response_overflow: false,
            usage: None,
            logged: false,
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
        host.set_attribute(attr::ERROR, e.code.as_bytes());
        host.send_reply(e.status, &e.body(), &headers);
        self.metrics.borrow_mut().record_rejection(host, e.code);
        Flow::Replied
    }

    pub fn on_request_headers(&mut self, host: &mut dyn BodyHost, end_of_stream: bool) -> Flow {
        self.started_ns = host.now_ns();
        // Routing headers are ours alone: a client-sent copy never survives.
        host.remove_request_header(&self.config.cluster_header);
        host.remove_request_header(&self.config.provider_header);

        let path = host.request_header(":path").unwrap_or_default();
        let Some(endpoint) = Endpoint::from_path(&path) else {
            return Flow::Continue;
        };
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
        self.endpoint = Some(endpoint);
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
            Ok(()) => Flow::Continue,
            Err(e) => self.reject(host, &e, &[]),
        }
    }

    fn route_request(
        &mut self,
        host: &mut dyn BodyHost,
        endpoint: Endpoint,
        body: &[u8],
    ) -> Result<(), GatewayError> {
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
            return Err(GatewayError::provider_key_missing(&provider.name, var));
        }

        if resolved.upstream_model != info.model {
            let new_body = request::rewrite_model(body, &info, &resolved.upstream_model);
            host.replace_request_body(&new_body);
            host.set_request_header("content-length", &new_body.len().to_string());
        }
        set_upstream_headers(host, &config, provider, endpoint);

        host.set_attribute(attr::PROVIDER, provider.name.as_bytes());
        host.set_attribute(attr::MODEL, resolved.upstream_model.as_bytes());
        host.set_attribute(attr::REQUESTED_MODEL, info.model.as_bytes());
        self.route = Some(Route {
            provider: resolved.provider,
            upstream_model: resolved.upstream_model.into_owned(),
            endpoint,
        });
        Ok(())
    }

    pub fn on_response_headers(&mut self, host: &mut dyn BodyHost, end_of_stream: bool) -> Flow {
        if self.route.is_none() {
            return Flow::Continue;
        }
        self.status = host
            .response_header(":status")
            .and_then(|s| s.trim().parse().ok());
        let json = host
            .response_header("content-type")
            .map(|ct| ct.to_ascii_lowercase().contains("json"))
            .unwrap_or(false);
        self.collect_response = json && !end_of_stream;
        Flow::Continue
    }

    pub fn on_response_body(
        &mut self,
        host: &mut dyn BodyHost,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if !self.collect_response {
            return Flow::Continue;
        }
        if !self.response_overflow && body_size > 0 {
            if (self.response.len() + body_size) as u64 > self.config.max_response_bytes {
                self.response_overflow = true;
                self.response = Vec::new();
            } else if let Some(chunk) = host.response_body(body_size) {
                self.response.extend_from_slice(&chunk);
            }
        }
        if end_of_stream {
            self.finish_response(host);
        }
        Flow::Continue
    }

    fn finish_response(&mut self, host: &mut dyn BodyHost) {
        self.collect_response = false;
        if !self.response.is_empty() {
            self.usage = usage::from_openai_json(&self.response);
        }
        self.response = Vec::new();
        if let Some(u) = &self.usage {
            host.set_attribute(attr::INPUT_TOKENS, u.input.to_string().as_bytes());
            host.set_attribute(attr::OUTPUT_TOKENS, u.output.to_string().as_bytes());
            host.set_attribute(attr::TOTAL_TOKENS, u.total().to_string().as_bytes());
            host.set_attribute(
                attr::CACHED_INPUT_TOKENS,
                u.cached_input.to_string().as_bytes(),
            );
            host.set_attribute(
                attr::USAGE_ESTIMATED,
                if u.estimated { b"true" } else { b"false" },
            );
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
        if self.collect_response {
            // The response never completed; read what usage the partial body has.
            self.usage = usage::from_openai_json(&self.response);
        }
        let Some(provider) = self.config.provider(route.provider) else {
            return;
        };
        let duration_ms = host.now_ns().saturating_sub(self.started_ns) / 1_000_000;
        let labels = RequestLabels {
            provider: &provider.name,
            model: &route.upstream_model,
            operation: route.endpoint.operation(),
        };
        self.metrics.borrow_mut().record_request(
            host,
            &labels,
            self.status,
            duration_ms,
            self.usage.as_ref(),
        );
    }
}

fn set_upstream_headers(
    host: &mut dyn BodyHost,
    config: &Config,
    provider: &Provider,
    endpoint: Endpoint,
) {
    host.set_request_header(&config.cluster_header, &provider.cluster);
    host.set_request_header(&config.provider_header, &provider.name);
    if let Some(authority) = &provider.host {
        host.set_request_header(":authority", authority);
    }
    let path = host.request_header(":path").unwrap_or_default();
    let query = path.find('?').and_then(|i| path.get(i..)).unwrap_or("");
    let new_path = format!("{}{}{}", provider.path_prefix, endpoint.suffix(), query);
    host.set_request_header(":path", &new_path);
    for h in CLIENT_CREDENTIAL_HEADERS {
        host.remove_request_header(h);
    }
    // Usage is read from the response body, so it must not come back compressed.
    host.remove_request_header("accept-encoding");
    if let Some(key) = &provider.api_key {
        match provider.kind {
            ProviderType::Openai => {
                host.set_request_header("authorization", &format!("Bearer {key}"));
            }
        }
    }
    host.clear_route_cache();
}
