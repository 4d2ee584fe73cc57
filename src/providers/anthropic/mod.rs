//! Anthropic: the Messages API, `x-api-key: <key>` and `anthropic-version` (the client's
//! own when an Anthropic client calls it, else the configured one).

use super::{Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::config_error::{check_token, err, ConfigError};
use crate::providers::config::{Provider, ProviderConfig};

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

    fn options(&self) -> &'static [&'static str] {
        &["anthropic_version", "default_max_tokens"]
    }

    fn check_options(
        &self,
        p: &ProviderConfig,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        if let Some(v) = &p.anthropic_version {
            check_token(v, &at("anthropic_version"))?;
        }
        if p.default_max_tokens == Some(0) {
            return Err(err(at("default_max_tokens"), "must be greater than 0"));
        }
        Ok(())
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
