//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) request signing, host-free.
//!
//! The gateway signs the final, translated request (method, path, query, the headers
//! listed here and the exact body bytes) and adds the returned headers to it. Each step
//! is a public function so tests and mock servers can check it on its own:
//! [`canonical_request`] -> [`string_to_sign`] -> [`signing_key`] -> [`signature`] ->
//! [`authorization`]; [`sign`] does all of them.
//!
//! # Paths
//!
//! `path` is the path **as sent on the wire**, i.e. already URI-encoded once (a Bedrock
//! model id `anthropic.claude-3-5-sonnet-20240620-v1:0` is sent as
//! `/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse`, see
//! [`encode_path_segment`]). The canonical URI encodes every segment of it once more
//! (`...-v1%253A0...`): AWS: "Each path segment must be URI-encoded twice (except for
//! Amazon S3 which only gets URI-encoded once)". The path is also normalised (empty,
//! `.` and `..` segments removed), as for every service but S3. This signer is not
//! meant for S3.
//!
//! # Query
//!
//! Parameters are percent-decoded, then encoded with the SigV4 rules (everything but
//! `A-Z a-z 0-9 - _ . ~`), and sorted by name, then value. A pre-encoded query and
//! its raw form therefore sign alike.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name of SigV4 with HMAC-SHA256.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Hex SHA-256 of the empty string (the payload hash of a request without a body).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// AWS credentials. `Debug` never prints the secret key or the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Session token of temporary credentials (STS); sent and signed as
    /// `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Headers to add to the request after signing, lowercase names:
/// `authorization`, `x-amz-date`, and when applicable `x-amz-security-token` and
/// `x-amz-content-sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub headers: Vec<(String, String)>,
}

impl SignedHeaders {
    /// The value of one of the returned headers (name in lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Options of [`sign_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignOptions {
    /// Send (and sign) `x-amz-content-sha256` with the payload hash. Required by S3,
    /// not by Bedrock.
    pub content_sha256_header: bool,
    /// Sign `x-amz-security-token` (when there is a session token). Bedrock, like most
    /// services, wants it signed; a few services want it added after signing.
    pub sign_session_token: bool,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            content_sha256_header: false,
            sign_session_token: true,
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(nibble(b >> 4));
        s.push(nibble(b & 0x0f));
    }
    s
}

/// The lowercase hex digit of a value below 16.
fn nibble(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0f), 16).unwrap_or('0')
}

/// Lowercase hex SHA-256 of `bytes` (the payload hash).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// SigV4 URI encoding: every byte but the unreserved characters `A-Z a-z 0-9 - _ . ~`
/// as `%XX` (uppercase hex); `/` is kept when `encode_slash` is false.
pub fn uri_encode(s: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else if b == b'/' && !encode_slash {
            out.push('/');
        } else {
            out.push('%');
            out.push(nibble(b >> 4).to_ascii_uppercase());
            out.push(nibble(b & 0x0f).to_ascii_uppercase());
        }
    }
    out
}

/// One path segment (e.g. a Bedrock model id or ARN) encoded for the wire path:
/// `anthropic.claude-3-5-sonnet-20240620-v1:0` -> `anthropic.claude-3-5-sonnet-20240620-v1%3A0`,
/// `/` -> `%2F`.
pub fn encode_path_segment(segment: &str) -> String {
    uri_encode(segment.as_bytes(), true)
}

/// Percent-decodes `s` (an invalid `%` sequence is kept as is; `+` stays `+`).
fn percent_decode(s: &str) -> Vec<u8> {
    fn val(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(val),
                bytes.get(i + 2).copied().and_then(val),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// The canonical URI of a wire path: normalised (empty, `.` and `..` segments removed;
/// a trailing `/` kept), then every segment URI-encoded once more.
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 8);
    for seg in &segments {
        out.push('/');
        out.push_str(&uri_encode(seg.as_bytes(), true));
    }
    if out.is_empty() || path.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical query string: `name=value` pairs (decoded, then SigV4-encoded),
/// sorted by name then value, joined with `&`. A parameter without `=` has an empty
/// value.
pub fn canonical_query(query: &str) -> String {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(name), true),
                uri_encode(&percent_decode(value), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims a header value and collapses runs of spaces and tabs into one space.
fn normalise_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// The canonical headers block (`name:value\n` per header, lowercase names sorted,
/// values trimmed with inner whitespace runs collapsed, repeated names joined with `,`
/// in the order given) and the signed headers list (`a;b;c`).
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.trim().to_ascii_lowercase();
        let value = normalise_value(value);
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => merged.push((name, value)),
        }
    }
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let mut block = String::new();
    for (n, v) in &merged {
        block.push_str(n);
        block.push(':');
        block.push_str(v);
        block.push('\n');
    }
    let signed = merged
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, signed)
}

/// The canonical request:
/// `METHOD\nCanonicalURI\nCanonicalQuery\nCanonicalHeaders\nSignedHeaders\nPayloadHash`.
/// `headers` is the complete set of signed headers (including `host` and `x-amz-date`).
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_hash: &str,
) -> String {
    let (block, signed) = canonical_headers(headers);
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        canonical_uri(path),
        canonical_query(query),
        block,
        signed,
        payload_hash
    )
}

/// `YYYYMMDD/region/service/aws4_request`.
pub fn credential_scope(amz_date: &str, region: &str, service: &str) -> String {
    format!(
        "{}/{region}/{service}/aws4_request",
        amz_date.get(..8).unwrap_or(amz_date)
    )
}

/// The string to sign: `AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256(canonical request)>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The signing key: `kDate = HMAC("AWS4"+secret, date)`, `kRegion = HMAC(kDate, region)`,
/// `kService = HMAC(kRegion, service)`, `kSigning = HMAC(kService, "aws4_request")`.
/// `date` is `YYYYMMDD` (the first 8 characters of an `x-amz-date` also work).
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let date = date.get(..8).unwrap_or(date);
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The hex signature of a string to sign.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex(&hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// The `Authorization` header value.
pub fn authorization(
    access_key_id: &str,
    scope: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// Headers [`sign`] sets itself; a copy in the caller's `headers` is not signed.
fn is_reserved(name: &str) -> bool {
    let name = name.trim();
    [
        "host",
        "x-amz-date",
        "authorization",
        "x-amz-security-token",
    ]
    .iter()
    .any(|r| name.eq_ignore_ascii_case(r))
}

/// Signs a request with the default [`SignOptions`] (session token signed, no
/// `x-amz-content-sha256`), which is what Bedrock expects.
///
/// * `host`: the `Host`/`:authority` the request is sent with (signed as `host`).
/// * `path`: the wire path (already URI-encoded once; see the module docs).
/// * `query`: the query string without `?` (empty for Bedrock).
/// * `headers`: other headers to sign, e.g. `content-type` (values as sent). Copies of
///   `host`, `x-amz-date`, `authorization` and `x-amz-security-token` are ignored.
/// * `body`: the exact body bytes sent.
/// * `amz_date`: `YYYYMMDDTHHMMSSZ` (see [`amz_date`]).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    region: &str,
    service: &str,
    creds: &Credentials,
    amz_date: &str,
) -> SignedHeaders {
    sign_with(
        method,
        host,
        path,
        query,
        headers,
        body,
        region,
        service,
        creds,
        amz_date,
        SignOptions::default(),
    )
}

/// [`sign`] with explicit [`SignOptions`].
#[allow(clippy::too_many_arguments)]
pub fn sign_with(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    region: &str,
    service: &str,
    creds: &Credentials,
    amz_date: &str,
    options: SignOptions,
) -> SignedHeaders {
    let payload_hash = sha256_hex(body);
    let token = creds.session_token.as_deref().filter(|t| !t.is_empty());

    let mut to_sign: Vec<(&str, &str)> = vec![("host", host), ("x-amz-date", amz_date)];
    if let (Some(t), true) = (token, options.sign_session_token) {
        to_sign.push(("x-amz-security-token", t));
    }
    if options.content_sha256_header {
        to_sign.push(("x-amz-content-sha256", &payload_hash));
    }
    to_sign.extend(headers.iter().copied().filter(|(n, _)| {
        let ours = is_reserved(n)
            || (options.content_sha256_header
                && n.trim().eq_ignore_ascii_case("x-amz-content-sha256"));
        !ours
    }));

    let creq = canonical_request(method, path, query, &to_sign, &payload_hash);
    let (_, signed) = canonical_headers(&to_sign);
    let scope = credential_scope(amz_date, region, service);
    let sts = string_to_sign(amz_date, &scope, &creq);
    let key = signing_key(&creds.secret_access_key, amz_date, region, service);
    let sig = signature(&key, &sts);

    let mut out = vec![
        (
            "authorization".to_string(),
            authorization(&creds.access_key_id, &scope, &signed, &sig),
        ),
        ("x-amz-date".to_string(), amz_date.to_string()),
    ];
    if let Some(t) = token {
        out.push(("x-amz-security-token".to_string(), t.to_string()));
    }
    if options.content_sha256_header {
        out.push(("x-amz-content-sha256".to_string(), payload_hash));
    }
    SignedHeaders { headers: out }
}

/// `x-amz-date` (`YYYYMMDDTHHMMSSZ`, UTC) of a Unix time in seconds.
pub fn amz_date(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`,
/// for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The AWS SigV4 test suite (aws-sig-v4-test-suite): its example credentials,
    // region, service and date.
    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";
    const HOST: &str = "example.amazonaws.com";
    const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: AKID.to_string(),
            secret_access_key: SECRET.to_string(),
            session_token: token.map(str::to_string),
        }
    }

    fn suite_authz(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
        )
    }

    /// Signs a test-suite request: (method, path, query, extra headers, body).
    fn suite_sign(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        token: Option<&str>,
    ) -> String {
        let signed = sign(
            method,
            HOST,
            path,
            query,
            headers,
            body,
            "us-east-1",
            "service",
            &creds(token),
            DATE,
        );
        assert_eq!(signed.get("x-amz-date"), Some(DATE));
        signed.get("authorization").unwrap().to_string()
    }

    #[test]
    fn get_vanilla_every_step() {
        let creq = canonical_request(
            "GET",
            "/",
            "",
            &[("Host", HOST), ("X-Amz-Date", DATE)],
            EMPTY_SHA256,
        );
        assert_eq!(
            creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let scope = credential_scope(DATE, "us-east-1", "service");
        assert_eq!(scope, "20150830/us-east-1/service/aws4_request");
        let sts = string_to_sign(DATE, &scope, &creq);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let key = signing_key(SECRET, "20150830", "us-east-1", "service");
        assert_eq!(
            signature(&key, &sts),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            suite_sign("GET", "/", "", &[], b"", None),
            suite_authz(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded_every_step() {
        let body = b"Param1=value1";
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", HOST),
            ("X-Amz-Date", DATE),
        ];
        let creq = canonical_request("POST", "/", "", &headers, &sha256_hex(body));
        assert_eq!(
            creq,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n\
             x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n\
             9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        let sts = string_to_sign(DATE, "20150830/us-east-1/service/aws4_request", &creq);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281"
        );
        assert_eq!(
            suite_sign(
                "POST",
                "/",
                "",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                body,
                None
            ),
            suite_authz(
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    #[test]
    fn suite_authorization_values() {
        let h = "host;x-amz-date";
        let h1 = "host;my-header1;x-amz-date";
        #[rustfmt::skip]
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, &str, &str, &str, &[(&str, &str)], &str, &str)] = &[
            // (name, method, path, query, headers, signed headers, signature)
            ("post-vanilla", "POST", "/", "", &[], h,
             "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
            ("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", &[], h,
             "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
            ("get-vanilla-empty-query-key", "GET", "/", "Param1=value1", &[], h,
             "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
            ("post-vanilla-query", "POST", "/", "Param1=value1", &[], h,
             "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
            ("get-vanilla-query-unreserved", "GET", "/",
             "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
             &[], h, "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
            ("get-vanilla-utf8-query", "GET", "/", "\u{1234}=bar", &[], h,
             "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
            ("get-unreserved", "GET",
             "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", &[], h,
             "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
            ("get-utf8", "GET", "/\u{1234}", "", &[], h,
             "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
            ("get-header-key-duplicate", "GET", "/", "",
             &[("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")], h1,
             "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
            ("get-header-value-order", "GET", "/", "",
             &[("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")], h1,
             "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"),
            ("get-header-value-trim", "GET", "/", "",
             &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
             "host;my-header1;my-header2;x-amz-date",
             "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"),
            ("post-header-key-sort", "POST", "/", "", &[("My-Header1", "value1")], h1,
             "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
            ("post-header-value-case", "POST", "/", "", &[("My-Header1", "VALUE1")], h1,
             "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"),
            // normalize-path/
            ("get-slash", "GET", "//", "", &[], h,
             "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ("get-slash-dot-slash", "GET", "/./", "", &[], h,
             "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ("get-relative", "GET", "/example/..", "", &[], h,
             "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ("get-relative-relative", "GET", "/example1/example2/../..", "", &[], h,
             "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            ("get-slash-pointless-dot", "GET", "/./example", "", &[], h,
             "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"),
            ("get-slashes", "GET", "//example//", "", &[], h,
             "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"),
            ("get-space", "GET", "/example space/", "", &[], h,
             "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
        ];
        for (name, method, path, query, headers, signed, sig) in cases {
            assert_eq!(
                suite_sign(method, path, query, headers, b"", None),
                suite_authz(signed, sig),
                "{name}"
            );
        }
    }

    #[test]
    fn post_sts_header_before_and_after() {
        // post-sts-header-before: the token is part of the canonical request.
        let signed = sign(
            "POST",
            HOST,
            "/",
            "",
            &[],
            b"",
            "us-east-1",
            "service",
            &creds(Some(STS_TOKEN)),
            DATE,
        );
        assert_eq!(
            signed.get("authorization").unwrap(),
            suite_authz(
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
            )
        );
        assert_eq!(signed.get("x-amz-security-token"), Some(STS_TOKEN));
        // post-sts-header-after: the token is added after signing (post-vanilla's signature).
        let signed = sign_with(
            "POST",
            HOST,
            "/",
            "",
            &[],
            b"",
            "us-east-1",
            "service",
            &creds(Some(STS_TOKEN)),
            DATE,
            SignOptions {
                sign_session_token: false,
                ..SignOptions::default()
            },
        );
        assert_eq!(
            signed.get("authorization").unwrap(),
            suite_authz(
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
        assert_eq!(signed.get("x-amz-security-token"), Some(STS_TOKEN));
    }

    #[test]
    fn s3_get_object_example_with_content_sha256() {
        // Amazon S3 API reference, "Example: GET Object" (header-based auth). S3 encodes
        // the path once; `/test.txt` is the same either way.
        let c = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".to_string(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_string(),
            session_token: None,
        };
        let signed = sign_with(
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            "",
            &[("Range", "bytes=0-9")],
            b"",
            "us-east-1",
            "s3",
            &c,
            "20130524T000000Z",
            SignOptions {
                content_sha256_header: true,
                ..SignOptions::default()
            },
        );
        assert_eq!(
            signed.get("authorization").unwrap(),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(signed.get("x-amz-content-sha256"), Some(EMPTY_SHA256));
    }

    /// A Bedrock Converse request, checked against a canonical request and an HMAC chain
    /// written out here by hand (not through the functions under test).
    #[test]
    fn bedrock_converse_request_independent_recomputation() {
        let model = "anthropic.claude-3-5-sonnet-20240620-v1:0";
        let wire_path = format!("/model/{}/converse", encode_path_segment(model));
        assert_eq!(
            wire_path,
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        let body = br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":512}}"#;
        let host = "bedrock-runtime.us-west-2.amazonaws.com";
        let date = "20240615T083015Z";
        let c = Credentials {
            access_key_id: "AKIDEXAMPLE".to_string(),
            secret_access_key: SECRET.to_string(),
            session_token: Some("session-token-xyz".to_string()),
        };
        let signed = sign(
            "POST",
            host,
            &wire_path,
            "",
            &[("Content-Type", "application/json")],
            body,
            "us-west-2",
            "bedrock",
            &c,
            date,
        );

        // By hand: the path segment is encoded twice (`:` -> `%3A` -> `%253A`).
        let body_hash = hex(&Sha256::digest(body));
        let expected_creq = format!(
            "POST\n/model/anthropic.claude-3-5-sonnet-20240620-v1%253A0/converse\n\n\
             content-type:application/json\n\
             host:bedrock-runtime.us-west-2.amazonaws.com\n\
             x-amz-date:20240615T083015Z\n\
             x-amz-security-token:session-token-xyz\n\n\
             content-type;host;x-amz-date;x-amz-security-token\n{body_hash}"
        );
        let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
            m.update(data);
            m.finalize().into_bytes().to_vec()
        };
        let expected_sts = format!(
            "AWS4-HMAC-SHA256\n20240615T083015Z\n20240615/us-west-2/bedrock/aws4_request\n{}",
            hex(&Sha256::digest(expected_creq.as_bytes()))
        );
        let k = hmac(format!("AWS4{SECRET}").as_bytes(), b"20240615");
        let k = hmac(&k, b"us-west-2");
        let k = hmac(&k, b"bedrock");
        let k = hmac(&k, b"aws4_request");
        let expected_sig = hex(&hmac(&k, expected_sts.as_bytes()));
        // The same request signed by botocore's `SigV4Auth` (bedrock, us-west-2) at this
        // date gives this signature.
        assert_eq!(
            expected_sig,
            "b90487c4fc878f5172e78369b60e667dd7d8e641d3d72ccc5e4b00b3878db046"
        );

        // Each public step agrees with the hand-written one ...
        let headers = [
            ("content-type", "application/json"),
            ("host", host),
            ("x-amz-date", date),
            ("x-amz-security-token", "session-token-xyz"),
        ];
        let creq = canonical_request("POST", &wire_path, "", &headers, &sha256_hex(body));
        assert_eq!(creq, expected_creq);
        assert_eq!(
            string_to_sign(date, "20240615/us-west-2/bedrock/aws4_request", &creq),
            expected_sts
        );
        // ... and so does the whole.
        assert_eq!(
            signed.headers,
            vec![
                (
                    "authorization".to_string(),
                    format!(
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240615/us-west-2/bedrock/aws4_request, \
                         SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature={expected_sig}"
                    )
                ),
                ("x-amz-date".to_string(), date.to_string()),
                (
                    "x-amz-security-token".to_string(),
                    "session-token-xyz".to_string()
                ),
            ]
        );
    }

    #[test]
    fn reserved_headers_from_the_caller_are_not_signed_twice() {
        let a = sign(
            "POST",
            HOST,
            "/",
            "",
            &[
                ("Host", "evil"),
                ("X-Amz-Date", "x"),
                ("Authorization", "y"),
            ],
            b"",
            "us-east-1",
            "service",
            &creds(None),
            DATE,
        );
        let b = sign(
            "POST",
            HOST,
            "/",
            "",
            &[],
            b"",
            "us-east-1",
            "service",
            &creds(None),
            DATE,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn canonical_uri_and_query_details() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/b%2Fc/"), "/a/b%252Fc/");
        assert_eq!(canonical_uri("/../.."), "/");
        assert_eq!(canonical_query("?b=2&a=2&a=1&c"), "a=1&a=2&b=2&c=");
        assert_eq!(canonical_query("k=a%20b&j=a+b"), "j=a%2Bb&k=a%20b");
        assert_eq!(canonical_query("k=%zz%4"), "k=%25zz%254");
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = creds(Some("tok-secret"));
        let s = format!("{c:?}");
        assert!(s.contains("AKIDEXAMPLE"));
        assert!(!s.contains(SECRET));
        assert!(!s.contains("tok-secret"));
    }

    #[test]
    fn amz_date_civil_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(amz_date(1_709_164_799), "20240228T235959Z");
        assert_eq!(amz_date(1_709_164_800), "20240229T000000Z");
        assert_eq!(amz_date(4_102_444_800), "21000101T000000Z");
        assert_eq!(amz_date(253_402_300_799), "99991231T235959Z");
    }

    proptest! {
        #[test]
        fn amz_date_matches_a_day_by_day_count(days in 0u64..200_000, secs in 0u64..86_400) {
            // Independent: walk years and months from 1970.
            let mut rem = days;
            let mut y = 1970u64;
            loop {
                let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
                let len = if leap { 366 } else { 365 };
                if rem < len { break; }
                rem -= len;
                y += 1;
            }
            let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
            let months = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            let mut m = 1;
            for len in months {
                if rem < len { break; }
                rem -= len;
                m += 1;
            }
            let want = format!("{y:04}{m:02}{:02}T{:02}{:02}{:02}Z", rem + 1, secs / 3600, secs % 3600 / 60, secs % 60);
            prop_assert_eq!(amz_date(days * 86_400 + secs), want);
        }

        #[test]
        fn signing_never_panics(method in ".{0,8}", path in ".{0,40}", query in ".{0,40}",
                                name in ".{0,10}", value in ".{0,20}", body in prop::collection::vec(any::<u8>(), 0..64),
                                date in ".{0,20}") {
            let s = sign(&method, "h", &path, &query, &[(&name, &value)], &body, "r", "s", &creds(Some("t")), &date);
            prop_assert!(s.get("authorization").is_some());
            let _ = amz_date(u64::MAX);
        }
    }
}
