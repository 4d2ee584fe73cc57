//! Long text members written fast: `#[serde(serialize_with = "text::long")]`.
//!
//! serde_json escapes a string one byte at a time through a lookup table, about eight
//! instructions per byte; a translated 4 KB prompt spent more than half its
//! translation there. A long string is instead escaped here, exactly as serde_json
//! escapes it, finding the bytes that need an escape 16 bytes per step (Wasm SIMD; eight
//! elsewhere) and copying the runs between them, and handed to the serializer as a
//! [`RawValue`]. serde_json checks a raw value once more before accepting it (its own
//! fast string scan), which is what the hand-off costs; short strings, where that and
//! the allocation would cost more than they save, go the usual way.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// Strings shorter than this are serialised by serde_json directly.
const LONG: usize = 128;

/// `serialize_with` for a text member (`String`).
pub fn long<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    if text.len() < LONG {
        return serializer.serialize_str(text);
    }
    match RawValue::from_string(quoted(text)) {
        Ok(raw) => raw.serialize(serializer),
        // Unreachable (`quoted` writes valid JSON); the slow way is still right.
        Err(_) => serializer.serialize_str(text),
    }
}

/// `serialize_with` for an optional text member (`Option<String>`, skipped when `None`).
pub fn long_opt<S: Serializer>(text: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match text {
        Some(t) => long(t, serializer),
        None => serializer.serialize_none(),
    }
}

/// `text` as a JSON string literal, byte for byte as serde_json writes it: `"` and `\`
/// escaped, `\b \f \n \r \t` by their short forms, other control characters as
/// `\u00xx`, everything else (non-ASCII and DEL included) as is.
pub fn quoted(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 16 + 2);
    out.push('"');
    let mut i = 0;
    loop {
        let stop = crate::fastjson::scan::string_stop(bytes, i);
        // `stop` is at an ASCII byte or the end: a char boundary.
        out.push_str(text.get(i..stop).unwrap_or_default());
        let Some(&b) = bytes.get(stop) else { break };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                out.push_str("\\u00");
                for nibble in [b >> 4, b & 0xf] {
                    out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                }
            }
        }
        i = stop + 1;
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Doc<'a> {
        #[serde(serialize_with = "long")]
        text: &'a str,
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "plain",
            "quote \" backslash \\ slash / tab \t nl \n cr \r bs \u{8} ff \u{c}",
            "\u{0}\u{1}\u{1f} del \u{7f} é 漢字 🦀",
        ] {
            assert_eq!(quoted(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn long_and_short_members_serialise_identically() {
        for n in [0, LONG - 1, LONG, 5000] {
            let text = "word \"q\" \\ \n".repeat(n / 12 + 1);
            let text = &text[..n];
            let expected = serde_json::json!({ "text": text }).to_string();
            assert_eq!(serde_json::to_string(&Doc { text }).unwrap(), expected);
            // A serializer other than serde_json's writer gets the same value.
            assert_eq!(
                serde_json::to_value(Doc { text }).unwrap(),
                serde_json::json!({ "text": text })
            );
        }
    }

    proptest! {
        #[test]
        fn quoted_is_serde_jsons_literal(s in "\\PC*|[\\x00-\\x7f]{0,300}") {
            prop_assert_eq!(quoted(&s), serde_json::to_string(&s).unwrap());
        }
    }
}
