//! Azure OpenAI: the OpenAI API under `/deployments/<deployment>` with the `api-version`
//! query, `api-key: <key>`. No Responses API.

use super::{percent_encode, Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::providers::config::Provider;

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
