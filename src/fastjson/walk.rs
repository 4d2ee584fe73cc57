//! Walks of borrowed JSON for the fast readers (`stream_chunk`, the Anthropic delta
//! reader in `stream_anthropic`): each step validates what it passes as serde would and
//! answers `None` for anything it does not read with certainty, so that the caller can
//! hand the event to serde instead.

use std::borrow::Cow;

use crate::fastjson::scan::{skip_short_string, skip_value};
use crate::fastjson::Str;

/// Walks the object that starts at `i`, calling `member(key, value_start)` for each
/// member; `member` returns where the value ends. Keys with escapes are refused (serde
/// would decode them before matching). Returns the offset after the closing `}`.
pub(crate) fn object(
    b: &[u8],
    i: usize,
    member: impl FnMut(&[u8], usize) -> Option<usize>,
) -> Option<usize> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let i = ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    members(b, i, member)
}

/// [`object`] taken up at the value of member `key`, which starts at `value_start`
/// (the walk over the bytes before it known to have ended there).
pub(crate) fn object_resumed(
    b: &[u8],
    key: &[u8],
    value_start: usize,
    mut member: impl FnMut(&[u8], usize) -> Option<usize>,
) -> Option<usize> {
    let i = ws(b, member(key, value_start)?);
    match b.get(i) {
        Some(b',') => members(b, ws(b, i + 1), member),
        Some(b'}') => Some(i + 1),
        _ => None,
    }
}

/// The members of an object from the key at `i` on.
fn members(
    b: &[u8],
    mut i: usize,
    mut member: impl FnMut(&[u8], usize) -> Option<usize>,
) -> Option<usize> {
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = skip_short_string(b, i).ok()?;
        let key = b.get(i + 1..key_end.checked_sub(1)?)?;
        if key.contains(&b'\\') {
            return None;
        }
        i = ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = ws(b, member(key, ws(b, i + 1))?);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b'}') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// Walks the array that starts at `i`, calling `item(value_start)` for each element;
/// `item` returns where the element ends. Returns the offset after the closing `]`.
pub(crate) fn array(
    b: &[u8],
    i: usize,
    mut item: impl FnMut(usize) -> Option<usize>,
) -> Option<usize> {
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut i = ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    loop {
        i = ws(b, item(i)?);
        match b.get(i) {
            Some(b',') => i = ws(b, i + 1),
            Some(b']') => return Some(i + 1),
            _ => return None,
        }
    }
}

/// True when `b` starts with `prefix`, compared eight bytes at a time (a byte loop in
/// Wasm, where `memcmp` is one).
pub(crate) fn starts_with(b: &[u8], prefix: &[u8]) -> bool {
    let Some(head) = b.get(..prefix.len()) else {
        return false;
    };
    let word = |s: &[u8]| <[u8; 8]>::try_from(s).map(u64::from_ne_bytes).ok();
    let (mut x, mut y) = (head.chunks_exact(8), prefix.chunks_exact(8));
    (&mut x).zip(&mut y).all(|(a, c)| word(a) == word(c)) && x.remainder() == y.remainder()
}

/// A string (borrowed unless it has escapes, as serde's `Str` reads it) or `null`.
pub(crate) fn string_or_null(data: &str, i: usize) -> Option<(Option<Str<'_>>, usize)> {
    if let Some(end) = null(data.as_bytes(), i) {
        return Some((None, end));
    }
    let (s, end) = string(data, i)?;
    Some((Some(Str(Some(s.text))), end))
}

/// A JSON string as it appears in the text and as it reads.
pub(crate) struct JsonStr<'a> {
    /// The literal, quotes included: a valid JSON string, as the input wrote it.
    pub literal: &'a str,
    /// Its value: borrowed unless the literal has escapes.
    pub text: Cow<'a, str>,
}

impl JsonStr<'_> {
    /// True when the literal has no escapes, so that it is exactly how serde_json
    /// writes its value (serde_json escapes only `"`, `\` and control characters,
    /// none of which a literal without escapes can hold).
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }
}

/// The string whose opening quote is at `i`, and the offset after it.
pub(crate) fn string(data: &str, i: usize) -> Option<(JsonStr<'_>, usize)> {
    let b = data.as_bytes();
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let end = skip_short_string(b, i).ok()?;
    let literal = data.get(i..end)?;
    let inner = data.get(i + 1..end.checked_sub(1)?)?;
    let text = if inner.contains('\\') {
        Cow::Owned(serde_json::from_str::<String>(literal).ok()?)
    } else {
        Cow::Borrowed(inner)
    };
    Some((JsonStr { literal, text }, end))
}

/// A member's value that is not read: strings (most of them) with the short-string
/// scan, `null` at once, anything else with [`skip_value`]; all validate as serde does.
pub(crate) fn skip_member(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i) {
        Some(b'"') => skip_short_string(b, i).ok(),
        Some(b'n') => null(b, i),
        _ => skip_value(b, i).ok(),
    }
}

/// The members of an object that a fast reader types, each allowed once (serde refuses
/// a repeated field).
pub(crate) struct KnownKeys<const N: usize> {
    keys: [&'static [u8]; N],
    seen: [bool; N],
}

impl<const N: usize> KnownKeys<N> {
    pub(crate) fn new(keys: [&'static [u8]; N]) -> Self {
        KnownKeys {
            keys,
            seen: [false; N],
        }
    }

    /// `Some(Some(i))` the first time `keys[i]` comes, `Some(None)` for any other key,
    /// `None` when a known key comes again.
    pub(crate) fn first(&mut self, key: &[u8]) -> Option<Option<usize>> {
        let Some(i) = self.keys.iter().position(|k| *k == key) else {
            return Some(None);
        };
        let seen = self.seen.get_mut(i)?;
        if *seen {
            return None;
        }
        *seen = true;
        Some(Some(i))
    }

    pub(crate) fn seen(&self, i: usize) -> bool {
        self.seen.get(i) == Some(&true)
    }

    /// Which keys came so far, to take a walk up again later ([`Self::resumed`]).
    pub(crate) fn seen_keys(&self) -> [bool; N] {
        self.seen
    }

    /// The keys of a walk taken up again after members that held the keys `seen`.
    pub(crate) fn resumed(keys: [&'static [u8]; N], seen: [bool; N]) -> Self {
        KnownKeys { keys, seen }
    }
}

/// A JSON number that reads as an unsigned integer up to `max` (no sign, fraction or
/// exponent, no leading zero), and the offset after it.
pub(crate) fn unsigned(b: &[u8], i: usize, max: u64) -> Option<usize> {
    unsigned_value(b, i, max).map(|(_, end)| end)
}

/// [`unsigned`] with the number's value.
pub(crate) fn unsigned_value(b: &[u8], i: usize, max: u64) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut end = i;
    while let Some(d) = b.get(end).filter(|c| c.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        end += 1;
    }
    let leading_zero = end > i + 1 && b.get(i) == Some(&b'0');
    let fraction_or_exponent = matches!(b.get(end), Some(b'.' | b'e' | b'E'));
    (end > i && value <= max && !leading_zero && !fraction_or_exponent).then_some((value, end))
}

/// The offset after a `null` literal at `i`, if there is one.
pub(crate) fn null(b: &[u8], i: usize) -> Option<usize> {
    (b.get(i..i + 4) == Some(b"null")).then_some(i + 4)
}

pub(crate) fn ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}
