//! JSON values read from a request as serde reads them and written as serde_json writes
//! them, for the translations that copy them into another API's request without serde
//! (`translate::messages_request`, `translate::chat_request`): each reader validates what
//! it passes as serde would and answers `None` for anything serde reads differently or
//! refuses, so that the caller can translate with serde instead.

use std::borrow::Cow;

use crate::fastjson::scan::{skip_value, string_stop};
use crate::fastjson::text::quoted;
use crate::fastjson::walk::{null, unsigned};

/// A JSON string literal, quotes included, exactly as serde_json writes its value.
pub(crate) type Literal<'a> = Cow<'a, str>;

/// The string at `i` as serde_json would write it, and the offset after it: the
/// literal itself when serde_json writes it the same (no escapes, or only the escapes
/// serde_json writes), else the decoded text written again.
pub(crate) fn string(text: &str, i: usize) -> Option<(Literal<'_>, usize)> {
    let b = text.as_bytes();
    let (end, as_serde_writes) = scan_string(b, i)?;
    let literal = text.get(i..end)?;
    if as_serde_writes {
        return Some((Cow::Borrowed(literal), end));
    }
    let value: String = serde_json::from_str(literal).ok()?;
    Some((Cow::Owned(quoted(&value)), end))
}

/// The end of the string whose opening quote is at `open`, validated as serde does
/// (escapes, no control characters; UTF-8 is checked by the caller), and whether
/// every escape in it is one serde_json writes: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, and `\u00xx` (lowercase) for the other control characters.
pub(crate) fn scan_string(b: &[u8], open: usize) -> Option<(usize, bool)> {
    if b.get(open) != Some(&b'"') {
        return None;
    }
    let mut i = open + 1;
    let mut as_serde_writes = true;
    loop {
        i = string_stop(b, i);
        match *b.get(i)? {
            b'"' => return Some((i + 1, as_serde_writes)),
            b'\\' => match *b.get(i + 1)? {
                b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'/' => {
                    as_serde_writes = false;
                    i += 2;
                }
                b'u' => {
                    let hex = b.get(i + 2..i + 6)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    as_serde_writes &= serde_writes_u_escape(hex);
                    i += 6;
                }
                _ => return None,
            },
            // A control character.
            _ => return None,
        }
    }
}

/// True for the four hex digits of a `\u` escape that serde_json writes: `00` and a
/// control character in lowercase hex, other than those with a short form.
fn serde_writes_u_escape(hex: &[u8]) -> bool {
    match hex {
        [b'0', b'0', b'0', low] => {
            matches!(low, b'0'..=b'7' | b'b' | b'e' | b'f')
        }
        [b'0', b'0', b'1', low] => matches!(low, b'0'..=b'9' | b'a'..=b'f'),
        _ => false,
    }
}

/// The end of a member's value that serde reads into a `Value` — one a translation
/// drops, or an unknown member a wire type keeps in its `rest` map — read as serde reads
/// it (a `Value` refuses numbers out of range and lone surrogates that a syntax check
/// lets through).
pub(crate) fn dropped(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    match b.get(i)? {
        b'"' => string(text, i).map(|(_, end)| end),
        b'n' => null(b, i),
        b'0'..=b'9' if unsigned(b, i, u64::MAX).is_some() => unsigned(b, i, u64::MAX),
        _ => {
            let end = skip_value(b, i).ok()?;
            serde_json::from_str::<serde_json::Value>(text.get(i..end)?).ok()?;
            Some(end)
        }
    }
}

/// A number read as `f64`, as serde reads it (integers too; out of range is refused).
pub(crate) fn float(text: &str, i: usize) -> Option<(f64, usize)> {
    let b = text.as_bytes();
    if !matches!(b.get(i), Some(b'-' | b'0'..=b'9')) {
        return None;
    }
    let end = skip_value(b, i).ok()?;
    let x: f64 = serde_json::from_str(text.get(i..end)?).ok()?;
    x.is_finite().then_some((x, end))
}

pub(crate) fn boolean(b: &[u8], i: usize) -> Option<(bool, usize)> {
    if b.get(i..i + 4) == Some(b"true") {
        Some((true, i + 4))
    } else if b.get(i..i + 5) == Some(b"false") {
        Some((false, i + 5))
    } else {
        None
    }
}

/// The literal of the texts joined. Each literal is written as serde_json writes its
/// text, and serde_json escapes each character on its own, so their insides joined are
/// the joined text's.
pub(crate) fn joined(mut texts: Vec<Literal<'_>>) -> Literal<'_> {
    if texts.len() == 1 {
        if let Some(only) = texts.pop() {
            return only;
        }
    }
    let mut out = String::from("\"");
    for t in &texts {
        out.push_str(t.get(1..t.len().saturating_sub(1)).unwrap_or_default());
    }
    out.push('"');
    Cow::Owned(out)
}

/// Stores what a reader read in `slot`; the offset after it.
pub(crate) fn put<T>(slot: &mut Option<T>, read: Option<(T, usize)>) -> Option<usize> {
    let (value, end) = read?;
    *slot = Some(value);
    Some(end)
}

/// An array of strings, and the offset after it.
pub(crate) fn strings(text: &str, i: usize) -> Option<(Vec<Literal<'_>>, usize)> {
    let mut items = Vec::new();
    let end = crate::fastjson::walk::array(text.as_bytes(), i, |i| {
        let (s, end) = string(text, i)?;
        items.push(s);
        Some(end)
    })?;
    Some((items, end))
}

/// Writes `[a,b,…]` of the literals.
pub(crate) fn push_list(out: &mut Vec<u8>, items: &[Literal<'_>]) {
    out.push(b'[');
    for (j, item) in items.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item.as_bytes());
    }
    out.push(b']');
}

/// Writes the texts as text parts (OpenAI) or text blocks (Anthropic), which serde writes
/// alike: `[{"type":"text","text":…},…]`.
pub(crate) fn push_text_parts(out: &mut Vec<u8>, texts: &[Literal<'_>]) {
    out.push(b'[');
    for (j, t) in texts.iter().enumerate() {
        if j > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        out.extend_from_slice(t.as_bytes());
        out.push(b'}');
    }
    out.push(b']');
}

/// Writes `,"name":x` for each number that is there, as serde_json writes an `f64`.
pub(crate) fn push_numbers(out: &mut Vec<u8>, members: [(&str, Option<f64>); 2]) {
    for (name, x) in members {
        if let Some(x) = x {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            // `float` reads finite numbers only, which serde_json writes as numbers.
            let _ = serde_json::to_writer(&mut *out, &x);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    /// `fast` (a fast translation of `body`, `None` when it did not read) is `Ok(None)`
    /// or `slow` (serde's), byte for byte; else what differs.
    pub(crate) fn as_serde<E: std::fmt::Debug>(
        body: &str,
        fast: Option<Vec<u8>>,
        slow: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Option<String>, String> {
        let Some(fast) = fast else {
            return Ok(None);
        };
        let slow =
            slow().map_err(|e| format!("serde refused what the fast path read: {e:?}\n{body}"))?;
        let fast = String::from_utf8(fast).map_err(|e| e.to_string())?;
        let slow = String::from_utf8(slow).map_err(|e| e.to_string())?;
        if fast != slow {
            return Err(format!("{body}\nfast  {fast}\nserde {slow}"));
        }
        Ok(Some(fast))
    }

    /// [`as_serde`] for the translation of an answer, which also returns its usage: the
    /// same bytes and the same usage.
    pub(crate) fn answer_as_serde<E: std::fmt::Debug>(
        body: &str,
        fast: Option<(Vec<u8>, crate::tokens::usage::Usage)>,
        slow: impl Fn() -> Result<(Vec<u8>, crate::tokens::usage::Usage), E>,
    ) -> Result<Option<String>, String> {
        if let (Some((_, usage)), Ok((_, slow_usage))) = (&fast, slow()) {
            if *usage != slow_usage {
                return Err(format!("{body}\nusage {usage:?}, serde's {slow_usage:?}"));
            }
        }
        as_serde(body, fast.map(|(out, _)| out), || {
            slow().map(|(out, _)| out)
        })
    }

    /// A text as a JSON literal: plain, with the escapes serde_json writes, or others.
    pub(crate) fn literal() -> impl Strategy<Value = String> {
        let short = select(vec![
            r#""hi""#,
            r#""""#,
            r#""a\nb\t\"q\" \\ \u001f""#,
            r#""\u00e9 \/""#,
            r#""\u000A\u001F""#,
            r#""\ud83d\ude00""#,
            r#""\ud800""#,
            r#""é ü ☃""#,
            "\"\u{7f}\"",
            r#""x\u0000y""#,
        ])
        .prop_map(str::to_owned);
        // Long texts (serde_json writes those through `text::long`).
        let long = (any::<bool>(), 100usize..300).prop_map(|(escape, n)| {
            let unit = if escape { "ab\\n\\\"" } else { "word " };
            format!("\"{}\"", unit.repeat(n / unit.len()))
        });
        prop_oneof![3 => short, 1 => long]
    }

    /// Any JSON value, some of which serde refuses (out of range, a lone surrogate).
    pub(crate) fn value() -> impl Strategy<Value = String> {
        select(vec![
            "null",
            "true",
            "1",
            "-0",
            "0.2",
            "1e2",
            "1e400",
            "[]",
            "{}",
            r#"{"a":[1,{"b":null}]}"#,
            r#""s""#,
            r#""\ud800""#,
            r#"[1e400]"#,
        ])
        .prop_map(str::to_owned)
    }

    /// A token count: right (`null` too), out of range, or of another type.
    pub(crate) fn count() -> impl Strategy<Value = String> {
        select(vec![
            "0",
            "7",
            "18446744073709551615",
            "null",
            "18446744073709551616",
            "-0",
            "1.5",
        ])
        .prop_map(str::to_owned)
    }

    pub(crate) fn object_of(members: Vec<(String, String)>) -> String {
        let inner: Vec<String> = members
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    /// Request objects: `messages` (an array of `message`) among `members`, spaced alike.
    pub(crate) fn request_of(
        message: impl Strategy<Value = String>,
        messages: std::ops::Range<usize>,
        member: impl Strategy<Value = (String, String)>,
        members: std::ops::Range<usize>,
    ) -> impl Strategy<Value = String> {
        (
            prop::collection::vec(message, messages),
            prop::collection::vec(member, members),
            any::<prop::sample::Index>(),
            select(vec!["", " ", "\n  "]),
        )
            .prop_map(|(messages, mut members, at, space)| {
                let at = at.index(members.len() + 1);
                members.insert(
                    at,
                    ("messages".to_string(), format!("[{}]", messages.join(","))),
                );
                let inner: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{space}\"{k}\"{space}:{space}{v}"))
                    .collect();
                format!("{{{}{space}}}", inner.join(","))
            })
    }

    /// What the translation property tests insert anywhere into a generated body to break it.
    pub(crate) fn junk() -> impl Strategy<Value = &'static str> {
        select(vec!["", "\"", "}", "]", ",", " ", "{", "\\", "null"])
    }

    /// `same` (a fast path held to serde; `Err` says how they differ) holds for `body` and
    /// for `body` with `junk` inserted at `cut`.
    pub(crate) fn as_serde_also_broken<T>(
        body: &str,
        cut: prop::sample::Index,
        junk: &str,
        same: impl Fn(&str) -> Result<T, String>,
    ) -> Result<(), TestCaseError> {
        let broken = crate::stream::openai_chunk::tests::insert_at(body, cut, junk);
        for body in [body, broken.as_str()] {
            same(body).map_err(TestCaseError::fail)?;
        }
        Ok(())
    }

    /// How many of 2000 requests generated by `request` the fast path reads: a property
    /// test comparing it with serde is only as good as that.
    pub(crate) fn how_many_read(
        request: impl Strategy<Value = String>,
        read: impl Fn(&str) -> bool,
    ) -> usize {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        (0..2000)
            .filter(|_| {
                request
                    .new_tree(&mut runner)
                    .is_ok_and(|tree| read(&tree.current()))
            })
            .count()
    }

    #[test]
    fn only_the_escapes_serde_json_writes_are_copied() {
        for c in 0u32..0x80 {
            let c = char::from_u32(c).unwrap();
            let written = quoted(&c.to_string());
            assert!(scan_string(written.as_bytes(), 0).unwrap().1, "{written}");
            for hex in [format!("{:04x}", c as u32), format!("{:04X}", c as u32)] {
                let literal = format!("\"\\u{hex}\"");
                let (_, copied) = scan_string(literal.as_bytes(), 0).unwrap();
                assert_eq!(
                    copied,
                    literal == written,
                    "{literal} (serde writes {written})"
                );
            }
        }
    }
}
