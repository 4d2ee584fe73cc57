//! What clients speak: the endpoints the gateway serves, the wire APIs on either side, and
//! errors in the client's own format ([`errors`]).

pub mod errors;

/// The API a request path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    /// Anthropic Messages API (Anthropic clients).
    Messages,
}

impl Endpoint {
    /// Maps a client path (query string ignored) to an endpoint; `None` passes through.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.strip_suffix('/').unwrap_or(path);
        match path {
            "/v1/chat/completions" => Some(Endpoint::ChatCompletions),
            "/v1/completions" => Some(Endpoint::Completions),
            "/v1/embeddings" => Some(Endpoint::Embeddings),
            "/v1/responses" => Some(Endpoint::Responses),
            "/v1/messages" => Some(Endpoint::Messages),
            _ => None,
        }
    }

    /// Path of this endpoint below the provider's prefix.
    pub fn suffix(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Responses => "/responses",
            Endpoint::Messages => "/messages",
        }
    }

    /// Whether a streamed answer reports usage only with `stream_options.include_usage`.
    pub fn streams_usage(self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Completions)
    }

    /// Metric/attribute label.
    pub fn operation(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat",
            Endpoint::Completions => "text_completion",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
            Endpoint::Messages => "messages",
        }
    }
}

/// A wire API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
    /// Gemini `generateContent` (Google AI Studio and Vertex AI); upstream only.
    Gemini,
    /// AWS Bedrock Converse; upstream only.
    Bedrock,
}

impl Api {
    /// The API a client speaks on an endpoint.
    pub fn of_client(endpoint: Endpoint) -> Api {
        match endpoint {
            Endpoint::Messages => Api::Anthropic,
            _ => Api::OpenAi,
        }
    }
}

/// Client credentials removed before a routed request goes upstream.
pub const CLIENT_CREDENTIAL_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key"];
