//! Azure OpenAI: the OpenAI API under `/deployments/<deployment>` with the `api-version`
//! query, `api-key: <key>`. No Responses API.

use super::{is_ident, percent_encode, Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::config_error::{err, ConfigError};
use crate::providers::config::{Provider, ProviderConfig};

pub struct AzureOpenAi;

impl Adapter for AzureOpenAi {
    fn api(&self) -> Api {
        Api::OpenAi
    }

    fn endpoint(&self, client: Endpoint) -> Option<Endpoint> {
        match client {
            Endpoint::Messages => Some(Endpoint::ChatCompletions),
            Endpoint::Responses => None,
            other => Some(other),
        }
    }

    fn options(&self) -> &'static [&'static str] {
        &["api_version", "deployments"]
    }

    fn check_options(
        &self,
        p: &ProviderConfig,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        if let Some(v) = &p.api_version {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(err(
                    at("api_version"),
                    "must be a version such as 2024-10-21",
                ));
            }
        }
        for (model, dep) in p.deployments.iter().flatten() {
            if !is_ident(dep) {
                return Err(err(
                    format!("{}.{model}", at("deployments")),
                    "a deployment name may only contain letters, digits, '-', '_' and '.'",
                ));
            }
        }
        Ok(())
    }

    fn default_path_prefix(&self) -> &'static str {
        "/openai"
    }

    /// The client's query is replaced by the `api-version`.
    fn path(
        &self,
        p: &Provider,
        endpoint: Endpoint,
        model: &str,
        _query: &str,
        _stream: bool,
    ) -> String {
        format!(
            "{}/deployments/{}{}?api-version={}",
            p.path_prefix,
            percent_encode(p.deployment(model)),
            endpoint.suffix(),
            p.api_version
        )
    }

    fn authenticate(&self, p: &Provider, _req: &Outgoing<'_>) -> Result<Headers, GatewayError> {
        Ok(p.api_key
            .iter()
            .map(|key| ("api-key".into(), key.clone()))
            .collect())
    }
}
