//! Vertex AI: the Gemini API under a project and location, authenticated with a bearer
//! token — from the environment, or fetched and refreshed from a token endpoint (the GCE
//! metadata server) by the root context ([`token`]) and cached per worker.

pub mod token;

use super::{gemini_method, percent_encode, Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::providers::config::Provider;

pub struct Vertex;

impl Adapter for Vertex {
    fn api(&self) -> Api {
        Api::Gemini
    }

    fn endpoint(&self, client: Endpoint) -> Option<Endpoint> {
        (client == Endpoint::ChatCompletions).then_some(Endpoint::ChatCompletions)
    }

    fn default_host(&self, p: &Provider) -> Option<String> {
        Some(if p.region == "global" {
            "aiplatform.googleapis.com".into()
        } else {
            format!("{}-aiplatform.googleapis.com", p.region)
        })
    }

    fn path(
        &self,
        p: &Provider,
        _endpoint: Endpoint,
        model: &str,
        _query: &str,
        stream: bool,
    ) -> String {
        format!(
            "{}/projects/{}/locations/{}/publishers/google/models/{}{}",
            p.path_prefix,
            p.project,
            p.region,
            percent_encode(model),
            gemini_method(stream)
        )
    }

    fn authenticate(&self, p: &Provider, req: &Outgoing<'_>) -> Result<Headers, GatewayError> {
        let bearer = if p.token_endpoint.is_none() {
            p.api_key.as_ref().map(|k| format!("Bearer {k}"))
        } else {
            (req.cached_token)((req.now_s)())
        };
        let bearer = bearer.ok_or_else(|| {
            GatewayError::provider_unavailable(
                &p.name,
                "no valid Vertex AI access token yet (the token endpoint has not answered)",
            )
        })?;
        Ok(vec![("authorization".into(), bearer)])
    }
}
