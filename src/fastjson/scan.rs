//! Validating JSON skipping, fast on long strings.
//!
//! Routing a request needs a handful of small top-level members (`model`, `stream`,
//! `max_tokens`…) out of a body that is mostly one large value (`messages`, often one
//! long string). serde_json validates what it skips four or eight bytes at a time; in
//! Envoy's Wasm runtime that costs about three instructions per body byte, the largest
//! part of routing a 1 MB request. This module checks the same grammar (RFC 8259, as
//! serde_json's `IgnoredAny` does: escapes, control characters, numbers, literals;
//! string contents are not checked for UTF-8, top-level keys are) and finds string ends
//! with Wasm SIMD (`simd128`: 128 bytes per step through long strings, then 16), or eight
//! bytes per step elsewhere. The small members it locates are then parsed by serde.
//!
//! One difference: nesting deeper than [`MAX_DEPTH`] levels is refused. serde_json skips
//! ignored values at any depth but refuses deeper values when it parses them (as the
//! translators do), so the limit is the same on every path through the gateway.
//! Iterative, so nesting cannot overflow the stack; never panics.

use std::ops::Range;

/// Nesting limit: serde_json's when it parses (not skips) a value — 127 containers, the
/// outermost included.
pub const MAX_DEPTH: usize = 127;

/// Why a body is not valid JSON, and the byte offset where that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub what: &'static str,
    pub at: usize,
}

impl SyntaxError {
    fn at(what: &'static str, at: usize) -> Self {
        SyntaxError { what, at }
    }

    /// `what` with the position as serde_json reports it (`at line 1 column 9`).
    pub fn describe(&self, bytes: &[u8]) -> String {
        let before = bytes.get(..self.at).unwrap_or(bytes);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        format!("{} at line {line} column {column}", self.what)
    }
}

/// One member of the top-level object: the key (decoded when it holds escapes) and the
/// byte span of its value.
pub struct Member<'a> {
    pub key: std::borrow::Cow<'a, str>,
    pub value: Range<usize>,
}

/// Validates `bytes` as one JSON object (whitespace around it allowed) and calls `each`
/// for every member in order. Returns the offset just after the opening `{`.
/// `each` may stop the walk with its own error.
pub fn object_members<'a, E: From<SyntaxError>>(
    bytes: &'a [u8],
    mut each: impl FnMut(Member<'a>) -> Result<(), E>,
) -> Result<usize, E> {
    let open = ws(bytes, 0);
    if bytes.get(open) != Some(&b'{') {
        return Err(SyntaxError::at("expected `{`", open).into());
    }
    let body_start = open + 1;
    let mut i = ws(bytes, body_start);
    if bytes.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if bytes.get(i) != Some(&b'"') {
                return Err(SyntaxError::at(eof_or(bytes, i, "key must be a string"), i).into());
            }
            let key_end = skip_string(bytes, i)?;
            let key = decode_key(bytes, i..key_end)?;
            i = ws(bytes, key_end);
            if bytes.get(i) != Some(&b':') {
                return Err(SyntaxError::at(eof_or(bytes, i, "expected `:`"), i).into());
            }
            let start = ws(bytes, i + 1);
            // The top-level object is the first level.
            let end = skip_nested(bytes, start, MAX_DEPTH - 1)?;
            each(Member {
                key,
                value: start..end,
            })?;
            i = ws(bytes, end);
            match bytes.get(i) {
                Some(b',') => i = ws(bytes, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => {
                    let what = eof_or(bytes, i, "expected `,` or `}`");
                    return Err(SyntaxError::at(what, i).into());
                }
            }
        }
    }
    let rest = ws(bytes, i);
    if rest < bytes.len() {
        return Err(SyntaxError::at("trailing characters", rest).into());
    }
    Ok(body_start)
}

fn eof_or(bytes: &[u8], i: usize, what: &'static str) -> &'static str {
    if i >= bytes.len() {
        "EOF while parsing an object"
    } else {
        what
    }
}

/// A top-level key: borrowed when it has no escapes (then only checked for UTF-8).
fn decode_key(bytes: &[u8], span: Range<usize>) -> Result<std::borrow::Cow<'_, str>, SyntaxError> {
    let at = span.start;
    let raw = bytes
        .get(span.start + 1..span.end.saturating_sub(1))
        .ok_or_else(|| SyntaxError::at("invalid key", at))?;
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw)
            .map(std::borrow::Cow::Borrowed)
            .map_err(|_| SyntaxError::at("invalid unicode code point", at));
    }
    let quoted = bytes.get(span).unwrap_or_default();
    serde_json::from_slice::<String>(quoted)
        .map(std::borrow::Cow::Owned)
        .map_err(|_| SyntaxError::at("invalid escape in key", at))
}

fn ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// Validates the JSON value that starts at `i` and returns the offset just after it.
pub fn skip_value(bytes: &[u8], i: usize) -> Result<usize, SyntaxError> {
    skip_nested(bytes, i, MAX_DEPTH)
}

/// [`skip_value`] for a value holding at most `max_depth` levels of containers.
fn skip_nested(bytes: &[u8], mut i: usize, max_depth: usize) -> Result<usize, SyntaxError> {
    // Bit d of `objects` is set when nesting level d + 1 is an object (else an array).
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    loop {
        // A value is expected at `i`.
        i = ws(bytes, i);
        match bytes.get(i) {
            Some(b'"') => i = skip_string(bytes, i)?,
            Some(&open @ (b'{' | b'[')) => {
                if depth >= max_depth {
                    return Err(SyntaxError::at("recursion limit exceeded", i));
                }
                let is_object = open == b'{';
                let bit = 1u128 << depth;
                objects = if is_object {
                    objects | bit
                } else {
                    objects & !bit
                };
                depth += 1;
                i = ws(bytes, i + 1);
                let close = if is_object { b'}' } else { b']' };
                if bytes.get(i) == Some(&close) {
                    i += 1;
                    depth -= 1;
                } else if is_object {
                    i = member_key(bytes, i)?;
                    continue;
                } else {
                    continue;
                }
            }
            Some(b't') => i = literal(bytes, i, b"true")?,
            Some(b'f') => i = literal(bytes, i, b"false")?,
            Some(b'n') => i = literal(bytes, i, b"null")?,
            Some(b'-' | b'0'..=b'9') => i = skip_number(bytes, i)?,
            Some(_) => return Err(SyntaxError::at("expected value", i)),
            None => return Err(SyntaxError::at("EOF while parsing a value", i)),
        }
        // After a value: close containers until one expects another element.
        loop {
            if depth == 0 {
                return Ok(i);
            }
            let in_object = objects & (1u128 << (depth - 1)) != 0;
            i = ws(bytes, i);
            match (bytes.get(i), in_object) {
                (Some(b','), true) => {
                    i = member_key(bytes, ws(bytes, i + 1))?;
                    break;
                }
                (Some(b','), false) => {
                    i += 1;
                    break;
                }
                (Some(b'}'), true) | (Some(b']'), false) => {
                    i += 1;
                    depth -= 1;
                }
                (None, true) => return Err(SyntaxError::at("EOF while parsing an object", i)),
                (None, false) => return Err(SyntaxError::at("EOF while parsing a list", i)),
                (Some(_), true) => return Err(SyntaxError::at("expected `,` or `}`", i)),
                (Some(_), false) => return Err(SyntaxError::at("expected `,` or `]`", i)),
            }
        }
    }
}

/// `"key"` then `:` at `i`; returns the offset after the colon.
fn member_key(bytes: &[u8], i: usize) -> Result<usize, SyntaxError> {
    match bytes.get(i) {
        Some(b'"') => {}
        Some(_) => return Err(SyntaxError::at("key must be a string", i)),
        None => return Err(SyntaxError::at("EOF while parsing an object", i)),
    }
    let after = ws(bytes, skip_string(bytes, i)?);
    match bytes.get(after) {
        Some(b':') => Ok(after + 1),
        Some(_) => Err(SyntaxError::at("expected `:`", after)),
        None => Err(SyntaxError::at("EOF while parsing an object", after)),
    }
}

fn literal(bytes: &[u8], i: usize, word: &[u8]) -> Result<usize, SyntaxError> {
    if bytes.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(SyntaxError::at("expected value", i))
    }
}

fn digits(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn skip_number(bytes: &[u8], start: usize) -> Result<usize, SyntaxError> {
    let mut i = start;
    if bytes.get(i) == Some(&b'-') {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'0') => {
            i += 1;
            if bytes.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(SyntaxError::at("invalid number", i));
            }
        }
        Some(b'1'..=b'9') => i = digits(bytes, i + 1),
        _ => return Err(SyntaxError::at("invalid number", i)),
    }
    if bytes.get(i) == Some(&b'.') {
        let end = digits(bytes, i + 1);
        if end == i + 1 {
            return Err(SyntaxError::at("invalid number", end));
        }
        i = end;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(bytes, i);
        if end == i {
            return Err(SyntaxError::at("invalid number", end));
        }
        i = end;
    }
    Ok(i)
}

/// The string whose opening quote is at `open`: returns the offset after its closing
/// quote.
pub fn skip_string(bytes: &[u8], open: usize) -> Result<usize, SyntaxError> {
    skip_string_from(bytes, open + 1)
}

/// [`skip_string`] from `i`, a position inside the string that is not inside an escape.
fn skip_string_from(bytes: &[u8], mut i: usize) -> Result<usize, SyntaxError> {
    loop {
        i = string_stop(bytes, i);
        match bytes.get(i) {
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match bytes.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = bytes.get(i + 2..i + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        let what = if hex.is_none() {
                            "EOF while parsing a string"
                        } else {
                            "invalid escape"
                        };
                        return Err(SyntaxError::at(what, i));
                    }
                    i += 6;
                }
                Some(_) => return Err(SyntaxError::at("invalid escape", i + 1)),
                None => return Err(SyntaxError::at("EOF while parsing a string", i + 1)),
            },
            Some(_) => {
                return Err(SyntaxError::at(
                    "control character (\\u0000-\\u001F) found while parsing a string",
                    i,
                ))
            }
            None => return Err(SyntaxError::at("EOF while parsing a string", i)),
        }
    }
}

/// [`skip_string`] for strings that are mostly short (keys, ids, model names, one word of
/// a streamed answer): the first 32 bytes are tested a word at a time before the block
/// scan, whose setup costs more than such a string. Same result as [`skip_string`].
pub fn skip_short_string(bytes: &[u8], open: usize) -> Result<usize, SyntaxError> {
    let mut i = open + 1;
    for _ in 0..4 {
        let Some(word) = bytes.get(i..i + 8) else {
            break;
        };
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let stops = swar_stops(u64::from_le_bytes(w));
        if stops != 0 {
            let at = i + (stops.trailing_zeros() / 8) as usize;
            if bytes.get(at) == Some(&b'"') {
                return Ok(at + 1);
            }
            // An escape or a control character: the general scan takes it from there.
            return skip_string_from(bytes, at);
        }
        i += 8;
    }
    skip_string_from(bytes, i)
}

/// The first offset at or after `i` holding `"`, `\` or a control character (< 0x20),
/// or `bytes.len()`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub fn string_stop(bytes: &[u8], mut i: usize) -> usize {
    use core::arch::wasm32::{
        u8x16_bitmask, u8x16_eq, u8x16_min, u8x16_splat, u8x16_sub_sat, v128, v128_any_true,
        v128_load, v128_xor,
    };
    let two = u8x16_splat(0x02);
    let space = u8x16_splat(0x20);
    let backslash = u8x16_splat(b'\\');
    let zero = u8x16_splat(0);
    // Per byte, zero exactly where the string stops: flipping bit 1 maps the control
    // characters onto themselves and `"` (0x22) onto 0x20, the one other byte it maps to
    // 0x20 or below, so `(b ^ 2) - 0x20` saturates to zero for both; `b ^ '\\'` is zero
    // for a backslash; their minimum is zero if either is.
    let stops = |chunk: &[u8]| {
        // SAFETY: callers pass exactly 16 readable bytes; `v128.load` takes any alignment.
        let v = unsafe { v128_load(chunk.as_ptr().cast::<v128>()) };
        u8x16_min(
            u8x16_sub_sat(v128_xor(v, two), space),
            v128_xor(v, backslash),
        )
    };
    // 128 bytes per step while nothing stops the string (the common case in a long
    // prompt), then 16 bytes per step to find the exact offset. (Checking the first 16
    // bytes alone first, for short strings, cost more at 1 MB than it saved at 4 KB.)
    while let Some(block) = bytes.get(i..i + 128) {
        let at = |k: usize| stops(block.get(k..k + 16).unwrap_or(&[0; 16]));
        let a = u8x16_min(u8x16_min(at(0), at(16)), u8x16_min(at(32), at(48)));
        let b = u8x16_min(u8x16_min(at(64), at(80)), u8x16_min(at(96), at(112)));
        if v128_any_true(u8x16_eq(u8x16_min(a, b), zero)) {
            break;
        }
        i += 128;
    }
    while let Some(chunk) = bytes.get(i..i + 16) {
        let mask = u8x16_bitmask(u8x16_eq(stops(chunk), zero));
        if mask != 0 {
            return i + mask.trailing_zeros() as usize;
        }
        i += 16;
    }
    string_stop_swar(bytes, i)
}

/// [`string_stop`] with SSE2, which every x86-64 CPU has (the native build, tests and
/// micro-benchmarks): the same per-byte test as the Wasm SIMD version, 64 bytes per step
/// while nothing stops the string, then 16.
#[cfg(target_arch = "x86_64")]
pub fn string_stop(bytes: &[u8], mut i: usize) -> usize {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8,
        _mm_setzero_si128, _mm_subs_epu8, _mm_xor_si128,
    };
    // SAFETY: SSE2 is part of the x86-64 baseline; every load reads 16 bytes inside a
    // slice checked to hold them (`_mm_loadu_si128` takes any alignment).
    unsafe {
        let two = _mm_set1_epi8(0x02);
        let space = _mm_set1_epi8(0x20);
        let backslash = _mm_set1_epi8(b'\\' as i8);
        let zero = _mm_setzero_si128();
        let stops = |p: *const u8| {
            let v = _mm_loadu_si128(p.cast::<__m128i>());
            _mm_min_epu8(
                _mm_subs_epu8(_mm_xor_si128(v, two), space),
                _mm_xor_si128(v, backslash),
            )
        };
        while let Some(block) = bytes.get(i..i + 64) {
            let p = block.as_ptr();
            let m = _mm_min_epu8(
                _mm_min_epu8(stops(p), stops(p.add(16))),
                _mm_min_epu8(stops(p.add(32)), stops(p.add(48))),
            );
            if _mm_movemask_epi8(_mm_cmpeq_epi8(m, zero)) != 0 {
                break;
            }
            i += 64;
        }
        while let Some(chunk) = bytes.get(i..i + 16) {
            let mask = _mm_movemask_epi8(_mm_cmpeq_epi8(stops(chunk.as_ptr()), zero));
            if mask != 0 {
                return i + mask.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    string_stop_swar(bytes, i)
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
pub fn string_stop(bytes: &[u8], i: usize) -> usize {
    string_stop_swar(bytes, i)
}

/// [`string_stop`] eight bytes per step with 64-bit arithmetic.
fn string_stop_swar(bytes: &[u8], i: usize) -> usize {
    crate::fastjson::swar::find(bytes, i, swar_stops, |b| {
        b == b'"' || b == b'\\' || b < 0x20
    })
}

/// The high bit (and only that) of each byte of `x` (little-endian lanes) that stops a
/// string: a control character, a quote or a backslash. Flipping bit 1 maps the control
/// characters onto themselves and `"` onto 0x20, so one "below 0x21" test finds both.
/// Exact per lane (the top bit is cleared before adding and checked separately, so
/// nothing carries across lanes).
fn swar_stops(x: u64) -> u64 {
    use crate::fastjson::swar::{HIGH, ONES};
    let flipped = x ^ (ONES * 0x02);
    let control_or_quote = !((flipped & !HIGH) + ONES * (0x80 - 0x21)) & !flipped;
    let t = x ^ (ONES * u64::from(b'\\'));
    let backslash = !((t & !HIGH) + !HIGH) & !t;
    (control_or_quote | backslash) & HIGH
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IgnoredAny;

    fn serde_accepts(bytes: &[u8]) -> bool {
        serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
    }

    fn scan_accepts(bytes: &[u8]) -> bool {
        let start = ws(bytes, 0);
        match skip_value(bytes, start) {
            Ok(end) => ws(bytes, end) == bytes.len(),
            Err(_) => false,
        }
    }

    #[test]
    fn accepts_and_rejects_like_serde() {
        for s in [
            r#"{}"#,
            r#"[]"#,
            r#" {"a" : [1, -0, 0.5, 1e9, -2.5E-3, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9"], "b":{}} "#,
            r#""plain""#,
            r#"[[[[]]]]"#,
            r#"{"a":{"b":{"c":[{"d":1}]}}}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            r#"[01]"#,
            r#"[1.]"#,
            r#"[.5]"#,
            r#"[1e]"#,
            r#"[-]"#,
            r#"[tru]"#,
            r#"[nulll]"#,
            r#"{"a"}"#,
            r#"{a:1}"#,
            r#"{"a":1"#,
            r#"["\x"]"#,
            r#"["\u12"]"#,
            r#"["\u12g4"]"#,
            "[\"a\tb\"]",
            "[\"a\u{7f}b\"]",
            r#"[1 2]"#,
            r#"{"a":1 "b":2}"#,
            r#"["#,
            r#"""#,
            "",
        ] {
            assert_eq!(
                scan_accepts(s.as_bytes()),
                serde_accepts(s.as_bytes()),
                "{s}"
            );
        }
    }

    #[test]
    fn nesting_is_limited_like_serde_parsing_without_recursion() {
        let parsed = |s: &str| serde_json::from_str::<serde_json::Value>(s).is_ok();
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(scan_accepts(ok.as_bytes()) && parsed(&ok));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!scan_accepts(deep.as_bytes()) && !parsed(&deep));
        let object = |d: usize| format!("{}1{}", "{\"a\":".repeat(d), "}".repeat(d));
        let members = |s: &str| object_members::<SyntaxError>(s.as_bytes(), |_| Ok(())).is_ok();
        assert!(members(&object(MAX_DEPTH)) && parsed(&object(MAX_DEPTH)));
        assert!(!members(&object(MAX_DEPTH + 1)) && !parsed(&object(MAX_DEPTH + 1)));
        let huge = "[".repeat(1_000_000);
        assert!(!scan_accepts(huge.as_bytes()));
    }

    #[test]
    fn members_and_positions() {
        let body = br#" { "a" : 1, "b\u0063":"x", "c" : {"d":[]} } "#;
        let mut seen = Vec::new();
        let after_open = object_members::<SyntaxError>(body, |m| {
            seen.push((m.key.into_owned(), body[m.value].to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(after_open, 2);
        assert_eq!(
            seen,
            vec![
                ("a".to_string(), b"1".to_vec()),
                ("bc".to_string(), br#""x""#.to_vec()),
                ("c".to_string(), br#"{"d":[]}"#.to_vec()),
            ]
        );
        let e = object_members::<SyntaxError>(b"{\n\"a\":1 x}", |_| Ok(())).unwrap_err();
        assert_eq!(
            e.describe(b"{\n\"a\":1 x}"),
            "expected `,` or `}` at line 2 column 7"
        );
        let e = object_members::<SyntaxError>(b"{} x", |_| Ok(())).unwrap_err();
        assert_eq!(e.what, "trailing characters");
        assert!(object_members::<SyntaxError>(b"[1]", |_| Ok(())).is_err());
        assert!(object_members::<SyntaxError>(b"{\"\xff\":1}", |_| Ok(())).is_err());
    }

    fn stop_naive(bytes: &[u8], i: usize) -> usize {
        i + bytes[i..]
            .iter()
            .take_while(|&&b| b != b'"' && b != b'\\' && b >= 0x20)
            .count()
    }

    #[test]
    fn string_stop_stops_at_exactly_the_quote_the_backslash_and_control_characters() {
        for b in 0..=255u8 {
            for at in 0..140 {
                let mut bytes = vec![b'a'; 200];
                bytes[at] = b;
                let want = stop_naive(&bytes, 0);
                assert_eq!(string_stop(&bytes, 0), want, "byte {b:#04x} at {at}");
                assert_eq!(string_stop_swar(&bytes, 0), want, "byte {b:#04x} at {at}");
            }
        }
    }

    proptest! {
        #[test]
        fn string_stop_is_exact(
            bytes in prop::collection::vec(prop_oneof![
                Just(b'"'), Just(b'\\'), 0u8..0x20, Just(0x1fu8), Just(0x20u8), Just(0x7fu8), Just(0x80u8),
                Just(0xa2u8), Just(0xdcu8), Just(0xffu8), b'a'..=b'z'
            ], 0..48),
            start in 0usize..48,
        ) {
            let start = start.min(bytes.len());
            prop_assert_eq!(string_stop(&bytes, start), stop_naive(&bytes, start));
            prop_assert_eq!(string_stop_swar(&bytes, start), stop_naive(&bytes, start));
        }

        /// Long runs with at most one stop anywhere: the block steps (64 bytes with SSE2,
        /// 128 with Wasm SIMD), their tails and every offset of the stop within a block.
        #[test]
        fn string_stop_is_exact_in_long_runs(
            len in 0usize..400,
            stop_at in prop::option::of(0usize..400),
            stop in prop_oneof![Just(b'"'), Just(b'\\'), Just(0x1fu8), Just(0u8), 0u8..0x20],
            fill in prop_oneof![Just(b'a'), Just(0x20u8), Just(0x7fu8), Just(0xa2u8), Just(0xffu8)],
            start in 0usize..400,
        ) {
            let mut bytes = vec![fill; len];
            if let Some(b) = stop_at.and_then(|at| bytes.get_mut(at)) {
                *b = stop;
            }
            let start = start.min(len);
            prop_assert_eq!(string_stop(&bytes, start), stop_naive(&bytes, start));
            prop_assert_eq!(string_stop_swar(&bytes, start), stop_naive(&bytes, start));
        }

        /// The short-string shortcut ends (or refuses) every string where the block
        /// scan does: stops in the first or second word, later, or none.
        #[test]
        fn skip_short_string_is_skip_string(
            bytes in prop::collection::vec(prop_oneof![
                24 => b'a'..=b'z', 1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20,
                1 => Just(b'u'), 1 => Just(b'n'), 1 => Just(0xc3u8)
            ], 0..56),
        ) {
            let mut s = vec![b'"'];
            s.extend_from_slice(&bytes);
            prop_assert_eq!(skip_short_string(&s, 0), skip_string(&s, 0));
        }

        #[test]
        fn agrees_with_serde_on_json_like_text(s in r#"[\[\]{}",:0-9.eE+\- \\/ubnrtfalsu \t\x01a-f]{0,40}"#) {
            prop_assert_eq!(scan_accepts(s.as_bytes()), serde_accepts(s.as_bytes()), "{}", s);
        }

        #[test]
        fn agrees_with_serde_on_mutated_json(
            cut in 0usize..200,
            byte in any::<u8>(),
            value in arb_json(),
        ) {
            let mut bytes = serde_json::to_vec(&value).unwrap();
            prop_assert!(scan_accepts(&bytes));
            if !bytes.is_empty() {
                let at = cut % bytes.len();
                bytes[at] = byte;
                prop_assert_eq!(scan_accepts(&bytes), serde_accepts(&bytes), "{}", String::from_utf8_lossy(&bytes));
            }
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = scan_accepts(&bytes);
            let _ = object_members::<SyntaxError>(&bytes, |_| Ok(()));
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\]{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
