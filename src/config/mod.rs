//! Plugin configuration: the JSON in the Wasm filter's `configuration` field.
//!
//! Parsing is strict: unknown fields and wrong types are rejected with the JSON path of
//! the offending field (`providers[1].type: unknown variant ...`), and semantic errors
//! (an unknown provider in a model rule, a duplicate name) name their path too.

use serde::Deserialize;
use std::collections::HashMap;

pub mod routing;

pub use crate::config_error::ConfigError;
use crate::config_error::{check_token, err};
use crate::providers::config::{
    AwsCredentialsEnv, AwsKeys, Provider, ProviderConfig, ProviderType,
    DEFAULT_ANTHROPIC_MAX_TOKENS, DEFAULT_ANTHROPIC_VERSION, DEFAULT_AZURE_API_VERSION,
};

/// Default limit on a buffered request body (8 MiB). Keep it below the Envoy listener's
/// `per_connection_buffer_limit_bytes` so the filter answers with its own 413 first.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 8 * 1024 * 1024;
/// Default limit on a response body the filter keeps a copy of to read usage (16 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Header the filter sets to the target Envoy cluster (route with `cluster_header`).
pub const DEFAULT_CLUSTER_HEADER: &str = "x-llm-gateway-cluster";
/// Header the filter sets to the provider name (for route matching by provider).
pub const DEFAULT_PROVIDER_HEADER: &str = "x-llm-gateway-provider";

/// The llm-gateway plugin configuration: the JSON in the Wasm filter's `configuration`
/// (see docs/configuration.md).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Upstream LLM services; at least one, names unique.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub providers: Vec<ProviderConfig>,
    /// How requested model names map to providers: exact rules first, then
    /// `provider/model`, then the longest prefix wildcard, then the catch-all `*`.
    #[serde(default)]
    pub models: Vec<ModelRule>,
    /// Largest request body the filter buffers, in bytes (default 8 MiB); larger → 413.
    /// Keep it below the listener's `per_connection_buffer_limit_bytes`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub max_request_bytes: Option<u64>,
    /// Largest JSON response the filter keeps a copy of to read usage, in bytes
    /// (default 16 MiB); a larger response is passed on and counted without usage.
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
    /// Header set to the provider's Envoy cluster (default `x-llm-gateway-cluster`);
    /// route on it with `cluster_header`.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = "^[a-z0-9_-]+$")))]
    pub cluster_header: Option<String>,
    /// Header set to the provider name (default `x-llm-gateway-provider`); match on it
    /// in a mesh (Istio `VirtualService`, Gateway API `HTTPRoute`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = "^[a-z0-9_-]+$")))]
    pub provider_header: Option<String>,
    /// Consumers (virtual API keys, allowed models); see docs/quotas.md.
    #[serde(default)]
    pub consumers: Option<crate::quota::ConsumersConfig>,
    /// How callers are identified; see docs/quotas.md.
    #[serde(default)]
    pub identity: Option<crate::quota::IdentityConfig>,
    /// Token quotas; see docs/quotas.md.
    #[serde(default)]
    pub quotas: Option<crate::quota::QuotaConfig>,
    /// The access-log attributes the filter writes (Envoy filter state
    /// `wasm.llm_gateway.<name>`); default: all of them. Each written attribute is a host
    /// call per request (about 1 % of a small request's cost in Envoy): list only those
    /// the access log reads, or `[]` for none. Metrics are not affected.
    #[serde(default)]
    pub access_log_attributes: Option<Vec<Attribute>>,
}

/// An access-log attribute: Envoy filter state `wasm.llm_gateway.<name>`, read with
/// `%FILTER_STATE(wasm.llm_gateway.<name>:PLAIN)%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    /// Provider name.
    Provider,
    /// Upstream model.
    Model,
    /// The model the client asked for.
    RequestedModel,
    InputTokens,
    OutputTokens,
    TotalTokens,
    CachedInputTokens,
    /// `true` when usage was estimated.
    UsageEstimated,
    /// Error code when the gateway answered itself.
    Error,
}

impl Attribute {
    pub const ALL: [Attribute; 9] = [
        Attribute::Provider,
        Attribute::Model,
        Attribute::RequestedModel,
        Attribute::InputTokens,
        Attribute::OutputTokens,
        Attribute::TotalTokens,
        Attribute::CachedInputTokens,
        Attribute::UsageEstimated,
        Attribute::Error,
    ];

    /// The property name the filter sets (Envoy prefixes it with `wasm.`).
    pub const fn name(self) -> &'static str {
        match self {
            Attribute::Provider => "llm_gateway.provider",
            Attribute::Model => "llm_gateway.model",
            Attribute::RequestedModel => "llm_gateway.requested_model",
            Attribute::InputTokens => "llm_gateway.input_tokens",
            Attribute::OutputTokens => "llm_gateway.output_tokens",
            Attribute::TotalTokens => "llm_gateway.total_tokens",
            Attribute::CachedInputTokens => "llm_gateway.cached_input_tokens",
            Attribute::UsageEstimated => "llm_gateway.usage_estimated",
            Attribute::Error => "llm_gateway.error",
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Which access-log attributes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeSet(u16);

impl AttributeSet {
    pub fn all() -> Self {
        Self::of(&Attribute::ALL)
    }

    pub fn of(list: &[Attribute]) -> Self {
        AttributeSet(list.iter().fold(0, |bits, a| bits | a.bit()))
    }

    pub fn contains(self, a: Attribute) -> bool {
        self.0 & a.bit() != 0
    }
}

/// Maps requested model names to a provider.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelRule {
    /// `gpt-4o-mini` (exact), `gpt-4o*` (prefix wildcard) or `*` (catch-all).
    #[serde(rename = "match")]
    pub pattern: String,
    /// A provider `name`.
    pub provider: String,
    /// Model name sent upstream; the requested name when absent (aliases set it).
    #[serde(default)]
    pub upstream_model: Option<String>,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub providers: Vec<Provider>,
    pub routes: crate::config::routing::RouteTable,
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
    pub cluster_header: String,
    pub provider_header: String,
    /// Providers left out because they are optional and their key is unset.
    pub skipped_providers: Vec<String>,
    /// Consumers, identity and quotas; `None` when none of them is configured.
    pub policy: Option<crate::quota::Policy>,
    /// The access-log attributes to write.
    pub attributes: AttributeSet,
}

impl Config {
    /// Parses and validates the plugin configuration. `env` looks up environment
    /// variables (the Wasm VM's environment in production, a map in tests).
    pub fn parse(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            err(path, e.into_inner().to_string())
        })?;
        Self::from_raw(raw, env)
    }

    pub fn from_raw(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if raw.providers.is_empty() {
            return Err(err("providers", "at least one provider is required"));
        }
        let mut providers = Vec::with_capacity(raw.providers.len());
        let mut skipped = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, p) in raw.providers.iter().enumerate() {
            let at = |field: &str| format!("providers[{i}].{field}");
            check_token(&p.name, &at("name"))?;
            if p.name.contains('/') {
                return Err(err(
                    at("name"),
                    "must not contain '/' (used for provider/model addressing)",
                ));
            }
            if seen.insert(p.name.as_str(), i).is_some() {
                return Err(err(
                    at("name"),
                    format!("duplicate provider name {:?}", p.name),
                ));
            }
            check_token(&p.cluster, &at("cluster"))?;
            if let Some(h) = &p.host {
                check_token(h, &at("host"))?;
            }
            let path_prefix = p.path_prefix.clone().unwrap_or_else(|| {
                crate::providers::adapter(p.kind)
                    .default_path_prefix()
                    .to_string()
            });
            if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
                return Err(err(at("path_prefix"), "must be empty or start with '/'"));
            }
            if path_prefix.ends_with('/') {
                return Err(err(at("path_prefix"), "must not end with '/'"));
            }
            crate::providers::check_options(p, &at)?;
            if let Some(var) = &p.api_key_env {
                check_token(var, &at("api_key_env"))?;
            } else if p.optional {
                return Err(err(
                    at("optional"),
                    "an optional provider needs `api_key_env`",
                ));
            }
            let api_key = p
                .api_key_env
                .as_deref()
                .and_then(env)
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty());
            if let Some(k) = &api_key {
                if k.bytes().any(|b| b < 0x20 || b == 0x7f) {
                    return Err(err(
                        at("api_key_env"),
                        "the key in this variable contains control characters",
                    ));
                }
            }
            if p.optional && api_key.is_none() {
                skipped.push(p.name.clone());
            }
            providers.push(Provider {
                name: p.name.clone(),
                kind: p.kind,
                cluster: p.cluster.clone(),
                host: p.host.clone(),
                path_prefix,
                api_key_env: p.api_key_env.clone(),
                api_key,
                anthropic_version: p
                    .anthropic_version
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_string()),
                default_max_tokens: p.default_max_tokens.unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS),
                api_version: p
                    .api_version
                    .clone()
                    .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_string()),
                deployments: p
                    .deployments
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                project: p.project.clone().unwrap_or_default(),
                region: p.region.clone().unwrap_or_default(),
                token_endpoint: p.token_endpoint.clone(),
                aws: (p.kind == ProviderType::Bedrock)
                    .then(|| aws_keys(p.aws_credentials_env.as_ref(), env))
                    .flatten(),
            });
        }
        for (i, m) in raw.models.iter().enumerate() {
            let at = |field: &str| format!("models[{i}].{field}");
            if m.pattern.is_empty() {
                return Err(err(at("match"), "must not be empty"));
            }
            if let Some(star) = m.pattern.find('*') {
                if star + 1 != m.pattern.len() {
                    return Err(err(
                        at("match"),
                        "'*' is only allowed at the end (prefix wildcard) or alone (catch-all)",
                    ));
                }
            }
            if !seen.contains_key(m.provider.as_str()) {
                return Err(err(
                    at("provider"),
                    format!("unknown provider {:?}", m.provider),
                ));
            }
            if let Some(u) = &m.upstream_model {
                if u.is_empty() {
                    return Err(err(at("upstream_model"), "must not be empty"));
                }
                if m.pattern.ends_with('*') {
                    return Err(err(
                        at("upstream_model"),
                        "not allowed on a wildcard rule (every matching model would become one)",
                    ));
                }
            }
        }
        let max_request_bytes = raw.max_request_bytes.unwrap_or(DEFAULT_MAX_REQUEST_BYTES);
        if max_request_bytes == 0 {
            return Err(err("max_request_bytes", "must be greater than 0"));
        }
        let max_response_bytes = raw.max_response_bytes.unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
        let cluster_header =
            header_name(raw.cluster_header, DEFAULT_CLUSTER_HEADER, "cluster_header")?;
        let provider_header = header_name(
            raw.provider_header,
            DEFAULT_PROVIDER_HEADER,
            "provider_header",
        )?;
        let routes = crate::config::routing::RouteTable::build(&raw.models, &providers, &skipped);
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let policy = crate::quota::Policy::build(
            raw.consumers.as_ref(),
            raw.identity.as_ref(),
            raw.quotas.as_ref(),
            &names,
        )?;
        Ok(Config {
            providers,
            routes,
            max_request_bytes,
            max_response_bytes,
            attributes: raw
                .access_log_attributes
                .as_deref()
                .map_or_else(AttributeSet::all, AttributeSet::of),
            cluster_header,
            provider_header,
            skipped_providers: skipped,
            policy,
        })
    }

    /// Logs, when the configuration loads, which providers have no key: optional ones
    /// (skipped) and required ones (their requests get 503).
    pub fn log_missing_keys(&self) {
        for name in &self.skipped_providers {
            log::info!("llm-gateway: optional provider {name:?} has no key in the environment; its models fall through to later rules");
        }
        for p in &self.providers {
            if let (Some(var), None, false) = (
                &p.api_key_env,
                &p.api_key,
                self.skipped_providers.contains(&p.name),
            ) {
                log::warn!(
                    "llm-gateway: provider {:?} needs {var}, which is unset; its requests get 503",
                    p.name
                );
            }
        }
    }

    pub fn provider(&self, index: usize) -> Option<&Provider> {
        self.providers.get(index)
    }
}

fn aws_keys(
    names: Option<&AwsCredentialsEnv>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<AwsKeys> {
    let name =
        |v: Option<&String>, default: &str| v.cloned().unwrap_or_else(|| default.to_string());
    let id_var = name(
        names.and_then(|n| n.access_key_id.as_ref()),
        "AWS_ACCESS_KEY_ID",
    );
    let secret_var = name(
        names.and_then(|n| n.secret_access_key.as_ref()),
        "AWS_SECRET_ACCESS_KEY",
    );
    let token_var = name(
        names.and_then(|n| n.session_token.as_ref()),
        "AWS_SESSION_TOKEN",
    );
    let get = |v: &str| {
        env(v)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Some(AwsKeys {
        access_key_id: get(&id_var)?,
        secret_access_key: get(&secret_var)?,
        session_token: get(&token_var),
        variables: format!("{id_var} and {secret_var}"),
    })
}

fn header_name(v: Option<String>, default: &str, path: &str) -> Result<String, ConfigError> {
    let name = v.unwrap_or_else(|| default.to_string());
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(err(path, "must be a lowercase HTTP header name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::parse(json.as_bytes(), &no_env)
    }

    const OK: &str = r#"{
        "providers": [
            {"name":"openai","type":"openai","cluster":"openai","host":"api.openai.com","api_key_env":"OPENAI_API_KEY","optional":true},
            {"name":"demo","type":"openai","cluster":"demo"}
        ],
        "models": [
            {"match":"fast","provider":"openai","upstream_model":"gpt-4o-mini"},
            {"match":"gpt-4o*","provider":"openai"},
            {"match":"*","provider":"demo"}
        ]
    }"#;

    #[test]
    fn parses_valid_config_with_defaults() {
        let c = parse(OK).unwrap();
        assert_eq!(c.providers.len(), 2);
        assert_eq!(c.max_request_bytes, DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(c.cluster_header, "x-llm-gateway-cluster");
        assert_eq!(c.providers[1].path_prefix, "/v1");
        assert_eq!(c.skipped_providers, vec!["openai".to_string()]);
    }

    #[test]
    fn key_is_read_from_env_and_redacted_in_debug() {
        let env = |k: &str| (k == "OPENAI_API_KEY").then(|| "sk-secret-123".to_string());
        let c = Config::parse(OK.as_bytes(), &env).unwrap();
        assert_eq!(c.providers[0].api_key.as_deref(), Some("sk-secret-123"));
        assert!(c.skipped_providers.is_empty());
        let dbg = format!("{:?}", c);
        assert!(!dbg.contains("sk-secret-123"), "{dbg}");
    }

    #[test]
    fn unknown_field_names_its_path() {
        let e = parse(r#"{"providers":[{"name":"a","type":"openai","cluster":"c","colour":1}]}"#)
            .unwrap_err();
        assert_eq!(e.path, "providers[0].colour");
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );
        assert!(e.to_string().contains("providers[0]"));
    }

    #[test]
    fn wrong_type_names_its_path() {
        let e = parse(r#"{"providers":[{"name":"a","type":"openai","cluster":"c"},{"name":"b","type":"nope","cluster":"c"}]}"#).unwrap_err();
        assert!(
            e.message.contains("anthropic") && e.message.contains("azure_openai"),
            "{}",
            e.message
        );
        assert_eq!(e.path, "providers[1].type");
        let e = parse(r#"{"providers":[{"name":"a","type":"openai","cluster":"c"}],"max_request_bytes":"big"}"#).unwrap_err();
        assert_eq!(e.path, "max_request_bytes");
    }

    #[test]
    fn semantic_errors_name_their_path() {
        let cases = [
            (r#"{"providers":[]}"#, "providers"),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c"}],"models":[{"match":"x","provider":"b"}]}"#,
                "models[0].provider",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c"},{"name":"a","type":"openai","cluster":"d"}]}"#,
                "providers[1].name",
            ),
            (
                r#"{"providers":[{"name":"a/b","type":"openai","cluster":"c"}]}"#,
                "providers[0].name",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":""}]}"#,
                "providers[0].cluster",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c","path_prefix":"v1"}]}"#,
                "providers[0].path_prefix",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c","optional":true}]}"#,
                "providers[0].optional",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c"}],"models":[{"match":"g*x","provider":"a"}]}"#,
                "models[0].match",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c"}],"models":[{"match":"g*","provider":"a","upstream_model":"x"}]}"#,
                "models[0].upstream_model",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c"}],"cluster_header":"X Bad"}"#,
                "cluster_header",
            ),
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c"}],"max_request_bytes":0}"#,
                "max_request_bytes",
            ),
        ];
        for (json, path) in cases {
            let e = parse(json).unwrap_err();
            assert_eq!(e.path, path, "{json}: {e}");
        }
    }

    #[test]
    fn provider_type_options() {
        let c = parse(r#"{"providers":[
            {"name":"an","type":"anthropic","cluster":"an","anthropic_version":"2023-06-01","default_max_tokens":1024},
            {"name":"az","type":"azure_openai","cluster":"az","api_version":"2024-10-21","deployments":{"gpt-4o":"prod"}}]}"#)
        .unwrap();
        assert_eq!(c.providers[0].path_prefix, "/v1");
        assert_eq!(c.providers[0].default_max_tokens, 1024);
        assert_eq!(c.providers[1].path_prefix, "/openai");
        assert_eq!(c.providers[1].deployment("gpt-4o"), "prod");
        assert_eq!(c.providers[1].deployment("other"), "other");
        let cases = [
            (
                r#"{"providers":[{"name":"a","type":"openai","cluster":"c","api_version":"1"}]}"#,
                "providers[0].api_version",
            ),
            (
                r#"{"providers":[{"name":"a","type":"azure_openai","cluster":"c","anthropic_version":"1"}]}"#,
                "providers[0].anthropic_version",
            ),
            (
                r#"{"providers":[{"name":"a","type":"anthropic","cluster":"c","default_max_tokens":0}]}"#,
                "providers[0].default_max_tokens",
            ),
            (
                r#"{"providers":[{"name":"a","type":"azure_openai","cluster":"c","deployments":{"m":"a/b"}}]}"#,
                "providers[0].deployments.m",
            ),
            (
                r#"{"providers":[{"name":"a","type":"azure_openai","cluster":"c","api_version":"x y"}]}"#,
                "providers[0].api_version",
            ),
        ];
        for (json, path) in cases {
            assert_eq!(parse(json).unwrap_err().path, path, "{json}");
        }
    }

    #[test]
    fn not_json_is_rejected() {
        let e = parse("providers: []").unwrap_err();
        assert!(e.to_string().contains("invalid llm-gateway configuration"));
    }
}
