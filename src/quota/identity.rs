//! Who is calling: virtual API keys (stored only as SHA-256), a trusted header, or a claim
//! of the JWT that Envoy's `jwt_authn` filter verified; and which models they may use.

use super::config::{Glob, Policy, ANONYMOUS};
use super::errors;
use super::proto::{ProtoError, Reader, Value};
use crate::api::errors::GatewayError;
use sha2::{Digest, Sha256};

/// Longest consumer name accepted from a header or a JWT claim.
pub const MAX_NAME_LEN: usize = 256;
/// The `jwt_authn` filter's name in dynamic metadata.
pub const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";

/// How the caller was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    ApiKey,
    Header,
    Jwt,
    Anonymous,
}

/// An identified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Consumer name: the configured name, the header value or claim, or `anonymous`.
    pub name: String,
    /// Index in `Policy::consumers` when the caller is a configured consumer.
    pub consumer: Option<usize>,
    pub source: Source,
}

impl Caller {
    /// Whether the name comes from configuration (bounded) rather than from a header or a
    /// token (unbounded: not used as a metric label).
    pub fn is_listed(&self) -> bool {
        self.consumer.is_some() || self.source == Source::Anonymous
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The client's virtual API key: `authorization: Bearer <key>` (OpenAI SDKs, and the
/// Anthropic SDK with an auth token), else `x-api-key` (Anthropic SDK), else `api-key`
/// (Azure-style clients).
pub fn presented_key(header: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(auth) = header("authorization") {
        let auth = auth.trim();
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() {
            return Some(rest.trim().to_string());
        }
    }
    for name in ["x-api-key", "api-key"] {
        if let Some(v) = header(name) {
            let v = v.trim();
            if !v.is_empty() {
                return Some(v.to_string());
            }
        }
    }
    None
}

fn valid_name(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_NAME_LEN && !v.chars().any(|c| c.is_control())
}

impl Policy {
    /// The `get_property` path of the JWT payload (`None` unless `identity.jwt` is set):
    /// `["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", <payload_in_metadata>]`.
    pub fn jwt_payload_path(&self) -> Option<[&str; 4]> {
        self.identity.jwt.as_ref().map(|j| {
            [
                "metadata",
                "filter_metadata",
                JWT_AUTHN_FILTER,
                j.payload_in_metadata.as_str(),
            ]
        })
    }

    fn by_name(&self, name: String, source: Source) -> Caller {
        Caller {
            consumer: self.names.get(&name).copied(),
            name,
            source,
        }
    }

    /// Identifies the caller from the request headers and, when `identity.jwt` is set, the
    /// bytes `get_property(jwt_payload_path())` returned (`None` when absent).
    ///
    /// Order: the JWT claim (when the payload is present), the trusted header (when
    /// present), then the API key. A presented key that matches no consumer is refused
    /// (401) rather than treated as anonymous. No identity → 401 when `required`, else the
    /// `anonymous` caller.
    pub fn identify(
        &self,
        header: &dyn Fn(&str) -> Option<String>,
        jwt_payload: Option<&[u8]>,
    ) -> Result<Caller, GatewayError> {
        if let (Some(jwt), Some(payload)) = (&self.identity.jwt, jwt_payload) {
            return match claim_from_property(payload, &jwt.claim) {
                Ok(Some(name)) if valid_name(&name) => Ok(self.by_name(name, Source::Jwt)),
                _ => Err(errors::invalid_identity(&format!(
                    "the verified token has no usable string claim `{}`",
                    jwt.claim
                ))),
            };
        }
        if let Some(h) = &self.identity.header {
            if let Some(v) = header(h) {
                let v = v.trim().to_string();
                if !valid_name(&v) {
                    return Err(errors::invalid_identity("the consumer header is malformed"));
                }
                return Ok(self.by_name(v, Source::Header));
            }
        }
        if self.identity.api_key {
            if let Some(key) = presented_key(header) {
                return match self.keys.get(&sha256(key.as_bytes())) {
                    Some(&i) => Ok(Caller {
                        name: self
                            .consumers
                            .get(i)
                            .map(|c| c.name.clone())
                            .unwrap_or_default(),
                        consumer: Some(i),
                        source: Source::ApiKey,
                    }),
                    None => Err(errors::invalid_api_key()),
                };
            }
        }
        if self.identity.required {
            return Err(errors::missing_api_key());
        }
        Ok(Caller {
            name: ANONYMOUS.to_string(),
            consumer: None,
            source: Source::Anonymous,
        })
    }

    /// The model patterns that apply to `caller`.
    pub fn models_of(&self, caller: &Caller) -> &[Glob] {
        caller
            .consumer
            .and_then(|i| self.consumers.get(i))
            .map(|c| c.models.as_slice())
            .unwrap_or(&self.identity.default_models)
    }

    /// Model access: allowed when a pattern matches the requested model, the upstream
    /// model, or `provider/upstream`. Otherwise 403 `model_not_allowed`.
    pub fn check_model(
        &self,
        caller: &Caller,
        requested: &str,
        upstream: &str,
        provider: &str,
    ) -> Result<(), GatewayError> {
        let qualified = format!("{provider}/{upstream}");
        let ok = self
            .models_of(caller)
            .iter()
            .any(|g| g.matches(requested) || g.matches(upstream) || g.matches(&qualified));
        if ok {
            Ok(())
        } else {
            Err(errors::model_not_allowed(&caller.name, requested))
        }
    }
}

// ---------------------------------------------------------------------------- JWT claim

/// Reads a top-level string claim from what `get_property` returns for the JWT payload.
///
/// Envoy serialises a map-valued property in one of two ways depending on its version:
/// current releases as proxy-wasm *pairs* (`u32` count, `u32` key/value lengths, then
/// NUL-terminated keys and values; a string value is its raw bytes), older ones as a
/// protobuf `google.protobuf.Struct`. Both are accepted: a pairs encoding must account for
/// every byte exactly, which a `Struct` encoding never does (its first four bytes read as
/// a count of at least 655 360 entries).
///
/// `Ok(None)`: the claim is absent or not a string. `Err`: the bytes are neither format.
pub fn claim_from_property(bytes: &[u8], claim: &str) -> Result<Option<String>, ProtoError> {
    if let Some(pairs) = decode_pairs(bytes) {
        return Ok(pairs
            .into_iter()
            .rev()
            .find(|(k, _)| *k == claim.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok().map(str::to_string)));
    }
    claim_from_struct(bytes, claim)
}

/// Decodes the proxy-wasm pairs format strictly; `None` unless every byte is accounted for.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let u32_at = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]) as usize)
    };
    let n = u32_at(0)?;
    let header_end = n.checked_mul(8)?.checked_add(4)?;
    if header_end > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    let mut pos = header_end;
    for i in 0..n {
        let klen = u32_at(4 + i * 8)?;
        let vlen = u32_at(8 + i * 8)?;
        let key = bytes.get(pos..pos.checked_add(klen)?)?;
        pos += klen;
        if bytes.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        let value = bytes.get(pos..pos.checked_add(vlen)?)?;
        pos += vlen;
        if bytes.get(pos) != Some(&0) {
            return None;
        }
        pos += 1;
        out.push((key, value));
    }
    (pos == bytes.len()).then_some(out)
}

/// Reads a top-level string field of a serialised `google.protobuf.Struct`:
/// `Struct { map<string, Value> fields = 1; }` (map entries: `key = 1`, `value = 2`),
/// `Value { oneof kind { null_value = 1; number_value = 2; string_value = 3;
/// bool_value = 4; struct_value = 5; list_value = 6; } }`. The last entry wins, as in
/// protobuf map semantics.
pub fn claim_from_struct(bytes: &[u8], claim: &str) -> Result<Option<String>, ProtoError> {
    let mut found = None;
    let mut fields = Reader::new(bytes);
    while let Some((field, value)) = fields.next()? {
        if field != 1 {
            continue;
        }
        let mut entry = Reader::new(value.as_bytes()?);
        let mut key = None;
        let mut val: Option<Value> = None;
        while let Some((f, v)) = entry.next()? {
            match f {
                1 => key = Some(v.as_str()?.to_string()),
                2 => val = Some(v),
                _ => {}
            }
        }
        if key.as_deref() != Some(claim) {
            continue;
        }
        found = None;
        if let Some(v) = val {
            let mut kind = Reader::new(v.as_bytes()?);
            while let Some((f, k)) = kind.next()? {
                found = if f == 3 {
                    Some(k.as_str()?.to_string())
                } else {
                    None
                };
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::config::Sections;
    use std::collections::HashMap;

    fn headers(list: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    fn policy(extra: &str) -> Policy {
        let json = format!(
            r#"{{"consumers":[
                {{"name":"team-a","key_sha256":"{}","models":["gpt-4o*","fast"]}},
                {{"name":"team-b","key_sha256":["{}","{}"]}},
                {{"name":"alice","models":["gpt-4o-mini"]}}
            ]{extra}}}"#,
            sha256_hex(b"sk-a"),
            sha256_hex(b"sk-b-old"),
            sha256_hex(b"sk-b-new"),
        );
        Sections::parse(json.as_bytes(), &["openai"])
            .unwrap()
            .unwrap()
    }

    fn code(e: GatewayError) -> (u32, &'static str) {
        (e.status, e.code)
    }

    #[test]
    fn sha256_fips_180_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha256_hex(&vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn api_key_from_bearer_x_api_key_or_api_key() {
        let p = policy("");
        for h in [
            vec![("authorization", "Bearer sk-a")],
            vec![("authorization", "bearer   sk-a ")],
            vec![("x-api-key", "sk-a")],
            vec![("api-key", "sk-a")],
            // A non-bearer authorization falls through to x-api-key.
            vec![("authorization", "Basic Zm9v"), ("x-api-key", "sk-a")],
        ] {
            let c = p.identify(&headers(&h), None).unwrap();
            assert_eq!(
                (c.name.as_str(), c.consumer, c.source),
                ("team-a", Some(0), Source::ApiKey),
                "{h:?}"
            );
        }
        // Either of two rotated keys.
        for k in ["sk-b-old", "sk-b-new"] {
            let c = p.identify(&headers(&[("x-api-key", k)]), None).unwrap();
            assert_eq!(c.name, "team-b");
        }
    }

    #[test]
    fn wrong_or_missing_key_is_401_without_echo() {
        let p = policy("");
        let e = p
            .identify(
                &headers(&[("authorization", "Bearer sk-wrong-secret")]),
                None,
            )
            .unwrap_err();
        assert_eq!(code(e.clone()), (401, "invalid_api_key"));
        assert!(!String::from_utf8(e.body())
            .unwrap()
            .contains("sk-wrong-secret"));
        for h in [
            vec![],
            vec![("authorization", "Bearer ")],
            vec![("x-api-key", " ")],
        ] {
            let e = p.identify(&headers(&h), None).unwrap_err();
            assert_eq!(code(e), (401, "invalid_api_key"), "{h:?}");
        }
    }

    #[test]
    fn anonymous_when_not_required() {
        let p = policy(r#","identity":{"required":false,"default_models":["gpt-4o-mini"]}"#);
        let c = p.identify(&headers(&[]), None).unwrap();
        assert_eq!(
            (c.name.as_str(), c.source),
            ("anonymous", Source::Anonymous)
        );
        assert!(p
            .check_model(&c, "gpt-4o-mini", "gpt-4o-mini", "openai")
            .is_ok());
        assert_eq!(
            code(p.check_model(&c, "gpt-4o", "gpt-4o", "openai").unwrap_err()),
            (403, "model_not_allowed")
        );
        // A wrong key is still refused.
        assert!(p
            .identify(&headers(&[("x-api-key", "nope")]), None)
            .is_err());
    }

    #[test]
    fn trusted_header_is_opt_in() {
        let p = policy("");
        let c = p
            .identify(
                &headers(&[("x-consumer", "alice"), ("x-api-key", "sk-a")]),
                None,
            )
            .unwrap();
        assert_eq!(c.name, "team-a", "the header is ignored unless configured");

        let p = policy(r#","identity":{"header":"x-consumer","api_key":true}"#);
        let c = p
            .identify(
                &headers(&[("x-consumer", "alice"), ("x-api-key", "sk-a")]),
                None,
            )
            .unwrap();
        assert_eq!(
            (c.name.as_str(), c.consumer, c.source),
            ("alice", Some(2), Source::Header)
        );
        let c = p
            .identify(&headers(&[("x-consumer", "bob")]), None)
            .unwrap();
        assert_eq!((c.consumer, c.is_listed()), (None, false));
        let c = p
            .identify(&headers(&[("x-api-key", "sk-a")]), None)
            .unwrap();
        assert_eq!(c.name, "team-a");
        assert_eq!(
            code(
                p.identify(&headers(&[("x-consumer", "a\u{7}b")]), None)
                    .unwrap_err()
            ),
            (401, "invalid_api_key")
        );
    }

    #[test]
    fn model_access_globs() {
        let p = policy("");
        let a = p
            .identify(&headers(&[("x-api-key", "sk-a")]), None)
            .unwrap();
        assert!(p
            .check_model(&a, "gpt-4o-mini", "gpt-4o-mini", "openai")
            .is_ok());
        assert!(p
            .check_model(&a, "fast", "llama-3.1-8b-instant", "groq")
            .is_ok());
        assert!(p
            .check_model(&a, "openai/gpt-4o", "gpt-4o", "openai")
            .is_ok());
        let e = p.check_model(&a, "o3", "o3", "openai").unwrap_err();
        assert_eq!(code(e.clone()), (403, "model_not_allowed"));
        assert_eq!(e.param.as_deref(), Some("model"));
        let b = p
            .identify(&headers(&[("x-api-key", "sk-b-new")]), None)
            .unwrap();
        assert!(p.check_model(&b, "anything", "anything", "x").is_ok());
    }

    // ---- hand-encoded google.protobuf.Struct

    fn len_field(field: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2];
        crate::quota::proto::put_varint(&mut v, body.len() as u64);
        v.extend_from_slice(body);
        v
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        let mut e = len_field(1, key.as_bytes());
        e.extend(len_field(2, value));
        len_field(1, &e)
    }

    #[test]
    fn struct_decoder_extracts_a_top_level_string_claim() {
        // {"iss": "https://idp", "exp": 1.7e9, "sub": "alice", "admin": true,
        //  "nested": {"sub": "mallory"}}
        let mut s = Vec::new();
        s.extend(entry("iss", &len_field(3, b"https://idp")));
        let mut num = vec![0x11]; // number_value = 2, fixed64
        num.extend_from_slice(&1.7e9f64.to_le_bytes());
        s.extend(entry("exp", &num));
        s.extend(entry("sub", &len_field(3, b"alice")));
        s.extend(entry("admin", &[0x20, 0x01])); // bool_value = 4
        let inner = entry("sub", &len_field(3, b"mallory"));
        s.extend(entry("nested", &len_field(5, &inner)));
        assert_eq!(
            claim_from_struct(&s, "sub").unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(
            claim_from_property(&s, "sub").unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(
            claim_from_struct(&s, "iss").unwrap().as_deref(),
            Some("https://idp")
        );
        assert_eq!(claim_from_struct(&s, "exp").unwrap(), None, "not a string");
        assert_eq!(claim_from_struct(&s, "admin").unwrap(), None);
        assert_eq!(claim_from_struct(&s, "email").unwrap(), None);
        assert_eq!(claim_from_struct(&[], "sub").unwrap(), None);
        // Exact bytes of a one-entry Struct {"sub": "al"}.
        let exact = [
            0x0a, 0x0b, 0x0a, 0x03, b's', b'u', b'b', 0x12, 0x04, 0x1a, 0x02, b'a', b'l',
        ];
        assert_eq!(entry("sub", &len_field(3, b"al")), exact);
        assert_eq!(
            claim_from_struct(&exact, "sub").unwrap().as_deref(),
            Some("al")
        );
        // Truncated / malformed input is an error, never a panic.
        for cut in 1..exact.len() {
            let _ = claim_from_property(&exact[..cut], "sub");
        }
        assert!(claim_from_struct(&exact[..5], "sub").is_err());
        assert!(claim_from_struct(&[0x0a, 0x02, 0x0a, 0x05], "sub").is_err());
    }

    fn pairs(list: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = (list.len() as u32).to_le_bytes().to_vec();
        for (k, v) in list {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in list {
            out.extend_from_slice(k.as_bytes());
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn pairs_format_of_current_envoy() {
        let b = pairs(&[("iss", b"https://idp"), ("sub", b"alice")]);
        assert_eq!(
            claim_from_property(&b, "sub").unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(claim_from_property(&b, "aud").unwrap(), None);
        assert_eq!(claim_from_property(&pairs(&[]), "sub").unwrap(), None);
        // Not exactly consumed → not pairs → parsed as a Struct (and failing).
        let mut extra = b.clone();
        extra.push(7);
        assert!(decode_pairs(&extra).is_none());
        assert!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn jwt_identity() {
        let p =
            policy(r#","identity":{"jwt":{"payload_in_metadata":"jwt_payload"},"api_key":true}"#);
        assert_eq!(
            p.jwt_payload_path().unwrap(),
            [
                "metadata",
                "filter_metadata",
                "envoy.filters.http.jwt_authn",
                "jwt_payload"
            ]
        );
        let payload = entry("sub", &len_field(3, b"alice"));
        // The bearer token is the JWT itself here: with a payload the key is not consulted.
        let h = headers(&[("authorization", "Bearer eyJhbGciOi...")]);
        let c = p.identify(&h, Some(&payload)).unwrap();
        assert_eq!(
            (c.name.as_str(), c.consumer, c.source),
            ("alice", Some(2), Source::Jwt)
        );
        let c = p.identify(&h, Some(&pairs(&[("sub", b"zed")]))).unwrap();
        assert_eq!((c.name.as_str(), c.consumer), ("zed", None));
        // Payload without the claim → 401; no payload → the next sources.
        let e = p
            .identify(&h, Some(&entry("iss", &len_field(3, b"x"))))
            .unwrap_err();
        assert_eq!(code(e), (401, "invalid_api_key"));
        assert_eq!(
            code(p.identify(&h, None).unwrap_err()),
            (401, "invalid_api_key")
        );
        let c = p
            .identify(&headers(&[("x-api-key", "sk-a")]), None)
            .unwrap();
        assert_eq!(c.name, "team-a");
        assert!(policy("").jwt_payload_path().is_none());
    }
}
