//! What differs per provider: the API it speaks, the endpoint and path an upstream request
//! goes to, its host and its authentication headers.

pub mod config;
pub mod sigv4;
pub mod vertex_token;

use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::providers::config::{Provider, ProviderType};

/// The API a provider speaks.
pub fn api_of(kind: ProviderType) -> Api {
    match kind {
        ProviderType::Openai | ProviderType::AzureOpenai => Api::OpenAi,
        ProviderType::Anthropic => Api::Anthropic,
        ProviderType::Gemini | ProviderType::Vertex => Api::Gemini,
        ProviderType::Bedrock => Api::Bedrock,
    }
}

/// The endpoint the upstream request goes to: the client's, or the one the request is
/// translated to. `Err` when the provider cannot serve the client's endpoint.
pub fn upstream_endpoint(client: Endpoint, provider: &Provider) -> Result<Endpoint, GatewayError> {
    let unsupported = || {
        GatewayError::bad_request(
            "unsupported_endpoint",
            format!(
                "Provider `{}` ({}) does not serve {}",
                provider.name,
                provider.kind.as_str(),
                client.suffix()
            ),
        )
        .with_param("model")
    };
    match (Api::of_client(client), provider.kind) {
        (Api::Anthropic, ProviderType::Anthropic) => Ok(Endpoint::Messages),
        (Api::Anthropic, ProviderType::Openai | ProviderType::AzureOpenai) => {
            Ok(Endpoint::ChatCompletions)
        }
        (Api::OpenAi, ProviderType::Anthropic) => match client {
            Endpoint::ChatCompletions => Ok(Endpoint::Messages),
            _ => Err(unsupported()),
        },
        (Api::OpenAi, ProviderType::AzureOpenai) => match client {
            Endpoint::Responses => Err(unsupported()),
            other => Ok(other),
        },
        (Api::OpenAi, ProviderType::Openai) => Ok(client),
        (Api::OpenAi, ProviderType::Gemini | ProviderType::Vertex | ProviderType::Bedrock) => {
            match client {
                Endpoint::ChatCompletions => Ok(Endpoint::ChatCompletions),
                _ => Err(unsupported()),
            }
        }
        // Gemini and Bedrock are reached from OpenAI clients only.
        (_, ProviderType::Gemini | ProviderType::Vertex | ProviderType::Bedrock) => {
            Err(unsupported())
        }
        (_, _) => Err(unsupported()),
    }
}

/// The upstream `:path`. `client_query` is the client's query string with its `?`
/// (kept, except for Azure where the query is the `api-version`).
pub fn upstream_path(
    provider: &Provider,
    endpoint: Endpoint,
    upstream_model: &str,
    client_query: &str,
    stream: bool,
) -> String {
    let model = percent_encode(upstream_model);
    let gemini_method = if stream {
        ":streamGenerateContent?alt=sse"
    } else {
        ":generateContent"
    };
    match provider.kind {
        ProviderType::Gemini => format!("{}/models/{model}{gemini_method}", provider.path_prefix),
        ProviderType::Vertex => format!(
            "{}/projects/{}/locations/{}/publishers/google/models/{model}{gemini_method}",
            provider.path_prefix, provider.project, provider.region
        ),
        ProviderType::Bedrock => format!(
            "{}/model/{model}/{}",
            provider.path_prefix,
            if stream {
                "converse-stream"
            } else {
                "converse"
            }
        ),
        ProviderType::AzureOpenai => format!(
            "{}/deployments/{}{}?api-version={}",
            provider.path_prefix,
            percent_encode(provider.deployment(upstream_model)),
            endpoint.suffix(),
            provider.api_version
        ),
        _ => format!(
            "{}{}{}",
            provider.path_prefix,
            endpoint.suffix(),
            client_query
        ),
    }
}

/// Authentication (and API version) headers for the provider. `client_version` is the
/// client's `anthropic-version`, passed on when an Anthropic client calls Anthropic.
pub fn auth_headers(
    provider: &Provider,
    client_version: Option<String>,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(2);
    match provider.kind {
        ProviderType::Openai => {
            if let Some(key) = &provider.api_key {
                out.push(("authorization", format!("Bearer {key}")));
            }
        }
        ProviderType::AzureOpenai => {
            if let Some(key) = &provider.api_key {
                out.push(("api-key", key.clone()));
            }
        }
        ProviderType::Anthropic => {
            if let Some(key) = &provider.api_key {
                out.push(("x-api-key", key.clone()));
            }
            let version = client_version
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| provider.anthropic_version.clone());
            out.push(("anthropic-version", version));
        }
        ProviderType::Gemini => {
            if let Some(key) = &provider.api_key {
                out.push(("x-goog-api-key", key.clone()));
            }
        }
        // Vertex tokens and Bedrock signatures depend on state and on the final body:
        // the request flow adds them.
        ProviderType::Vertex | ProviderType::Bedrock => {}
    }
    out
}

/// The `:authority` for a provider: its `host`, or the public endpoint of its region.
pub fn upstream_host(provider: &Provider) -> Option<String> {
    if let Some(h) = &provider.host {
        return Some(h.clone());
    }
    match provider.kind {
        ProviderType::Vertex if provider.region == "global" => {
            Some("aiplatform.googleapis.com".into())
        }
        ProviderType::Vertex => Some(format!("{}-aiplatform.googleapis.com", provider.region)),
        ProviderType::Bedrock => Some(format!("bedrock-runtime.{}.amazonaws.com", provider.region)),
        _ => None,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for a path segment).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn providers() -> Config {
        let json = r#"{"providers":[
            {"name":"oa","type":"openai","cluster":"oa","api_key_env":"K"},
            {"name":"an","type":"anthropic","cluster":"an","api_key_env":"K"},
            {"name":"az","type":"azure_openai","cluster":"az","api_key_env":"K","api_version":"2025-01-01-preview",
             "deployments":{"gpt-4o":"prod-4o"}}]}"#;
        Config::parse(json.as_bytes(), &|_| Some("key-1".into())).unwrap()
    }

    #[test]
    fn endpoints_per_provider() {
        let c = providers();
        let (oa, an, az) = (&c.providers[0], &c.providers[1], &c.providers[2]);
        assert_eq!(
            upstream_endpoint(Endpoint::Messages, oa),
            Ok(Endpoint::ChatCompletions)
        );
        assert_eq!(
            upstream_endpoint(Endpoint::Messages, an),
            Ok(Endpoint::Messages)
        );
        assert_eq!(
            upstream_endpoint(Endpoint::ChatCompletions, an),
            Ok(Endpoint::Messages)
        );
        assert_eq!(
            upstream_endpoint(Endpoint::Embeddings, an)
                .unwrap_err()
                .code,
            "unsupported_endpoint"
        );
        assert_eq!(
            upstream_endpoint(Endpoint::Embeddings, az),
            Ok(Endpoint::Embeddings)
        );
        assert_eq!(
            upstream_endpoint(Endpoint::Responses, az)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn google_and_bedrock_paths() {
        let json = r#"{"providers":[
            {"name":"g","type":"gemini","cluster":"g","api_key_env":"K"},
            {"name":"v","type":"vertex","cluster":"v","project":"my-proj","region":"us-central1","api_key_env":"K"},
            {"name":"b","type":"bedrock","cluster":"b","region":"us-east-1"}]}"#;
        let c = Config::parse(json.as_bytes(), &|_| Some("key-1".into())).unwrap();
        let (g, v, b) = (&c.providers[0], &c.providers[1], &c.providers[2]);
        let chat = Endpoint::ChatCompletions;
        assert_eq!(
            upstream_path(g, chat, "gemini-2.5-flash", "?q", false),
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            upstream_path(g, chat, "gemini-2.5-flash", "", true),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            upstream_path(v, chat, "gemini-2.5-pro", "", false),
            "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"
        );
        assert_eq!(
            upstream_path(
                b,
                chat,
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                "",
                true
            ),
            "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse-stream"
        );
        assert_eq!(
            upstream_host(v).as_deref(),
            Some("us-central1-aiplatform.googleapis.com")
        );
        assert_eq!(
            upstream_host(b).as_deref(),
            Some("bedrock-runtime.us-east-1.amazonaws.com")
        );
        assert_eq!(
            auth_headers(g, None),
            vec![("x-goog-api-key", "key-1".to_string())]
        );
        assert_eq!(
            upstream_endpoint(Endpoint::Messages, g).unwrap_err().code,
            "unsupported_endpoint"
        );
        assert_eq!(
            upstream_endpoint(Endpoint::Embeddings, b).unwrap_err().code,
            "unsupported_endpoint"
        );
        assert_eq!(upstream_endpoint(chat, v), Ok(chat));
    }

    #[test]
    fn paths_and_auth() {
        let c = providers();
        let (oa, an, az) = (&c.providers[0], &c.providers[1], &c.providers[2]);
        assert_eq!(
            upstream_path(oa, Endpoint::ChatCompletions, "m", "?a=1", false),
            "/v1/chat/completions?a=1"
        );
        assert_eq!(
            upstream_path(an, Endpoint::Messages, "m", "", true),
            "/v1/messages"
        );
        assert_eq!(
            upstream_path(az, Endpoint::ChatCompletions, "gpt-4o", "?x=1", false),
            "/openai/deployments/prod-4o/chat/completions?api-version=2025-01-01-preview"
        );
        assert_eq!(
            upstream_path(az, Endpoint::Embeddings, "my model/x", "", false),
            "/openai/deployments/my%20model%2Fx/embeddings?api-version=2025-01-01-preview"
        );
        assert_eq!(
            auth_headers(oa, None),
            vec![("authorization", "Bearer key-1".to_string())]
        );
        assert_eq!(
            auth_headers(az, None),
            vec![("api-key", "key-1".to_string())]
        );
        assert_eq!(
            auth_headers(an, None),
            vec![
                ("x-api-key", "key-1".to_string()),
                ("anthropic-version", "2023-06-01".to_string())
            ]
        );
        assert_eq!(
            auth_headers(an, Some("2026-10-21".into()))[1].1,
            "2026-10-21"
        );
    }
}
