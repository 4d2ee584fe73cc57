//! Token usage: one provider-neutral record, and extraction from OpenAI-format payloads.

use serde::Deserialize;

/// Token usage of one request, provider-neutral.
///
/// `input` counts every prompt token (cached ones included, as OpenAI reports it);
/// `cached_input` and `cache_creation_input` are the parts of `input` read from or
/// written to the provider's prompt cache. `reasoning` is the part of `output` spent on
/// hidden reasoning. `estimated` is true when the provider did not report usage and the
/// numbers come from the gateway's estimator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_creation_input: u64,
    pub reasoning: u64,
    pub estimated: bool,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}

/// OpenAI `usage` object (chat/completions/embeddings/responses share these names).
#[derive(Debug, Default, Deserialize)]
pub struct OpenAiUsage {
    #[serde(default, alias = "input_tokens")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default, alias = "input_tokens_details")]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, alias = "output_tokens_details")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl OpenAiUsage {
    pub fn to_usage(&self) -> Usage {
        let input = self.prompt_tokens.unwrap_or(0);
        let output = self.completion_tokens.unwrap_or_else(|| {
            // Embeddings report only prompt and total tokens.
            self.total_tokens.unwrap_or(0).saturating_sub(input)
        });
        Usage {
            input,
            output,
            cached_input: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_creation_input: 0,
            reasoning: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            estimated: false,
        }
    }
}

/// Only the `usage` member of a response body; every other member is skipped
/// without being built into a value.
#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

/// Extracts usage from an OpenAI-format JSON body (chat.completion, text_completion,
/// embedding list, response, or a streamed chunk). `None` when the body is not JSON or
/// carries no usage.
pub fn from_openai_json(body: &[u8]) -> Option<Usage> {
    // serde would map a JSON array onto the struct's fields: only objects carry usage.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    let parsed: UsageOnly = serde_json::from_slice(body).ok()?;
    parsed.usage.map(|u| u.to_usage())
}

/// Anthropic `usage` object (messages, `message_start`, `message_delta`).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Folds a later report (e.g. `message_delta`) into this one: present fields win.
    pub fn merge(&mut self, later: &AnthropicUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
    }

    /// Provider-neutral usage. Anthropic's `input_tokens` excludes cache reads and
    /// writes; `Usage::input` counts all prompt tokens, as OpenAI does.
    pub fn to_usage(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(written),
            output: self.output_tokens.unwrap_or(0),
            cached_input: read,
            cache_creation_input: written,
            reasoning: 0,
            estimated: false,
        }
    }
}

#[derive(Deserialize)]
struct AnthropicUsageOnly {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

/// Extracts usage from an Anthropic `message` JSON body.
pub fn from_anthropic_json(body: &[u8]) -> Option<Usage> {
    let parsed: AnthropicUsageOnly = serde_json::from_slice(body).ok()?;
    parsed.usage.map(|u| u.to_usage())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_found_only_as_a_top_level_member() {
        let u = |b: &str| from_openai_json(b.as_bytes());
        let inner = r#"{"choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":9}","usage":{"prompt_tokens":8}}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        assert_eq!(u(inner).map(|x| (x.input, x.output)), Some((3, 4)));
        assert_eq!(
            u(r#"{"\u0075sage":{"prompt_tokens":5,"completion_tokens":1}}"#).map(|x| x.input),
            Some(5)
        );
        assert_eq!(u(r#"{"usage":null}"#), None);
        assert_eq!(
            u(r#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#),
            None
        );
        assert_eq!(u(r#"{"usage":{"prompt_tokens":1}"#), None, "truncated body");
        assert_eq!(
            u(r#" [{"usage":{"prompt_tokens":1}}]"#),
            None,
            "not an object"
        );
    }

    #[test]
    fn chat_completion_usage_with_details() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],
            "usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,
            "prompt_tokens_details":{"cached_tokens":4},
            "completion_tokens_details":{"reasoning_tokens":10}}}"#;
        let u = from_openai_json(body).unwrap();
        assert_eq!(
            u,
            Usage {
                input: 12,
                output: 30,
                cached_input: 4,
                cache_creation_input: 0,
                reasoning: 10,
                estimated: false
            }
        );
        assert_eq!(u.total(), 42);
    }

    #[test]
    fn embeddings_usage_has_no_completion_tokens() {
        let body = br#"{"object":"list","data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        let u = from_openai_json(body).unwrap();
        assert_eq!((u.input, u.output), (8, 0));
    }

    #[test]
    fn responses_api_names() {
        let body = br#"{"usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12,
            "input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":2}}}"#;
        let u = from_openai_json(body).unwrap();
        assert_eq!(
            (u.input, u.output, u.cached_input, u.reasoning),
            (5, 7, 1, 2)
        );
    }

    #[test]
    fn anthropic_usage_counts_cache_as_input() {
        let body =
            br#"{"id":"msg_1","type":"message","usage":{"input_tokens":10,"output_tokens":20,
            "cache_read_input_tokens":100,"cache_creation_input_tokens":5}}"#;
        let u = from_anthropic_json(body).unwrap();
        assert_eq!(
            (u.input, u.output, u.cached_input, u.cache_creation_input),
            (115, 20, 100, 5)
        );
        let mut start = AnthropicUsage {
            input_tokens: Some(10),
            output_tokens: Some(1),
            ..AnthropicUsage::default()
        };
        start.merge(&AnthropicUsage {
            output_tokens: Some(42),
            ..AnthropicUsage::default()
        });
        assert_eq!((start.to_usage().input, start.to_usage().output), (10, 42));
    }

    #[test]
    fn missing_or_null_usage_and_garbage() {
        assert_eq!(from_openai_json(br#"{"id":"x"}"#), None);
        assert_eq!(from_openai_json(br#"{"usage":null}"#), None);
        assert_eq!(from_openai_json(b"not json"), None);
        assert_eq!(from_openai_json(b""), None);
    }
}
