//! Configuration of consumers, identity and token quotas: the serde types of the
//! `consumers`, `identity` and `quotas` members of the plugin configuration, and their
//! validation into a ready-to-use [`Policy`]. The JSON shape is documented in
//! docs/quotas.md.

use super::meter::{CountMode, Meter};
use super::window::Window;
use crate::config_error::ConfigError;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Default `quotas.default_max_tokens`: the output reservation of a request that names no
/// `max_tokens`/`max_completion_tokens`/`max_output_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Default `quotas.global.domain`.
pub const DEFAULT_DOMAIN: &str = "llm-gateway";
/// Default `quotas.global.timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 100;
/// The consumer name of callers that presented no identity when `identity.required` is
/// false. Reserved: no configured consumer may use it.
pub const ANONYMOUS: &str = "anonymous";

// ---------------------------------------------------------------------------- raw (serde)

/// The top-level `consumers` array.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(transparent)]
pub struct ConsumersConfig(pub Vec<ConsumerConfig>);

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    pub name: String,
    /// SHA-256 (hex) of the consumer's virtual API key, or a list of them (key rotation).
    /// The key itself is never stored in configuration.
    #[serde(default)]
    pub key_sha256: Option<OneOrMany>,
    /// Models this consumer may use (`exact`, `prefix*`, `*`); default `["*"]`.
    #[serde(default)]
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<(Option<usize>, &str)> {
        match self {
            OneOrMany::One(s) => vec![(None, s.as_str())],
            OneOrMany::Many(v) => v
                .iter()
                .enumerate()
                .map(|(i, s)| (Some(i), s.as_str()))
                .collect(),
        }
    }
}

/// The top-level `identity` object: how a caller becomes a consumer.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Accept virtual API keys (`authorization: Bearer …`, `x-api-key`, `api-key`).
    /// Default: true when any consumer has `key_sha256`.
    #[serde(default)]
    pub api_key: Option<bool>,
    /// A header set by an earlier, trusted filter whose value is the consumer name.
    /// Opt-in: only name a header that Envoy strips from client requests.
    #[serde(default)]
    pub header: Option<String>,
    /// A claim of the JWT verified by Envoy's `jwt_authn` filter.
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Refuse callers that present no identity (401). Default: true when any source is
    /// enabled.
    #[serde(default)]
    pub required: Option<bool>,
    /// Models of callers that are not listed in `consumers` (a JWT subject, a trusted
    /// header value, or `anonymous`). Default `["*"]`.
    #[serde(default)]
    pub default_models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// `payload_in_metadata` of the `jwt_authn` provider.
    pub payload_in_metadata: String,
    /// Top-level string claim naming the consumer; default `sub`.
    #[serde(default = "default_claim")]
    pub claim: String,
}

fn default_claim() -> String {
    "sub".to_string()
}

/// The top-level `quotas` object.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    #[serde(default)]
    pub mode: QuotaMode,
    /// What a request costs: `total` (default), `input`, `output` or `weighted`.
    #[serde(default)]
    pub count: CountMode,
    /// Per-model weights for `count: "weighted"`; first match wins, default 1/1/1.
    #[serde(default)]
    pub weights: Vec<WeightConfig>,
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
    pub rules: Vec<RuleConfig>,
    /// Required with `mode: "global"`.
    #[serde(default)]
    pub global: Option<GlobalConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum QuotaMode {
    /// Counters in the Envoy process (proxy-wasm shared data): exact on one Envoy.
    #[default]
    Local,
    /// Counters in a rate limit service (Envoy's RLS protocol): shared by many Envoys.
    Global,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WeightConfig {
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub input: Option<f64>,
    #[serde(default)]
    pub output: Option<f64>,
    /// Weight of cached input tokens; default: the `input` weight.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// Consumer name pattern; absent = any consumer (anonymous included).
    #[serde(default)]
    pub consumer: Option<String>,
    /// Model pattern (matched against the requested and the upstream model); absent = any.
    #[serde(default)]
    pub model: Option<String>,
    /// Provider name pattern; absent = any.
    #[serde(default)]
    pub provider: Option<String>,
    pub limit: u64,
    pub window: Window,
    /// Separate counters per value of these dimensions; `[]` (default) = one shared
    /// counter for everything the rule matches.
    #[serde(default)]
    pub group_by: Vec<Dimension>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Consumer,
    Model,
    Provider,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Consumer => "consumer",
            Dimension::Model => "model",
            Dimension::Provider => "provider",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Envoy cluster of the rate limit service (HTTP/2).
    pub cluster: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// What to do when the service fails or times out: `allow` (default) or `deny`.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    #[default]
    Allow,
    Deny,
}

// ---------------------------------------------------------------------------- compiled

/// `exact`, `prefix*` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glob {
    Any,
    Prefix(String),
    Exact(String),
}

impl Glob {
    pub fn parse(s: &str) -> Result<Glob, &'static str> {
        if s.is_empty() {
            return Err("must not be empty");
        }
        match s.find('*') {
            None => Ok(Glob::Exact(s.to_string())),
            Some(i) if i + 1 == s.len() => {
                if i == 0 {
                    Ok(Glob::Any)
                } else {
                    Ok(Glob::Prefix(s.get(..i).unwrap_or_default().to_string()))
                }
            }
            Some(_) => Err("'*' is only allowed at the end (prefix wildcard) or alone (any)"),
        }
    }

    pub fn matches(&self, s: &str) -> bool {
        match self {
            Glob::Any => true,
            Glob::Prefix(p) => s.starts_with(p.as_str()),
            Glob::Exact(e) => s == e,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Consumer {
    pub name: String,
    pub models: Vec<Glob>,
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub api_key: bool,
    pub header: Option<String>,
    pub jwt: Option<JwtConfig>,
    pub required: bool,
    pub default_models: Vec<Glob>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub consumer: Option<Glob>,
    pub model: Option<Glob>,
    pub provider: Option<Glob>,
    pub limit: u64,
    pub window: Window,
    pub group_by: Vec<Dimension>,
}

#[derive(Debug, Clone)]
pub struct Global {
    pub cluster: String,
    pub domain: String,
    pub timeout_ms: u64,
    pub failure_mode: FailureMode,
}

#[derive(Debug, Clone)]
pub struct Quotas {
    pub mode: QuotaMode,
    pub count: CountMode,
    /// (model pattern, meter) — first match wins; the default meter otherwise.
    pub weights: Vec<(Glob, Meter)>,
    pub default_max_tokens: u64,
    pub rules: Vec<Rule>,
    /// `Some` exactly when `mode` is `Global`.
    pub global: Option<Global>,
}

/// Validated consumers, identity and quotas. Keys are kept only as SHA-256 digests.
#[derive(Debug, Clone)]
pub struct Policy {
    pub consumers: Vec<Consumer>,
    pub(crate) keys: HashMap<[u8; 32], usize>,
    pub(crate) names: HashMap<String, usize>,
    pub identity: Identity,
    pub quotas: Option<Quotas>,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

fn check_name(value: &str, path: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(err(path, "must not be empty"));
    }
    if value.len() > 128 {
        return Err(err(path, "must be at most 128 characters"));
    }
    if value.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(err(path, "must not contain spaces or control characters"));
    }
    Ok(())
}

fn globs(patterns: &[String], path: &str) -> Result<Vec<Glob>, ConfigError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| Glob::parse(p).map_err(|m| err(format!("{path}[{i}]"), m)))
        .collect()
}

fn opt_glob(p: &Option<String>, path: &str) -> Result<Option<Glob>, ConfigError> {
    p.as_deref()
        .map(|p| Glob::parse(p).map_err(|m| err(path, m)))
        .transpose()
}

/// Decodes 64 hex characters (either case) into a digest.
pub fn parse_sha256_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hi = (*chunk.first()? as char).to_digit(16)?;
        let lo = (*chunk.get(1)? as char).to_digit(16)?;
        *out.get_mut(i)? = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn weight(v: Option<f64>, default: f64, path: &str) -> Result<u64, ConfigError> {
    let w = v.unwrap_or(default);
    if !w.is_finite() || !(0.0..=1000.0).contains(&w) {
        return Err(err(path, "must be a number between 0 and 1000"));
    }
    // Thousandths: exact integer arithmetic from here on.
    Ok((w * 1000.0).round() as u64)
}

impl Policy {
    /// Validates the three optional sections. `providers` are the configured provider
    /// names (a rule's exact `provider` must be one of them). `Ok(None)` when all three
    /// are absent: the feature is off.
    pub fn build(
        consumers: Option<&ConsumersConfig>,
        identity: Option<&IdentityConfig>,
        quotas: Option<&QuotaConfig>,
        providers: &[&str],
    ) -> Result<Option<Policy>, ConfigError> {
        if consumers.is_none() && identity.is_none() && quotas.is_none() {
            return Ok(None);
        }
        let empty = ConsumersConfig::default();
        let raw_consumers = consumers.unwrap_or(&empty);
        let mut list = Vec::with_capacity(raw_consumers.0.len());
        let mut keys = HashMap::new();
        let mut names = HashMap::new();
        for (i, c) in raw_consumers.0.iter().enumerate() {
            let at = |f: &str| format!("consumers[{i}].{f}");
            check_name(&c.name, &at("name"))?;
            if c.name == ANONYMOUS {
                return Err(err(
                    at("name"),
                    "`anonymous` is reserved for unidentified callers (see identity.default_models)",
                ));
            }
            if names.insert(c.name.clone(), i).is_some() {
                return Err(err(at("name"), format!("duplicate consumer {:?}", c.name)));
            }
            if let Some(k) = &c.key_sha256 {
                let items = k.items();
                if items.is_empty() {
                    return Err(err(at("key_sha256"), "must not be an empty list"));
                }
                for (j, hex) in items {
                    let path = match j {
                        Some(j) => format!("consumers[{i}].key_sha256[{j}]"),
                        None => at("key_sha256"),
                    };
                    let digest = parse_sha256_hex(hex).ok_or_else(|| {
                        err(
                            path.clone(),
                            "must be 64 hex characters (the SHA-256 of the key, e.g. `printf %s \"$KEY\" | sha256sum`)",
                        )
                    })?;
                    if keys.insert(digest, i).is_some() {
                        return Err(err(path, "this key hash is already used by a consumer"));
                    }
                }
            }
            let models = match &c.models {
                Some(m) => globs(m, &at("models"))?,
                None => vec![Glob::Any],
            };
            list.push(Consumer {
                name: c.name.clone(),
                models,
            });
        }

        let default_identity = IdentityConfig::default();
        let id = identity.unwrap_or(&default_identity);
        let api_key = id.api_key.unwrap_or(!keys.is_empty());
        if id.api_key == Some(true) && keys.is_empty() {
            return Err(err(
                "identity.api_key",
                "no consumer has `key_sha256`, so no key could ever match",
            ));
        }
        if let Some(h) = &id.header {
            let ok = !h.is_empty()
                && h.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(err(
                    "identity.header",
                    "must be a lowercase HTTP header name",
                ));
            }
            if crate::api::CLIENT_CREDENTIAL_HEADERS.contains(&h.as_str()) {
                return Err(err(
                    "identity.header",
                    "must not be a credential header the client sends (use api_key instead)",
                ));
            }
        }
        if let Some(j) = &id.jwt {
            check_name(&j.payload_in_metadata, "identity.jwt.payload_in_metadata")?;
            check_name(&j.claim, "identity.jwt.claim")?;
        }
        let any_source = api_key || id.header.is_some() || id.jwt.is_some();
        let required = id.required.unwrap_or(any_source);
        if required && !any_source {
            return Err(err(
                "identity.required",
                "no identity source is enabled (api_key, header or jwt)",
            ));
        }
        let default_models = match &id.default_models {
            Some(m) => globs(m, "identity.default_models")?,
            None => vec![Glob::Any],
        };
        let identity = Identity {
            api_key,
            header: id.header.clone(),
            jwt: id.jwt.clone(),
            required,
            default_models,
        };

        let quotas = quotas.map(|q| build_quotas(q, providers)).transpose()?;
        Ok(Some(Policy {
            consumers: list,
            keys,
            names,
            identity,
            quotas,
        }))
    }

    pub fn consumer(&self, index: usize) -> Option<&Consumer> {
        self.consumers.get(index)
    }
}

fn build_quotas(q: &QuotaConfig, providers: &[&str]) -> Result<Quotas, ConfigError> {
    let global = match (q.mode, &q.global) {
        (QuotaMode::Global, Some(g)) => {
            check_name(&g.cluster, "quotas.global.cluster")?;
            let domain = g
                .domain
                .clone()
                .unwrap_or_else(|| DEFAULT_DOMAIN.to_string());
            check_name(&domain, "quotas.global.domain")?;
            let timeout_ms = g.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if timeout_ms == 0 || timeout_ms > 60_000 {
                return Err(err(
                    "quotas.global.timeout_ms",
                    "must be between 1 and 60000",
                ));
            }
            Some(Global {
                cluster: g.cluster.clone(),
                domain,
                timeout_ms,
                failure_mode: g.failure_mode,
            })
        }
        (QuotaMode::Global, None) => {
            return Err(err(
                "quotas.global",
                "required with mode \"global\" (at least {\"cluster\": …})",
            ))
        }
        (QuotaMode::Local, Some(_)) => {
            return Err(err(
                "quotas.global",
                "only allowed with \"mode\": \"global\"",
            ))
        }
        (QuotaMode::Local, None) => None,
    };
    let default_max_tokens = q.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if default_max_tokens == 0 {
        return Err(err("quotas.default_max_tokens", "must be greater than 0"));
    }
    let mut weights = Vec::with_capacity(q.weights.len());
    for (i, w) in q.weights.iter().enumerate() {
        let at = |f: &str| format!("quotas.weights[{i}].{f}");
        let g = Glob::parse(&w.pattern).map_err(|m| err(at("match"), m))?;
        let input = weight(w.input, 1.0, &at("input"))?;
        let output = weight(w.output, 1.0, &at("output"))?;
        let cached = weight(w.cached_input, input as f64 / 1000.0, &at("cached_input"))?;
        weights.push((g, Meter::weighted(input, output, cached)));
    }
    if !weights.is_empty() && q.count != CountMode::Weighted {
        return Err(err(
            "quotas.weights",
            "only used with \"count\": \"weighted\"",
        ));
    }
    if q.rules.is_empty() {
        return Err(err("quotas.rules", "at least one rule is required"));
    }
    let mut rules = Vec::with_capacity(q.rules.len());
    let mut names = HashSet::new();
    for (i, r) in q.rules.iter().enumerate() {
        let at = |f: &str| format!("quotas.rules[{i}].{f}");
        check_name(&r.name, &at("name"))?;
        if !names.insert(r.name.as_str()) {
            return Err(err(at("name"), format!("duplicate rule name {:?}", r.name)));
        }
        if r.limit == 0 {
            return Err(err(at("limit"), "must be greater than 0"));
        }
        let provider = opt_glob(&r.provider, &at("provider"))?;
        if let Some(Glob::Exact(p)) = &provider {
            if !providers.contains(&p.as_str()) {
                return Err(err(at("provider"), format!("unknown provider {p:?}")));
            }
        }
        let mut seen = HashSet::new();
        for (j, d) in r.group_by.iter().enumerate() {
            if !seen.insert(*d) {
                return Err(err(
                    format!("quotas.rules[{i}].group_by[{j}]"),
                    "duplicate dimension",
                ));
            }
        }
        if global.is_some() {
            if r.limit > u64::from(u32::MAX) {
                return Err(err(
                    at("limit"),
                    "must be at most 4294967295 in global mode (the rate limit protocol counts in uint32)",
                ));
            }
            if super::rls::unit_of(r.window).is_none() {
                return Err(err(
                    at("window"),
                    "global mode supports the windows second, minute, hour and day (the units of the rate limit protocol's limit override)",
                ));
            }
        }
        rules.push(Rule {
            name: r.name.clone(),
            consumer: opt_glob(&r.consumer, &at("consumer"))?,
            model: opt_glob(&r.model, &at("model"))?,
            provider,
            limit: r.limit,
            window: r.window,
            group_by: r.group_by.clone(),
        });
    }
    Ok(Quotas {
        mode: q.mode,
        count: q.count,
        weights,
        default_max_tokens,
        rules,
        global,
    })
}

/// The three sections as they appear in the plugin configuration, for tests and for
/// integrators that want to parse them on their own.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Sections {
    #[serde(default)]
    pub consumers: Option<ConsumersConfig>,
    #[serde(default)]
    pub identity: Option<IdentityConfig>,
    #[serde(default)]
    pub quotas: Option<QuotaConfig>,
}

impl Sections {
    /// Parses `{"consumers":…,"identity":…,"quotas":…}` with JSON paths in errors, then
    /// validates.
    pub fn parse(json: &[u8], providers: &[&str]) -> Result<Option<Policy>, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(json);
        let s: Sections = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            err(path, e.into_inner().to_string())
        })?;
        Policy::build(
            s.consumers.as_ref(),
            s.identity.as_ref(),
            s.quotas.as_ref(),
            providers,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const KEY_A: &str = "sk-team-a";
    // printf %s sk-team-a | sha256sum
    pub fn hash(key: &str) -> String {
        super::super::identity::sha256_hex(key.as_bytes())
    }

    fn parse(json: &str) -> Result<Option<Policy>, ConfigError> {
        Sections::parse(json.as_bytes(), &["openai", "demo"])
    }

    fn path_of(json: &str) -> String {
        let e = parse(json).unwrap_err();
        assert!(!e.message.is_empty());
        e.path
    }

    #[test]
    fn absent_sections_turn_the_feature_off() {
        assert!(parse("{}").unwrap().is_none());
    }

    #[test]
    fn full_config_with_defaults() {
        let json = format!(
            r#"{{
            "consumers": [
                {{"name": "team-a", "key_sha256": "{}", "models": ["gpt-4o*", "fast"]}},
                {{"name": "team-b", "key_sha256": ["{}", "{}"]}}
            ],
            "quotas": {{
                "rules": [
                    {{"name": "per-consumer-day", "limit": 1000000, "window": "day", "group_by": ["consumer"]}},
                    {{"name": "gpt4o-minute", "model": "gpt-4o*", "provider": "openai", "limit": 30000, "window": "minute"}},
                    {{"name": "burst", "consumer": "team-b", "limit": 5000, "window": "10s"}}
                ]
            }}
        }}"#,
            hash(KEY_A),
            hash("b1"),
            hash("b2").to_uppercase()
        );
        let p = parse(&json).unwrap().unwrap();
        assert_eq!(p.consumers.len(), 2);
        assert_eq!(p.keys.len(), 3);
        assert!(p.identity.api_key && p.identity.required);
        assert_eq!(p.identity.default_models, vec![Glob::Any]);
        assert_eq!(p.consumers[1].models, vec![Glob::Any]);
        let q = p.quotas.unwrap();
        assert_eq!(q.mode, QuotaMode::Local);
        assert_eq!(q.count, CountMode::Total);
        assert_eq!(q.default_max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(q.rules[2].window, Window::Seconds(10));
        assert_eq!(q.rules[0].group_by, vec![Dimension::Consumer]);
        assert!(q.global.is_none());
    }

    #[test]
    fn global_defaults() {
        let p = parse(
            r#"{"identity":{"header":"x-consumer"},"quotas":{"mode":"global","global":{"cluster":"rls"},
               "rules":[{"name":"r","limit":10,"window":"minute"}]}}"#,
        )
        .unwrap()
        .unwrap();
        let g = p.quotas.unwrap().global.unwrap();
        assert_eq!(g.domain, DEFAULT_DOMAIN);
        assert_eq!(g.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(g.failure_mode, FailureMode::Allow);
        assert!(!p.identity.api_key && p.identity.required);
    }

    #[test]
    fn errors_name_their_json_path() {
        let h = hash(KEY_A);
        let cases = vec![
            (r#"{"consumers":[{"name":"a"},{"name":"b"},{"name":"c","key_sha256":"abc"}]}"#.to_string(), "consumers[2].key_sha256"),
            (r#"{"consumers":[{"name":"c","key_sha256":["zz"]}]}"#.to_string(), "consumers[0].key_sha256[0]"),
            (format!(r#"{{"consumers":[{{"name":"a","key_sha256":"{h}"}},{{"name":"b","key_sha256":"{h}"}}]}}"#), "consumers[1].key_sha256"),
            (r#"{"consumers":[{"name":"a"},{"name":"a"}]}"#.to_string(), "consumers[1].name"),
            (r#"{"consumers":[{"name":"anonymous"}]}"#.to_string(), "consumers[0].name"),
            (r#"{"consumers":[{"name":"a b"}]}"#.to_string(), "consumers[0].name"),
            (r#"{"consumers":[{"name":"a","models":["g*x"]}]}"#.to_string(), "consumers[0].models[0]"),
            (r#"{"consumers":[{"name":"a","key":"sk-plain"}]}"#.to_string(), "consumers[0].key"),
            (r#"{"identity":{"api_key":true}}"#.to_string(), "identity.api_key"),
            (r#"{"identity":{"header":"Authorization"}}"#.to_string(), "identity.header"),
            (r#"{"identity":{"header":"x-api-key"}}"#.to_string(), "identity.header"),
            (r#"{"identity":{"required":true}}"#.to_string(), "identity.required"),
            (r#"{"identity":{"jwt":{"claim":"sub"}}}"#.to_string(), "identity.jwt"),
            (r#"{"identity":{"jwt":{"payload_in_metadata":"p","extra":1}}}"#.to_string(), "identity.jwt.extra"),
            (r#"{"quotas":{"rules":[]}}"#.to_string(), "quotas.rules"),
            (r#"{"quotas":{"rules":[{"name":"r","limit":0,"window":"day"}]}}"#.to_string(), "quotas.rules[0].limit"),
            (r#"{"quotas":{"rules":[{"name":"r","limit":1,"window":"week"}]}}"#.to_string(), "quotas.rules[0].window"),
            (r#"{"quotas":{"rules":[{"name":"r","limit":1,"window":"day"},{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.rules[1].name"),
            (r#"{"quotas":{"rules":[{"name":"r","limit":1,"window":"day","provider":"nope"}]}}"#.to_string(), "quotas.rules[0].provider"),
            (r#"{"quotas":{"rules":[{"name":"r","limit":1,"window":"day","group_by":["model","model"]}]}}"#.to_string(), "quotas.rules[0].group_by[1]"),
            (r#"{"quotas":{"rules":[{"name":"r","limit":1,"window":"day","group_by":["colour"]}]}}"#.to_string(), "quotas.rules[0].group_by[0]"),
            (r#"{"quotas":{"count":"all","rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.count"),
            (r#"{"quotas":{"weights":[{"match":"*","output":4}],"rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.weights"),
            (r#"{"quotas":{"count":"weighted","weights":[{"match":"*","output":-1}],"rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.weights[0].output"),
            (r#"{"quotas":{"default_max_tokens":0,"rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.default_max_tokens"),
            (r#"{"quotas":{"mode":"global","rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.global"),
            (r#"{"quotas":{"global":{"cluster":"c"},"rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.global"),
            (r#"{"quotas":{"mode":"global","global":{"cluster":"c","timeout_ms":0},"rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.global.timeout_ms"),
            (r#"{"quotas":{"mode":"global","global":{"cluster":"c","failure_mode":"maybe"},"rules":[{"name":"r","limit":1,"window":"day"}]}}"#.to_string(), "quotas.global.failure_mode"),
            (r#"{"quotas":{"mode":"global","global":{"cluster":"c"},"rules":[{"name":"r","limit":1,"window":"month"}]}}"#.to_string(), "quotas.rules[0].window"),
            (r#"{"quotas":{"mode":"global","global":{"cluster":"c"},"rules":[{"name":"r","limit":5000000000,"window":"day"}]}}"#.to_string(), "quotas.rules[0].limit"),
            (r#"{"quotas":{"rules":[{"name":"r","limit":1,"window":"day"}]},"extra":1}"#.to_string(), "extra"),
        ];
        for (json, path) in cases {
            assert_eq!(path_of(&json), path, "{json}");
        }
        let e =
            parse(r#"{"consumers":[{"name":"a"},{"name":"b"},{"name":"c","key_sha256":"abc"}]}"#)
                .unwrap_err();
        assert_eq!(
            e.to_string().split(':').next().unwrap(),
            "invalid llm-gateway configuration at `consumers[2].key_sha256`"
        );
        assert!(
            e.message.contains("must be 64 hex characters"),
            "{}",
            e.message
        );
    }

    #[test]
    fn globs() {
        assert_eq!(Glob::parse("*").unwrap(), Glob::Any);
        assert!(Glob::parse("gpt-4o*").unwrap().matches("gpt-4o-mini"));
        assert!(!Glob::parse("gpt-4o*").unwrap().matches("gpt-4"));
        assert!(Glob::parse("fast").unwrap().matches("fast"));
        assert!(!Glob::parse("fast").unwrap().matches("faster"));
        assert!(
            Glob::parse("").is_err() && Glob::parse("*x").is_err() && Glob::parse("a**").is_err()
        );
    }

    #[test]
    fn sha256_hex_parsing() {
        let h = hash("x");
        assert_eq!(parse_sha256_hex(&h).unwrap().len(), 32);
        assert_eq!(parse_sha256_hex(&h.to_uppercase()), parse_sha256_hex(&h));
        assert!(parse_sha256_hex(&h[..63]).is_none());
        assert!(parse_sha256_hex(&format!("{}g", &h[..63])).is_none());
        assert!(parse_sha256_hex(&"é".repeat(32)).is_none());
    }
}
