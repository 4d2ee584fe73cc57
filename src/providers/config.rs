//! What an operator writes about a provider (`providers[]` in the configuration), and the
//! provider as requests use it (its keys read from the environment).

use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;

/// Wire API of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    /// OpenAI and every OpenAI-compatible server (OpenRouter, Groq, Mistral, vLLM, Ollama…).
    Openai,
    /// Anthropic Messages API (`/v1/messages`, `x-api-key`, `anthropic-version`).
    Anthropic,
    /// Azure OpenAI (`/openai/deployments/{deployment}/…?api-version=…`, `api-key`).
    AzureOpenai,
    /// Google AI Studio Gemini API (`/v1beta/models/{model}:generateContent`, `x-goog-api-key`).
    Gemini,
    /// Google Vertex AI (`/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`,
    /// bearer token from the environment or a token endpoint).
    Vertex,
    /// AWS Bedrock Converse API (`/model/{modelId}/converse`, SigV4).
    Bedrock,
}

impl ProviderType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Openai => "openai",
            ProviderType::Anthropic => "anthropic",
            ProviderType::AzureOpenai => "azure_openai",
            ProviderType::Gemini => "gemini",
            ProviderType::Vertex => "vertex",
            ProviderType::Bedrock => "bedrock",
        }
    }

    /// Every provider type, in the order errors list them.
    pub const ALL: [ProviderType; 6] = [
        ProviderType::Openai,
        ProviderType::Anthropic,
        ProviderType::AzureOpenai,
        ProviderType::Gemini,
        ProviderType::Vertex,
        ProviderType::Bedrock,
    ];
}

/// Default `anthropic-version` header sent to Anthropic.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// Default `max_tokens` for Anthropic when an OpenAI client sets none (Anthropic requires it).
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 4096;
/// Default Azure OpenAI `api-version`.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// An upstream LLM service.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name used in model rules, `provider/model` addressing and metrics; unique, no `/`.
    pub name: String,
    /// Wire API of the provider.
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// Envoy cluster that reaches the provider.
    pub cluster: String,
    /// `:authority` sent upstream (e.g. `api.openai.com`); unchanged when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix that replaces the client's `/v1` (e.g. `/v1`, `/openai/v1`, `/api/v1`).
    /// Default: `/v1`, or `/openai` for `azure_openai`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Environment variable (of the Wasm VM, see `vm_config.environment_variables`)
    /// holding the provider API key. No key is sent when absent.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// When true and `api_key_env` is unset in the environment, the provider is treated
    /// as not configured: model rules that point at it are skipped, so the next matching
    /// rule (e.g. a demo catch-all) serves the model.
    #[serde(default)]
    pub optional: bool,
    /// `anthropic` only: the `anthropic-version` header (default `2023-06-01`). Anthropic
    /// clients' own header is passed on when they call an Anthropic provider natively.
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `anthropic` only: `max_tokens` sent when an OpenAI client sets none (default 4096).
    #[serde(default)]
    pub default_max_tokens: Option<u32>,
    /// `azure_openai` only: the `api-version` query parameter (default `2024-10-21`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// `azure_openai` only: upstream model → deployment name. A model not listed is used
    /// as the deployment name.
    #[serde(default)]
    pub deployments: Option<std::collections::BTreeMap<String, String>>,
    /// `vertex` only: the Google Cloud project.
    #[serde(default)]
    pub project: Option<String>,
    /// `vertex` (required) and `bedrock` (required): the location / AWS region, e.g.
    /// `us-central1`, `global`, `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// `vertex` only: fetch and refresh the bearer token from this endpoint (e.g. the GCE
    /// metadata server) instead of reading it from `api_key_env`.
    #[serde(default)]
    pub token_endpoint: Option<TokenEndpoint>,
    /// `bedrock` only: environment variables with the AWS credentials (defaults
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
    #[serde(default)]
    pub aws_credentials_env: Option<AwsCredentialsEnv>,
}

impl ProviderConfig {
    /// The options only some provider types take, and whether this provider sets each (in
    /// the order they are checked).
    pub fn type_options(&self) -> [(&'static str, bool); 8] {
        [
            ("anthropic_version", self.anthropic_version.is_some()),
            ("default_max_tokens", self.default_max_tokens.is_some()),
            ("api_version", self.api_version.is_some()),
            ("deployments", self.deployments.is_some()),
            ("project", self.project.is_some()),
            ("token_endpoint", self.token_endpoint.is_some()),
            ("aws_credentials_env", self.aws_credentials_env.is_some()),
            ("region", self.region.is_some()),
        ]
    }
}

/// Where a Vertex AI access token is fetched from (answer `{"access_token","expires_in"}`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenEndpoint {
    /// Envoy cluster that reaches the endpoint (plain HTTP for the metadata server).
    pub cluster: String,
    /// `:authority` (default `metadata.google.internal`).
    #[serde(default)]
    pub host: Option<String>,
    /// Path (default the metadata server's default service account token path).
    #[serde(default)]
    pub path: Option<String>,
}

/// Names of the environment variables holding AWS credentials.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AwsCredentialsEnv {
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
}

/// A provider ready for requests: its key already read from the environment.
#[derive(Clone)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderType,
    pub cluster: String,
    pub host: Option<String>,
    pub path_prefix: String,
    pub api_key_env: Option<String>,
    /// `Some` when the key variable is set; never logged or printed.
    pub api_key: Option<String>,
    pub anthropic_version: String,
    pub default_max_tokens: u32,
    pub api_version: String,
    pub deployments: HashMap<String, String>,
    pub project: String,
    pub region: String,
    pub token_endpoint: Option<TokenEndpoint>,
    /// Bedrock: (access key id, secret, session token) when the variables are set.
    pub aws: Option<AwsKeys>,
}

/// AWS credentials read from the environment; `Debug` never shows the secrets.
#[derive(Clone)]
pub struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// The variable names, for error messages.
    pub variables: String,
}

impl fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AwsKeys(<redacted>)")
    }
}

impl Provider {
    /// Azure deployment serving `model`.
    pub fn deployment<'a>(&'a self, model: &'a str) -> &'a str {
        self.deployments
            .get(model)
            .map(String::as_str)
            .unwrap_or(model)
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("cluster", &self.cluster)
            .field("host", &self.host)
            .field("path_prefix", &self.path_prefix)
            .field("api_key_env", &self.api_key_env)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
