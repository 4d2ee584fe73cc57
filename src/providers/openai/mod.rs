//! OpenAI and every service that speaks its API (Groq, Together, vLLM, …): the client's
//! endpoint under the provider's prefix, `authorization: Bearer <key>`.

use super::{Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::providers::config::Provider;

pub struct OpenAi;

impl Adapter for OpenAi {
    fn api(&self) -> Api {
        Api::OpenAi
    }

    fn endpoint(&self, client: Endpoint) -> Option<Endpoint> {
        Some(match client {
            // Anthropic clients are translated to chat completions.
            Endpoint::Messages => Endpoint::ChatCompletions,
            other => other,
        })
    }

    fn authenticate(&self, p: &Provider, _req: &Outgoing<'_>) -> Result<Headers, GatewayError> {
        Ok(p.api_key
            .iter()
            .map(|key| ("authorization".into(), format!("Bearer {key}")))
            .collect())
    }
}
