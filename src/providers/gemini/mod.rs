//! Google AI Studio: the Gemini `generateContent` API (OpenAI chat completions are
//! translated to it), `x-goog-api-key: <key>`.

use super::{gemini_method, percent_encode, Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::providers::config::Provider;

pub struct Gemini;

impl Adapter for Gemini {
    fn api(&self) -> Api {
        Api::Gemini
    }

    fn endpoint(&self, client: Endpoint) -> Option<Endpoint> {
        (client == Endpoint::ChatCompletions).then_some(Endpoint::ChatCompletions)
    }

    fn default_path_prefix(&self) -> &'static str {
        "/v1beta"
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
            "{}/models/{}{}",
            p.path_prefix,
            percent_encode(model),
            gemini_method(stream)
        )
    }

    fn authenticate(&self, p: &Provider, _req: &Outgoing<'_>) -> Result<Headers, GatewayError> {
        Ok(p.api_key
            .iter()
            .map(|key| ("x-goog-api-key".into(), key.clone()))
            .collect())
    }
}
