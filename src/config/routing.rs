//! Model routing: the requested model name → provider and upstream model.
//!
//! Resolution order (first hit wins):
//! 1. an exact rule (`"gpt-4o-mini"`, or an alias such as `"fast"` with `upstream_model`);
//! 2. `provider/model` addressing, when the part before the first `/` names a provider
//!    (`"openai/gpt-4o"` → provider `openai`, upstream model `gpt-4o`);
//! 3. the longest matching prefix wildcard (`"gpt-4o*"`), earlier rule on a tie;
//! 4. the catch-all `"*"`.
//!
//! Rules pointing at an optional provider whose key is unset are dropped at load time,
//! so resolution falls through to the next rule.

use crate::config::ModelRule;

use crate::providers::config::Provider;
use std::borrow::Cow;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    provider: usize,
    upstream_model: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    exact: HashMap<String, Target>,
    /// (prefix, target), longest prefix first.
    prefixes: Vec<(String, Target)>,
    catch_all: Option<Target>,
    providers: HashMap<String, usize>,
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// Index into `Config::providers`.
    pub provider: usize,
    pub upstream_model: Cow<'a, str>,
}

impl RouteTable {
    pub fn build(rules: &[ModelRule], providers: &[Provider], skipped: &[String]) -> RouteTable {
        let index: HashMap<String, usize> = providers
            .iter()
            .enumerate()
            .filter(|(_, p)| !skipped.contains(&p.name))
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        let mut table = RouteTable {
            providers: index.clone(),
            ..RouteTable::default()
        };
        for rule in rules {
            let Some(&provider) = index.get(&rule.provider) else {
                continue; // optional provider without key
            };
            let target = Target {
                provider,
                upstream_model: rule.upstream_model.clone(),
            };
            if rule.pattern == "*" {
                table.catch_all.get_or_insert(target);
            } else if let Some(prefix) = rule.pattern.strip_suffix('*') {
                table.prefixes.push((prefix.to_string(), target));
            } else {
                table.exact.entry(rule.pattern.clone()).or_insert(target);
            }
        }
        // Stable sort keeps declaration order among prefixes of equal length.
        table.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        table
    }

    pub fn resolve<'a>(&'a self, model: &'a str) -> Option<Resolved<'a>> {
        let hit = |t: &'a Target| Resolved {
            provider: t.provider,
            upstream_model: Cow::Borrowed(t.upstream_model.as_deref().unwrap_or(model)),
        };
        if let Some(t) = self.exact.get(model) {
            return Some(hit(t));
        }
        if let Some((provider, rest)) = model.split_once('/') {
            if let Some(&p) = self.providers.get(provider) {
                if !rest.is_empty() {
                    return Some(Resolved {
                        provider: p,
                        upstream_model: Cow::Borrowed(rest),
                    });
                }
            }
        }
        if let Some((_, t)) = self
            .prefixes
            .iter()
            .find(|(p, _)| model.starts_with(p.as_str()))
        {
            return Some(hit(t));
        }
        self.catch_all.as_ref().map(hit)
    }

    /// Every model name a client can ask for by exact name (for model listings).
    pub fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn table(env_has_key: bool) -> Config {
        let json = r#"{
            "providers": [
                {"name":"openai","type":"openai","cluster":"openai","api_key_env":"K","optional":true},
                {"name":"groq","type":"openai","cluster":"groq","path_prefix":"/openai/v1"},
                {"name":"demo","type":"openai","cluster":"demo"}
            ],
            "models": [
                {"match":"fast","provider":"openai","upstream_model":"gpt-4o-mini"},
                {"match":"gpt-4o*","provider":"openai"},
                {"match":"gpt-4o-mini-tts*","provider":"groq"},
                {"match":"gpt*","provider":"demo"},
                {"match":"llama-3.1-8b","provider":"groq"},
                {"match":"*","provider":"demo"}
            ]
        }"#;
        let env = move |k: &str| (env_has_key && k == "K").then(|| "sk-x".to_string());
        Config::parse(json.as_bytes(), &env).unwrap()
    }

    fn resolve(c: &Config, model: &str) -> Option<(String, String)> {
        c.routes.resolve(model).map(|r| {
            (
                c.providers[r.provider].name.clone(),
                r.upstream_model.into_owned(),
            )
        })
    }

    fn pair(p: &str, m: &str) -> Option<(String, String)> {
        Some((p.to_string(), m.to_string()))
    }

    #[test]
    fn every_rule_form() {
        let c = table(true);
        assert_eq!(resolve(&c, "fast"), pair("openai", "gpt-4o-mini"));
        assert_eq!(resolve(&c, "gpt-4o"), pair("openai", "gpt-4o"));
        assert_eq!(
            resolve(&c, "gpt-4o-mini-tts-1"),
            pair("groq", "gpt-4o-mini-tts-1")
        );
        assert_eq!(resolve(&c, "gpt-3.5-turbo"), pair("demo", "gpt-3.5-turbo"));
        assert_eq!(resolve(&c, "llama-3.1-8b"), pair("groq", "llama-3.1-8b"));
        assert_eq!(
            resolve(&c, "groq/llama-3.3-70b"),
            pair("groq", "llama-3.3-70b")
        );
        assert_eq!(resolve(&c, "openai/o3"), pair("openai", "o3"));
        assert_eq!(
            resolve(&c, "meta-llama/Llama-3-8B"),
            pair("demo", "meta-llama/Llama-3-8B")
        );
        assert_eq!(resolve(&c, "anything"), pair("demo", "anything"));
    }

    #[test]
    fn optional_provider_without_key_falls_through() {
        let c = table(false);
        assert_eq!(resolve(&c, "fast"), pair("demo", "fast"));
        assert_eq!(resolve(&c, "gpt-4o"), pair("demo", "gpt-4o"));
        assert_eq!(resolve(&c, "openai/o3"), pair("demo", "openai/o3"));
    }

    #[test]
    fn no_catch_all_means_unknown() {
        let json = r#"{"providers":[{"name":"a","type":"openai","cluster":"a"}],
            "models":[{"match":"m1","provider":"a"}]}"#;
        let c = Config::parse(json.as_bytes(), &|_| None).unwrap();
        assert_eq!(resolve(&c, "m1"), pair("a", "m1"));
        assert_eq!(resolve(&c, "m2"), None);
        assert_eq!(resolve(&c, "a/"), None);
        assert_eq!(resolve(&c, ""), None);
    }
}
