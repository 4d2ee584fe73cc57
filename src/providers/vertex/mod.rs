//! Vertex AI: the Gemini API under a project and location, authenticated with a bearer
//! token — from the environment, or fetched and refreshed from a token endpoint (the GCE
//! metadata server) by the root context ([`token`]) and cached per worker.

pub mod token;

use super::{gemini_method, is_ident, percent_encode, Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::config_error::{check_token, err, ConfigError};
use crate::providers::config::{Provider, ProviderConfig};

pub struct Vertex;

impl Adapter for Vertex {
    fn api(&self) -> Api {
        Api::Gemini
    }

    fn endpoint(&self, client: Endpoint) -> Option<Endpoint> {
        (client == Endpoint::ChatCompletions).then_some(Endpoint::ChatCompletions)
    }

    fn options(&self) -> &'static [&'static str] {
        &["project", "token_endpoint", "region"]
    }

    /// A project and a location, and a token from the environment or an endpoint.
    fn check_options(
        &self,
        p: &ProviderConfig,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        if !p.project.as_deref().is_some_and(is_ident) {
            return Err(err(
                at("project"),
                "required for vertex: the Google Cloud project id",
            ));
        }
        if !p.region.as_deref().is_some_and(is_ident) {
            return Err(err(
                at("region"),
                "required for vertex: a location such as us-central1 or global",
            ));
        }
        if p.token_endpoint.is_none() && p.api_key_env.is_none() {
            return Err(err(
                at("token_endpoint"),
                "vertex needs a token: `api_key_env` (a variable holding an access token) or `token_endpoint`",
            ));
        }
        if let Some(t) = &p.token_endpoint {
            check_token(&t.cluster, &format!("{}.cluster", at("token_endpoint")))?;
            if let Some(path) = &t.path {
                if !path.starts_with('/') {
                    return Err(err(
                        format!("{}.path", at("token_endpoint")),
                        "must start with '/'",
                    ));
                }
            }
        }
        Ok(())
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
