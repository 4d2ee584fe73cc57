//! The few pieces of the protobuf wire format the quota code needs, by hand (no codegen):
//! varints, length-delimited fields, and a reader that skips unknown fields.
//!
//! Every read is bounds-checked; malformed input is a `ProtoError`, never a panic.

use std::fmt;

/// Wire types (<https://protobuf.dev/programming-guides/encoding/>).
pub const VARINT: u8 = 0;
pub const I64: u8 = 1;
pub const LEN: u8 = 2;
pub const I32: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub &'static str);

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed protobuf: {}", self.0)
    }
}

// ---------------------------------------------------------------------------- encoding

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

/// A varint field; proto3 leaves default (zero) values out, and so do we.
pub fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_tag(out, field, VARINT);
        put_varint(out, v);
    }
}

/// A length-delimited field (string, bytes or embedded message), written even when empty
/// (an empty embedded message is still "present").
pub fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A string field; proto3 leaves the empty string out.
pub fn put_string(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(out, field, s.as_bytes());
    }
}

// ---------------------------------------------------------------------------- decoding

/// One decoded field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// Iterates over the fields of one message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn byte(&mut self) -> Result<u8, ProtoError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(ProtoError("truncated varint"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(ProtoError("varint overflows 64 bits"));
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ProtoError("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(ProtoError("length overflows"))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(ProtoError("field runs past the end of the message"))?;
        self.pos = end;
        Ok(s)
    }

    /// The next field as (field number, value); `None` at the end of the message.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u32, Value<'a>)>, ProtoError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| ProtoError("field number too large"))?;
        if field == 0 {
            return Err(ProtoError("field number 0"));
        }
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            I64 => {
                let a: [u8; 8] = self
                    .take(8)?
                    .try_into()
                    .map_err(|_| ProtoError("fixed64"))?;
                Value::Fixed64(u64::from_le_bytes(a))
            }
            LEN => {
                let n =
                    usize::try_from(self.varint()?).map_err(|_| ProtoError("length too large"))?;
                Value::Bytes(self.take(n)?)
            }
            I32 => {
                let a: [u8; 4] = self
                    .take(4)?
                    .try_into()
                    .map_err(|_| ProtoError("fixed32"))?;
                Value::Fixed32(u32::from_le_bytes(a))
            }
            _ => {
                return Err(ProtoError(
                    "unsupported wire type (groups are not used here)",
                ))
            }
        };
        Ok(Some((field, value)))
    }
}

impl Value<'_> {
    pub fn as_u64(self) -> Result<u64, ProtoError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(ProtoError("expected a varint")),
        }
    }

    pub fn as_u32(self) -> Result<u32, ProtoError> {
        // proto3 uint32/enum: the value is a varint; larger values are truncated by
        // protobuf runtimes, we refuse them instead.
        u32::try_from(self.as_u64()?).map_err(|_| ProtoError("uint32 out of range"))
    }

    pub fn as_bytes(&self) -> Result<&[u8], ProtoError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(ProtoError("expected a length-delimited field")),
        }
    }

    pub fn as_str(&self) -> Result<&str, ProtoError> {
        std::str::from_utf8(self.as_bytes()?).map_err(|_| ProtoError("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_tag(&mut out, 3, VARINT);
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.next().unwrap(), Some((3, Value::Varint(v))));
            assert_eq!(r.next().unwrap(), None);
        }
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: &[&[u8]] = &[
            &[0x08],             // varint field without value
            &[0x0a, 0x05, b'a'], // length past the end
            &[0x0b],             // group start (wire type 3)
            &[0x00, 0x01],       // field number 0
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ], // > 64 bits
            &[0x09, 1, 2, 3],    // truncated fixed64
            &[0x0d, 1, 2],       // truncated fixed32
        ];
        for c in cases {
            let mut r = Reader::new(c);
            assert!(r.next().is_err(), "{c:?}");
        }
    }

    #[test]
    fn fixed_fields_and_skipping() {
        let mut out = Vec::new();
        put_tag(&mut out, 1, I64);
        out.extend_from_slice(&7u64.to_le_bytes());
        put_tag(&mut out, 2, I32);
        out.extend_from_slice(&9u32.to_le_bytes());
        put_string(&mut out, 3, "hé");
        put_string(&mut out, 4, "");
        put_uint(&mut out, 5, 0);
        let mut r = Reader::new(&out);
        assert_eq!(r.next().unwrap(), Some((1, Value::Fixed64(7))));
        assert_eq!(r.next().unwrap(), Some((2, Value::Fixed32(9))));
        let (f, v) = r.next().unwrap().unwrap();
        assert_eq!((f, v.as_str().unwrap()), (3, "hé"));
        assert_eq!(r.next().unwrap(), None);
        assert!(Value::Varint(1).as_bytes().is_err());
        assert!(Value::Varint(u64::from(u32::MAX) + 1).as_u32().is_err());
        assert!(Value::Bytes(&[0xff]).as_str().is_err());
    }
}
