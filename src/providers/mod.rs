//! What differs per provider, behind one interface: [`Adapter`]. The request flow asks the
//! adapter of a provider's type which API it speaks, which endpoint serves a client's
//! request, where the request goes (host and path) and how it is authenticated; it never
//! branches on the provider type itself.
//!
//! A provider type is one folder here (its adapter, and what only it needs: SigV4 for
//! Bedrock, the token refresh for Vertex AI), one line in [`adapter`] and one variant of
//! [`config::ProviderType`]. Translations are per wire API pair, not per provider (Vertex AI
//! and AI Studio share the Gemini translation; Azure and OpenAI need none), so they live in
//! [`crate::translate`], chosen by the adapter's [`Adapter::api`].

pub mod anthropic;
pub mod azure_openai;
pub mod bedrock;
pub mod config;
pub mod gemini;
pub mod openai;
pub mod vertex;

use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::config_error::{err, ConfigError};
use crate::host::BodyEdit;
use crate::providers::config::{Provider, ProviderConfig, ProviderType};
use std::borrow::Cow;

/// Headers that authenticate an upstream request (names lowercase).
pub type Headers = Vec<(Cow<'static, str>, String)>;

/// The upstream request as it will leave Envoy, for adapters that authenticate all of it.
pub struct Outgoing<'a> {
    /// `:authority` (empty when the request keeps the client's).
    pub authority: &'a str,
    /// `:path`, query included.
    pub path: &'a str,
    /// The request body as the client sent it, and the edit that makes it the body sent.
    pub body_read: &'a [u8],
    pub edit: Option<&'a BodyEdit>,
    /// Seconds since the Unix epoch (read only by the adapters that need the time).
    pub now_s: &'a dyn Fn() -> u64,
    /// The client's `anthropic-version`, when an Anthropic client sent one.
    pub client_anthropic_version: Option<&'a str>,
    /// This worker's cached access token for the provider (from its token endpoint),
    /// if still valid at the given time.
    pub cached_token: &'a dyn Fn(u64) -> Option<String>,
}

impl Outgoing<'_> {
    /// The body as sent (a copy only when the edit keeps part of the original).
    pub fn body(&self) -> Cow<'_, [u8]> {
        match self.edit {
            None => Cow::Borrowed(self.body_read),
            Some(e) => match e.as_whole(self.body_read.len()) {
                Some(b) => Cow::Borrowed(b),
                None => Cow::Owned(e.apply(self.body_read)),
            },
        }
    }
}

/// Everything the request flow needs to know of a provider type.
pub trait Adapter: Sync {
    /// The wire API the provider speaks.
    fn api(&self) -> Api;
    /// The endpoint that serves a client's request to this provider (the client's own,
    /// or the one it is translated to); `None` when the provider cannot serve it.
    fn endpoint(&self, client: Endpoint) -> Option<Endpoint>;
    /// The options of `providers[]` only this type takes (see
    /// [`ProviderConfig::type_options`]); any other type refuses them.
    fn options(&self) -> &'static [&'static str] {
        &[]
    }
    /// Checks this type's own options (required ones present, values well formed); `at`
    /// gives a field's JSON path.
    fn check_options(
        &self,
        _p: &ProviderConfig,
        _at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        Ok(())
    }
    /// The path prefix when the configuration sets none.
    fn default_path_prefix(&self) -> &'static str {
        "/v1"
    }
    /// The `:authority` when the configuration sets no `host` (`None`: the client's).
    fn default_host(&self, _p: &Provider) -> Option<String> {
        None
    }
    /// The upstream `:path`. `query` is the client's query string with its `?`. By
    /// default the endpoint's path under the provider's prefix, the query kept.
    fn path(
        &self,
        p: &Provider,
        endpoint: Endpoint,
        _model: &str,
        query: &str,
        _stream: bool,
    ) -> String {
        format!("{}{}{query}", p.path_prefix, endpoint.suffix())
    }
    /// The headers that authenticate `req` (and any the signature covers). The client's
    /// credential headers that these do not replace are removed.
    fn authenticate(&self, p: &Provider, req: &Outgoing<'_>) -> Result<Headers, GatewayError>;
}

/// The registry: the adapter of each provider type.
pub fn adapter(kind: ProviderType) -> &'static dyn Adapter {
    match kind {
        ProviderType::Openai => &openai::OpenAi,
        ProviderType::AzureOpenai => &azure_openai::AzureOpenAi,
        ProviderType::Anthropic => &anthropic::Anthropic,
        ProviderType::Gemini => &gemini::Gemini,
        ProviderType::Vertex => &vertex::Vertex,
        ProviderType::Bedrock => &bedrock::Bedrock,
    }
}

/// Checks a provider's type-specific options: each only on the types that take it, then
/// its type's own checks.
pub fn check_options(p: &ProviderConfig, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    let own = adapter(p.kind).options();
    for (option, present) in p.type_options() {
        if present && !own.contains(&option) {
            let takers: Vec<String> = ProviderType::ALL
                .iter()
                .filter(|t| adapter(**t).options().contains(&option))
                .map(|t| format!("{:?}", t.as_str()))
                .collect();
            let message = match takers.as_slice() {
                [one] => format!("only allowed for type {one}"),
                [first @ .., last] => {
                    format!("only allowed for types {} and {last}", first.join(", "))
                }
                [] => "not allowed".to_string(),
            };
            return Err(err(at(option), message));
        }
    }
    adapter(p.kind).check_options(p, at)
}

/// A name made of letters, digits, `-`, `_` and `.` (a project, a region, a deployment).
fn is_ident(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The API a provider speaks.
pub fn api_of(kind: ProviderType) -> Api {
    adapter(kind).api()
}

/// The endpoint the upstream request goes to: the client's, or the one the request is
/// translated to. `Err` when the provider cannot serve the client's endpoint.
pub fn upstream_endpoint(client: Endpoint, provider: &Provider) -> Result<Endpoint, GatewayError> {
    adapter(provider.kind).endpoint(client).ok_or_else(|| {
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
    })
}

/// The upstream `:path`. `client_query` is the client's query string with its `?`
/// (kept, except where the provider's own query replaces it).
pub fn upstream_path(
    provider: &Provider,
    endpoint: Endpoint,
    upstream_model: &str,
    client_query: &str,
    stream: bool,
) -> String {
    adapter(provider.kind).path(provider, endpoint, upstream_model, client_query, stream)
}

/// The `:authority` for a provider: its `host`, or its type's default (a region's public
/// endpoint).
pub fn upstream_host(provider: &Provider) -> Option<String> {
    provider
        .host
        .clone()
        .or_else(|| adapter(provider.kind).default_host(provider))
}

/// The Gemini method for a (streamed) `generateContent` call.
fn gemini_method(stream: bool) -> &'static str {
    if stream {
        ":streamGenerateContent?alt=sse"
    } else {
        ":generateContent"
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

    /// The headers a keyed provider authenticates with.
    fn auth_headers(p: &Provider, client_version: Option<String>) -> Vec<(&'static str, String)> {
        let none = |_| None;
        let req = Outgoing {
            authority: "",
            path: "/",
            body_read: b"{}",
            edit: None,
            now_s: &|| 0,
            client_anthropic_version: client_version.as_deref(),
            cached_token: &none,
        };
        adapter(p.kind)
            .authenticate(p, &req)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                let name: &'static str = match k.as_ref() {
                    "authorization" => "authorization",
                    "api-key" => "api-key",
                    "x-api-key" => "x-api-key",
                    "anthropic-version" => "anthropic-version",
                    "x-goog-api-key" => "x-goog-api-key",
                    other => panic!("unexpected header {other}"),
                };
                (name, v)
            })
            .collect()
    }

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

    #[test]
    fn type_specific_options_are_refused_on_other_types_with_their_path() {
        let cases = [
            (
                "openai",
                r#""anthropic_version":"2023-06-01""#,
                "anthropic_version",
                r#"only allowed for type "anthropic""#,
            ),
            (
                "openai",
                r#""default_max_tokens":10"#,
                "default_max_tokens",
                r#"only allowed for type "anthropic""#,
            ),
            (
                "anthropic",
                r#""api_version":"2024-10-21""#,
                "api_version",
                r#"only allowed for type "azure_openai""#,
            ),
            (
                "openai",
                r#""deployments":{"a":"b"}"#,
                "deployments",
                r#"only allowed for type "azure_openai""#,
            ),
            (
                "bedrock",
                r#""region":"us-east-1","project":"p""#,
                "project",
                r#"only allowed for type "vertex""#,
            ),
            (
                "gemini",
                r#""token_endpoint":{"cluster":"m"}"#,
                "token_endpoint",
                r#"only allowed for type "vertex""#,
            ),
            (
                "vertex",
                r#""project":"p","region":"r","aws_credentials_env":{}"#,
                "aws_credentials_env",
                r#"only allowed for type "bedrock""#,
            ),
            (
                "azure_openai",
                r#""region":"us-east-1""#,
                "region",
                r#"only allowed for types "vertex" and "bedrock""#,
            ),
            // The type's own checks.
            (
                "vertex",
                r#""region":"r""#,
                "project",
                "required for vertex",
            ),
            ("bedrock", "", "region", "required for bedrock"),
            (
                "anthropic",
                r#""default_max_tokens":0"#,
                "default_max_tokens",
                "must be greater than 0",
            ),
            (
                "azure_openai",
                r#""deployments":{"m":"a b"}"#,
                "deployments.m",
                "a deployment name",
            ),
        ];
        for (kind, extra, field, message) in cases {
            let sep = if extra.is_empty() { "" } else { "," };
            let json = format!(
                r#"{{"providers":[{{"name":"p","type":"{kind}","cluster":"c","api_key_env":"K"{sep}{extra}}}]}}"#
            );
            let e = Config::parse(json.as_bytes(), &|_| Some("k".into())).unwrap_err();
            assert_eq!(e.path, format!("providers[0].{field}"), "{json}");
            assert!(e.message.contains(message), "{json}: {}", e.message);
        }
    }

    #[test]
    fn default_path_prefixes() {
        let prefix = |t| adapter(t).default_path_prefix();
        assert_eq!(prefix(ProviderType::Openai), "/v1");
        assert_eq!(prefix(ProviderType::AzureOpenai), "/openai");
        assert_eq!(prefix(ProviderType::Gemini), "/v1beta");
        assert_eq!(prefix(ProviderType::Vertex), "/v1");
        assert_eq!(prefix(ProviderType::Bedrock), "");
    }
}
