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
    if let Some(read) = fast::usage_member(body, fast::openai_usage) {
        return read.map(|u| u.to_usage());
    }
    let parsed: UsageOnly = serde_json::from_slice(body).ok()?;
    parsed.usage.map(|u| u.to_usage())
}

/// The OpenAI `usage` object at `b[i]`, read without serde as [`OpenAiUsage`] reads it,
/// and where it ends; `None` when serde must read it (see [`fast`]).
pub(crate) fn openai_usage_at(b: &[u8], i: usize) -> Option<(Usage, usize)> {
    let (u, end) = fast::openai_usage(b, i)?;
    Some((u.to_usage(), end))
}

/// [`openai_usage_at`] for the usage of a chat completion chunk as the stream translator
/// reads it (`wire::openai::ChatUsage`, the same counts without the Responses API
/// aliases, which it refuses).
pub(crate) fn chat_usage_at(text: &str, i: usize) -> Option<(Usage, usize)> {
    let kept = |_: &[u8], i| crate::fastjson::copy::dropped(text, i);
    let (u, end) = fast::usage_object(text.as_bytes(), i, false, &kept)?;
    Some((u.to_usage(), end))
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
    if let Some(read) = fast::usage_member(body, fast::anthropic_usage) {
        return read.map(|u| u.to_usage());
    }
    let parsed: AnthropicUsageOnly = serde_json::from_slice(body).ok()?;
    parsed.usage.map(|u| u.to_usage())
}

/// The usage of a whole answer read without serde: the top-level `usage` member found by
/// a validating walk that skips everything else (an answer's text is most of its bytes),
/// and its counts read as the serde types above would read them. Each reader answers
/// `None` for anything it does not read with certainty — an escaped key, a count that is
/// not a plain unsigned integer, a repeated member, an array where an object is expected —
/// and the caller hands the body to serde, so the result is always serde's.
mod fast {
    use super::{AnthropicUsage, CompletionDetails, OpenAiUsage, PromptDetails};
    use crate::fastjson::walk::{null, object, skip_member, unsigned_value, ws};

    /// `Some(usage)` when `body` is one JSON object, as serde reads it (a member `usage`
    /// at most once, read by `read`; `null` or absent is `None`).
    pub(super) fn usage_member<T>(
        body: &[u8],
        read: impl Fn(&[u8], usize) -> Option<(T, usize)>,
    ) -> Option<Option<T>> {
        let mut usage = None;
        let mut seen = false;
        let end = object(body, ws(body, 0), |key, i| {
            if key != b"usage" {
                utf8(key)?;
                return skip_member(body, i);
            }
            if std::mem::replace(&mut seen, true) {
                return None;
            }
            if let Some(end) = null(body, i) {
                return Some(end);
            }
            let (u, end) = read(body, i)?;
            usage = Some(u);
            Some(end)
        })?;
        (ws(body, end) == body.len()).then_some(usage)
    }

    /// OpenAI's `usage` object (`OpenAiUsage`; an alias and its name are one field).
    pub(super) fn openai_usage(b: &[u8], i: usize) -> Option<(OpenAiUsage, usize)> {
        usage_object(b, i, true, &skip_member)
    }

    /// [`openai_usage`], or without `aliases` the usage of a chat completion or chunk
    /// (`wire::openai::ChatUsage`, which has no aliases: an alias is refused, since
    /// there it would be an unknown member where `OpenAiUsage` reads a count). `skip`
    /// reads unknown members: as serde skips them for `OpenAiUsage`; as into a `Value`
    /// for `ChatUsage`, whose details too keep them in `rest` maps.
    pub(super) fn usage_object(
        b: &[u8],
        i: usize,
        aliases: bool,
        skip: &dyn Fn(&[u8], usize) -> Option<usize>,
    ) -> Option<(OpenAiUsage, usize)> {
        let mut u = OpenAiUsage::default();
        let mut seen = [false; 5];
        let end = object(b, i, |key, i| {
            let field = match key {
                b"prompt_tokens" => 0,
                b"completion_tokens" => 1,
                b"total_tokens" => 2,
                b"prompt_tokens_details" => 3,
                b"completion_tokens_details" => 4,
                b"input_tokens" if aliases => 0,
                b"output_tokens" if aliases => 1,
                b"input_tokens_details" if aliases => 3,
                b"output_tokens_details" if aliases => 4,
                b"input_tokens"
                | b"output_tokens"
                | b"input_tokens_details"
                | b"output_tokens_details" => return None,
                _ => {
                    utf8(key)?;
                    return skip(b, i);
                }
            };
            if std::mem::replace(seen.get_mut(field)?, true) {
                return None;
            }
            match field {
                0 => count(b, i, &mut u.prompt_tokens),
                1 => count(b, i, &mut u.completion_tokens),
                2 => count(b, i, &mut u.total_tokens),
                3 => {
                    let (d, end) = details(b, i, b"cached_tokens", skip)?;
                    u.prompt_tokens_details =
                        d.map(|cached_tokens| PromptDetails { cached_tokens });
                    Some(end)
                }
                _ => {
                    let (d, end) = details(b, i, b"reasoning_tokens", skip)?;
                    u.completion_tokens_details =
                        d.map(|reasoning_tokens| CompletionDetails { reasoning_tokens });
                    Some(end)
                }
            }
        })?;
        Some((u, end))
    }

    /// Anthropic's `usage` object (`AnthropicUsage`).
    pub(super) fn anthropic_usage(b: &[u8], i: usize) -> Option<(AnthropicUsage, usize)> {
        let mut u = AnthropicUsage::default();
        let mut seen = [false; 4];
        let end = object(b, i, |key, i| {
            let (field, slot) = match key {
                b"input_tokens" => (0, &mut u.input_tokens),
                b"output_tokens" => (1, &mut u.output_tokens),
                b"cache_read_input_tokens" => (2, &mut u.cache_read_input_tokens),
                b"cache_creation_input_tokens" => (3, &mut u.cache_creation_input_tokens),
                _ => {
                    utf8(key)?;
                    return skip_member(b, i);
                }
            };
            if std::mem::replace(seen.get_mut(field)?, true) {
                return None;
            }
            count(b, i, slot)
        })?;
        Some((u, end))
    }

    /// A count (`Option<u64>`): `null`, or an unsigned integer that fits.
    fn count(b: &[u8], i: usize, slot: &mut Option<u64>) -> Option<usize> {
        if let Some(end) = null(b, i) {
            *slot = None;
            return Some(end);
        }
        let (value, end) = unsigned_value(b, i, u64::MAX)?;
        *slot = Some(value);
        Some(end)
    }

    /// A details object holding one count named `name`: `None` for `null`.
    fn details(
        b: &[u8],
        i: usize,
        name: &[u8],
        skip: &dyn Fn(&[u8], usize) -> Option<usize>,
    ) -> Option<(Option<Option<u64>>, usize)> {
        if let Some(end) = null(b, i) {
            return Some((None, end));
        }
        let mut value = None;
        let mut seen = false;
        let end = object(b, i, |key, i| {
            if key != name {
                utf8(key)?;
                return skip(b, i);
            }
            if std::mem::replace(&mut seen, true) {
                return None;
            }
            count(b, i, &mut value)
        })?;
        Some((Some(value), end))
    }

    /// serde reads every key of a struct it deserializes as a `str`: it must be UTF-8.
    fn utf8(key: &[u8]) -> Option<()> {
        (key.is_ascii() || std::str::from_utf8(key).is_ok()).then_some(())
    }
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

    /// The old way, serde alone: what the fast readers must always agree with.
    fn openai_by_serde(body: &[u8]) -> Option<Usage> {
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let parsed: UsageOnly = serde_json::from_slice(body).ok()?;
        parsed.usage.map(|u| u.to_usage())
    }

    fn anthropic_by_serde(body: &[u8]) -> Option<Usage> {
        let parsed: AnthropicUsageOnly = serde_json::from_slice(body).ok()?;
        parsed.usage.map(|u| u.to_usage())
    }

    mod agreement {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;
        use proptest::strategy::ValueTree;

        fn count() -> impl Strategy<Value = &'static str> {
            prop_oneof![
                8 => select(vec!["0", "7", "1234", "null"]),
                1 => select(vec![
                    "18446744073709551615", "18446744073709551616", "-1", "-0", "1.0",
                    "1e2", "01", "\"5\"", "[]", "nul", "true",
                ]),
            ]
        }

        fn object(members: Vec<String>) -> String {
            format!("{{{}}}", members.join(","))
        }

        fn details(name: &'static str) -> impl Strategy<Value = String> {
            let member = prop_oneof![
                4 => count().prop_map(move |n| format!(r#""{name}":{n}"#)),
                2 => select(vec![r#""audio_tokens":0"#, r#""x":{"cached_tokens":9}"#]).prop_map(str::to_owned),
                1 => select(vec![r#""\u0063ached_tokens":3"#, r#""cach\u00e9":1"#]).prop_map(str::to_owned),
            ];
            prop_oneof![
                6 => prop::collection::vec(member, 0..3).prop_map(object),
                1 => select(vec!["null", "[3]", "5", "{}"]).prop_map(str::to_owned),
            ]
        }

        fn openai_usage() -> impl Strategy<Value = String> {
            let name = |n: &'static [&'static str]| select(n.to_vec());
            let member = prop_oneof![
                8 => (name(&["prompt_tokens", "input_tokens", "completion_tokens", "output_tokens", "total_tokens"]), count())
                    .prop_map(|(k, n)| format!(r#""{k}":{n}"#)),
                3 => (name(&["prompt_tokens_details", "input_tokens_details"]), details("cached_tokens"))
                    .prop_map(|(k, d)| format!(r#""{k}":{d}"#)),
                3 => (name(&["completion_tokens_details", "output_tokens_details"]), details("reasoning_tokens"))
                    .prop_map(|(k, d)| format!(r#""{k}":{d}"#)),
                2 => select(vec![
                    r#""cost":0.25"#, r#""x":[1,{"prompt_tokens":2}]"#, r#""\u0070rompt_tokens":3"#,
                    r#""é":1"#, r#""service_tier":"default""#,
                ]).prop_map(str::to_owned),
            ];
            prop_oneof![
                8 => prop::collection::vec(member, 0..6).prop_map(object),
                1 => select(vec!["null", "[1,2]", "\"u\"", "{}"]).prop_map(str::to_owned),
            ]
        }

        fn anthropic_usage() -> impl Strategy<Value = String> {
            let member = prop_oneof![
                8 => (select(vec!["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]), count())
                    .prop_map(|(k, n)| format!(r#""{k}":{n}"#)),
                2 => select(vec![
                    r#""cache_creation":{"ephemeral_5m_input_tokens":0}"#, r#""service_tier":"standard""#,
                    r#""\u0069nput_tokens":3"#, r#""server_tool_use":null"#,
                ]).prop_map(str::to_owned),
            ];
            prop_oneof![
                8 => prop::collection::vec(member, 0..5).prop_map(object),
                1 => select(vec!["null", "[1,2]", "{}"]).prop_map(str::to_owned),
            ]
        }

        /// An answer: the usage member (sometimes none, sometimes two) among others.
        fn answer(usage: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
            let other = prop_oneof![
                8 => select(vec![
                    r#""id":"chatcmpl-1""#,
                    r#""object":"chat.completion""#,
                    r#""created":1767225600"#,
                    r#""choices":[{"index":0,"message":{"role":"assistant","content":"\"usage\":{\"prompt_tokens\":9}"},"finish_reason":"stop"}]"#,
                    r#""content":[{"type":"text","text":"hi"}]"#,
                    r#""system_fingerprint":null"#,
                ]),
                1 => select(vec![r#""\u0075sage":{"prompt_tokens":5}"#, r#""bad":01"#]),
            ];
            // Mostly one usage member; sometimes none, sometimes two.
            let usages = (
                prop::collection::vec(usage, 2),
                select(vec![0, 1, 1, 1, 1, 1, 2]),
            )
                .prop_map(|(u, n)| {
                    u.into_iter()
                        .take(n)
                        .map(|u| format!(r#""usage":{u}"#))
                        .collect::<Vec<_>>()
                });
            (
                usages,
                prop::collection::vec(other, 0..4),
                any::<prop::sample::Index>(),
                select(vec!["", " ", "\n"]),
            )
                .prop_map(|(usages, others, at, pad)| {
                    let mut members: Vec<String> = others.into_iter().map(str::to_owned).collect();
                    for u in usages {
                        let at = at.index(members.len() + 1);
                        members.insert(at, u);
                    }
                    format!("{pad}{{{}}}{pad}", members.join(","))
                })
        }

        /// `body` with `junk` inserted at `cut`.
        fn spliced(body: &str, cut: prop::sample::Index, junk: &[u8]) -> Vec<u8> {
            let at = cut.index(body.len() + 1);
            let mut b = body.as_bytes().to_vec();
            b.splice(at..at, junk.iter().copied());
            b
        }

        fn junk() -> impl Strategy<Value = &'static [u8]> {
            select(vec![
                &b""[..],
                b"\"",
                b"}",
                b",",
                b"\\",
                b" ",
                b"\xff",
                b"\x01",
                b"0",
                b"-",
            ])
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            #[test]
            fn openai_usage_reads_as_serde_reads_it(body in answer(openai_usage()), cut in any::<prop::sample::Index>(), junk in junk()) {
                for b in [body.as_bytes().to_vec(), spliced(&body, cut, junk)] {
                    prop_assert_eq!(from_openai_json(&b), openai_by_serde(&b), "{}", String::from_utf8_lossy(&b));
                }
            }

            #[test]
            fn anthropic_usage_reads_as_serde_reads_it(body in answer(anthropic_usage()), cut in any::<prop::sample::Index>(), junk in junk()) {
                for b in [body.as_bytes().to_vec(), spliced(&body, cut, junk)] {
                    prop_assert_eq!(from_anthropic_json(&b), anthropic_by_serde(&b), "{}", String::from_utf8_lossy(&b));
                }
            }
        }

        /// The comparison above is only as good as what the fast readers accept: most
        /// generated answers, usage with details included.
        #[test]
        fn the_generated_answers_are_mostly_read_without_serde() {
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let (mut read, mut with_usage) = (0, 0);
            for _ in 0..1000 {
                let body = answer(openai_usage())
                    .new_tree(&mut runner)
                    .unwrap()
                    .current();
                if let Some(u) = fast::usage_member(body.as_bytes(), fast::openai_usage) {
                    read += 1;
                    with_usage += usize::from(u.is_some_and(|u| {
                        u.prompt_tokens_details.is_some() || u.completion_tokens_details.is_some()
                    }));
                }
            }
            assert!(
                read > 300 && with_usage > 50,
                "{read} read, {with_usage} with details"
            );
        }
    }

    #[test]
    fn missing_or_null_usage_and_garbage() {
        assert_eq!(from_openai_json(br#"{"id":"x"}"#), None);
        assert_eq!(from_openai_json(br#"{"usage":null}"#), None);
        assert_eq!(from_openai_json(b"not json"), None);
        assert_eq!(from_openai_json(b""), None);
    }
}
