//! Anthropic: the Messages API, `x-api-key: <key>` and `anthropic-version` (the client's
//! own when an Anthropic client calls it, else the configured one).

use super::{Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::providers::config::Provider;

pub struct Anthropic;

impl Adapter for Anthropic {
    fn api(&self) -> Api {
        Api::Anthropic
    }

    fn endpoint(&self, client: Endpoint) -> Option<Endpoint> {
        match client {
            // OpenAI chat completions are translated to messages.
            Endpoint::Messages | Endpoint::ChatCompletions => Some(Endpoint::Messages),
            _ => None,
        }
    }

    fn authenticate(&self, p: &Provider, req: &Outgoing<'_>) -> Result<Headers, GatewayError> {
        let mut out = Headers::with_capacity(2);
        if let Some(key) = &p.api_key {
            out.push(("x-api-key".into(), key.clone()));
        }
        let version = req
            .client_anthropic_version
            .filter(|v| !v.is_empty())
            .unwrap_or(&p.anthropic_version);
        out.push(("anthropic-version".into(), version.to_string()));
        Ok(out)
    }
}
