//! AWS event stream (`application/vnd.amazon.eventstream`) framing: an incremental
//! decoder and an encoder, host-free.
//!
//! A message is:
//!
//! ```text
//! total length u32 BE | headers length u32 BE | prelude CRC u32 BE   (the prelude, 12 bytes)
//! headers (headers length bytes) | payload | message CRC u32 BE
//! ```
//!
//! Both CRCs are CRC-32/ISO-HDLC (the zlib/gzip CRC): the prelude CRC covers the first
//! 8 bytes, the message CRC everything before it (prelude CRC included). A header is
//! `name length u8 | name | type u8 | value`, the value typed as in [`HeaderValue`].
//!
//! [`EventStreamDecoder`] takes the body in chunks split anywhere and keeps only the
//! incomplete frame. A CRC mismatch, an impossible length or a malformed header is an
//! [`EventStreamError`] (never a panic); after one the decoder reports that error for
//! every later call and decodes nothing more.

use std::fmt;

/// Default cap of one frame (the AWS limit of an event stream message: 16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Cap of the headers section of one frame (the AWS limit: 128 KiB).
pub const MAX_HEADERS_BYTES: usize = 128 * 1024;

const PRELUDE_LEN: usize = 12;
/// Prelude plus message CRC: a frame without headers and payload.
const MIN_FRAME_LEN: usize = PRELUDE_LEN + 4;

/// A typed header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Types 0 (true) and 1 (false); no value bytes.
    Bool(bool),
    /// Type 2: one signed byte.
    Byte(i8),
    /// Type 3: i16 BE.
    Short(i16),
    /// Type 4: i32 BE.
    Int(i32),
    /// Type 5: i64 BE.
    Long(i64),
    /// Type 6: u16 BE length, then the bytes.
    Bytes(&'a [u8]),
    /// Type 7: u16 BE length, then UTF-8.
    String(&'a str),
    /// Type 8: i64 BE, milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

impl HeaderValue<'_> {
    /// The string of a `String` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }

    fn type_id(&self) -> u8 {
        match self {
            HeaderValue::Bool(true) => 0,
            HeaderValue::Bool(false) => 1,
            HeaderValue::Byte(_) => 2,
            HeaderValue::Short(_) => 3,
            HeaderValue::Int(_) => 4,
            HeaderValue::Long(_) => 5,
            HeaderValue::Bytes(_) => 6,
            HeaderValue::String(_) => 7,
            HeaderValue::Timestamp(_) => 8,
            HeaderValue::Uuid(_) => 9,
        }
    }
}

/// One decoded message; borrows the decoder's buffer or the fed chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub headers: Vec<(&'a str, HeaderValue<'a>)>,
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&HeaderValue<'a>> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The first header named `name` when it is a string.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        match self.header(name) {
            Some(HeaderValue::String(s)) => Some(s),
            _ => None,
        }
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&'a str> {
        self.header_str(":message-type")
    }

    /// `:event-type` of an event (e.g. `contentBlockDelta`).
    pub fn event_type(&self) -> Option<&'a str> {
        self.header_str(":event-type")
    }

    /// `:exception-type` of an exception (e.g. `throttlingException`).
    pub fn exception_type(&self) -> Option<&'a str> {
        self.header_str(":exception-type")
    }

    /// `:content-type` of the payload (e.g. `application/json`).
    pub fn content_type(&self) -> Option<&'a str> {
        self.header_str(":content-type")
    }
}

/// A framing error. The stream cannot be resynchronised after one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStreamError {
    /// The prelude CRC does not match the first 8 bytes.
    PreludeCrc { expected: u32, computed: u32 },
    /// The message CRC does not match the frame.
    MessageCrc { expected: u32, computed: u32 },
    /// The total length is below the 16-byte minimum.
    FrameTooShort { total: u32 },
    /// The total length is above the decoder's cap.
    FrameTooLarge { total: u32, max: usize },
    /// The headers length does not fit in the frame (or exceeds 128 KiB).
    HeadersTooLong { headers: u32, total: u32 },
    /// A header is malformed (bad length, unknown type, invalid UTF-8).
    BadHeader(String),
    /// The body ended inside a frame (`pending` bytes of it were received).
    Truncated { pending: usize },
    /// [`encode_message`]: a name or value too long for its length field.
    TooLongToEncode(String),
}

impl fmt::Display for EventStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventStreamError::PreludeCrc { expected, computed } => write!(
                f,
                "event stream prelude CRC mismatch (frame says {expected:#010x}, computed {computed:#010x})"
            ),
            EventStreamError::MessageCrc { expected, computed } => write!(
                f,
                "event stream message CRC mismatch (frame says {expected:#010x}, computed {computed:#010x})"
            ),
            EventStreamError::FrameTooShort { total } => {
                write!(f, "event stream frame length {total} is below the minimum of 16")
            }
            EventStreamError::FrameTooLarge { total, max } => {
                write!(f, "event stream frame length {total} exceeds the limit of {max}")
            }
            EventStreamError::HeadersTooLong { headers, total } => write!(
                f,
                "event stream headers length {headers} does not fit a frame of {total} bytes"
            ),
            EventStreamError::BadHeader(m) => write!(f, "malformed event stream header: {m}"),
            EventStreamError::Truncated { pending } => write!(
                f,
                "event stream ended inside a frame ({pending} bytes of it received)"
            ),
            EventStreamError::TooLongToEncode(m) => write!(f, "cannot encode: {m}"),
        }
    }
}

impl std::error::Error for EventStreamError {}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

/// Incremental decoder of an event stream body.
#[derive(Debug)]
pub struct EventStreamDecoder {
    /// Bytes of the incomplete frame at the end of what was fed.
    pending: Vec<u8>,
    max_frame_bytes: usize,
    error: Option<EventStreamError>,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamDecoder {
    /// A decoder with the default 16 MiB frame cap.
    pub fn new() -> Self {
        Self::with_max_frame_bytes(DEFAULT_MAX_FRAME_BYTES)
    }

    /// A decoder refusing frames longer than `max` bytes (at least 16).
    pub fn with_max_frame_bytes(max: usize) -> Self {
        EventStreamDecoder {
            pending: Vec::new(),
            max_frame_bytes: max.max(MIN_FRAME_LEN),
            error: None,
        }
    }

    /// Decodes every frame completed by `chunk`, calling `on_message` for each in
    /// order. On an error the frames before it have been delivered; the error is
    /// returned now and by every later `feed`/`finish`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_message: impl FnMut(&Message<'_>),
    ) -> Result<(), EventStreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let result = self.feed_inner(chunk, &mut on_message);
        if let Err(e) = &result {
            self.error = Some(e.clone());
            self.pending = Vec::new();
        }
        result
    }

    /// Checks the end of the body: an error if a frame is incomplete (or an earlier
    /// error occurred).
    pub fn finish(&self) -> Result<(), EventStreamError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err(EventStreamError::Truncated {
                pending: self.pending.len(),
            })
        }
    }

    /// Bytes held for the incomplete frame.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The error that stopped the decoder, if any.
    pub fn error(&self) -> Option<&EventStreamError> {
        self.error.as_ref()
    }

    fn feed_inner(
        &mut self,
        chunk: &[u8],
        on_message: &mut impl FnMut(&Message<'_>),
    ) -> Result<(), EventStreamError> {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            // Complete the buffered frame with as few bytes as it needs.
            if self.pending.len() < PRELUDE_LEN {
                rest = self.take_into_pending(rest, PRELUDE_LEN);
                if self.pending.len() < PRELUDE_LEN {
                    return Ok(());
                }
            }
            let total = check_prelude(&self.pending, self.max_frame_bytes)?;
            rest = self.take_into_pending(rest, total);
            if self.pending.len() < total {
                return Ok(());
            }
            let frame = std::mem::take(&mut self.pending);
            decode_frame(&frame, on_message)?;
        }
        loop {
            if rest.is_empty() {
                return Ok(());
            }
            if rest.len() < PRELUDE_LEN {
                self.pending.extend_from_slice(rest);
                return Ok(());
            }
            let total = check_prelude(rest, self.max_frame_bytes)?;
            match rest.split_at_checked(total) {
                Some((frame, tail)) => {
                    decode_frame(frame, on_message)?;
                    rest = tail;
                }
                None => {
                    self.pending.extend_from_slice(rest);
                    return Ok(());
                }
            }
        }
    }

    /// Moves bytes from `rest` into `pending` until it holds `want` bytes; returns
    /// what is left of `rest`.
    fn take_into_pending<'c>(&mut self, rest: &'c [u8], want: usize) -> &'c [u8] {
        let need = want.saturating_sub(self.pending.len()).min(rest.len());
        let (head, tail) = rest.split_at_checked(need).unwrap_or((rest, &[]));
        self.pending.extend_from_slice(head);
        tail
    }
}

/// Validates the prelude at the start of `buf` (at least 12 bytes); returns the
/// total frame length.
fn check_prelude(buf: &[u8], max_frame: usize) -> Result<usize, EventStreamError> {
    let (Some(total), Some(headers), Some(expected), Some(head)) =
        (be_u32(buf, 0), be_u32(buf, 4), be_u32(buf, 8), buf.get(..8))
    else {
        return Err(EventStreamError::Truncated { pending: buf.len() });
    };
    let computed = crc32(head);
    if computed != expected {
        return Err(EventStreamError::PreludeCrc { expected, computed });
    }
    let total_len = usize::try_from(total).unwrap_or(usize::MAX);
    if total_len < MIN_FRAME_LEN {
        return Err(EventStreamError::FrameTooShort { total });
    }
    if total_len > max_frame {
        return Err(EventStreamError::FrameTooLarge {
            total,
            max: max_frame,
        });
    }
    let headers_len = usize::try_from(headers).unwrap_or(usize::MAX);
    if headers_len > total_len - MIN_FRAME_LEN || headers_len > MAX_HEADERS_BYTES {
        return Err(EventStreamError::HeadersTooLong { headers, total });
    }
    Ok(total_len)
}

/// Decodes one complete frame (prelude already checked) and hands it to `on_message`.
fn decode_frame(
    frame: &[u8],
    on_message: &mut impl FnMut(&Message<'_>),
) -> Result<(), EventStreamError> {
    let crc_at = frame.len().saturating_sub(4);
    let (body, crc) = frame
        .split_at_checked(crc_at)
        .ok_or(EventStreamError::Truncated {
            pending: frame.len(),
        })?;
    let expected = be_u32(crc, 0).ok_or(EventStreamError::Truncated {
        pending: frame.len(),
    })?;
    let computed = crc32(body);
    if computed != expected {
        return Err(EventStreamError::MessageCrc { expected, computed });
    }
    let headers_len = be_u32(frame, 4)
        .and_then(|h| usize::try_from(h).ok())
        .unwrap_or(usize::MAX);
    let headers_end = PRELUDE_LEN.saturating_add(headers_len);
    let (Some(header_bytes), Some(payload)) =
        (body.get(PRELUDE_LEN..headers_end), body.get(headers_end..))
    else {
        return Err(EventStreamError::HeadersTooLong {
            headers: u32::try_from(headers_len).unwrap_or(u32::MAX),
            total: u32::try_from(frame.len()).unwrap_or(u32::MAX),
        });
    };
    let headers = parse_headers(header_bytes)?;
    on_message(&Message { headers, payload });
    Ok(())
}

/// A cursor over header bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], EventStreamError> {
        match self.buf.split_at_checked(n) {
            Some((head, tail)) => {
                self.buf = tail;
                Ok(head)
            }
            None => Err(EventStreamError::BadHeader(format!(
                "{what} runs past the headers section"
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], EventStreamError> {
        let bytes = self.take(N, what)?;
        bytes
            .try_into()
            .map_err(|_| EventStreamError::BadHeader(format!("{what} has the wrong size")))
    }
}

fn parse_headers(bytes: &[u8]) -> Result<Vec<(&str, HeaderValue<'_>)>, EventStreamError> {
    let mut r = Reader { buf: bytes };
    let mut headers = Vec::new();
    while !r.buf.is_empty() {
        let [name_len] = r.array::<1>("header name length")?;
        if name_len == 0 {
            return Err(EventStreamError::BadHeader("empty header name".to_string()));
        }
        let name = std::str::from_utf8(r.take(usize::from(name_len), "header name")?)
            .map_err(|_| EventStreamError::BadHeader("header name is not UTF-8".to_string()))?;
        let [kind] = r.array::<1>("header type")?;
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(r.array::<1>("byte value")?)),
            3 => HeaderValue::Short(i16::from_be_bytes(r.array::<2>("short value")?)),
            4 => HeaderValue::Int(i32::from_be_bytes(r.array::<4>("int value")?)),
            5 => HeaderValue::Long(i64::from_be_bytes(r.array::<8>("long value")?)),
            6 | 7 => {
                let len = u16::from_be_bytes(r.array::<2>("value length")?);
                let data = r.take(usize::from(len), "header value")?;
                if kind == 6 {
                    HeaderValue::Bytes(data)
                } else {
                    HeaderValue::String(std::str::from_utf8(data).map_err(|_| {
                        EventStreamError::BadHeader(format!(
                            "string value of `{name}` is not UTF-8"
                        ))
                    })?)
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(r.array::<8>("timestamp value")?)),
            9 => HeaderValue::Uuid(r.array::<16>("uuid value")?),
            other => {
                return Err(EventStreamError::BadHeader(format!(
                    "unknown value type {other} of `{name}`"
                )))
            }
        };
        headers.push((name, value));
    }
    Ok(headers)
}

/// Encodes one message (for tests and mock servers). Fails when a header name is
/// empty or longer than 255 bytes, a string/bytes value is longer than 65,535 bytes,
/// or the frame would exceed 4 GiB.
pub fn encode_message(
    headers: &[(&str, HeaderValue<'_>)],
    payload: &[u8],
) -> Result<Vec<u8>, EventStreamError> {
    let mut h = Vec::new();
    for (name, value) in headers {
        let name_len = u8::try_from(name.len())
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                EventStreamError::TooLongToEncode(format!(
                    "header name of {} bytes (1 to 255 allowed)",
                    name.len()
                ))
            })?;
        h.push(name_len);
        h.extend_from_slice(name.as_bytes());
        h.push(value.type_id());
        match value {
            HeaderValue::Bool(_) => {}
            HeaderValue::Byte(v) => h.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Short(v) => h.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Int(v) => h.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Long(v) | HeaderValue::Timestamp(v) => {
                h.extend_from_slice(&v.to_be_bytes())
            }
            HeaderValue::Bytes(data) => push_with_len(&mut h, data, name)?,
            HeaderValue::String(s) => push_with_len(&mut h, s.as_bytes(), name)?,
            HeaderValue::Uuid(u) => h.extend_from_slice(u),
        }
    }
    let too_long = || EventStreamError::TooLongToEncode("frame longer than 4 GiB".to_string());
    let total = MIN_FRAME_LEN
        .checked_add(h.len())
        .and_then(|n| n.checked_add(payload.len()))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(too_long)?;
    let headers_len = u32::try_from(h.len()).map_err(|_| too_long())?;
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    Ok(out)
}

fn push_with_len(out: &mut Vec<u8>, data: &[u8], name: &str) -> Result<(), EventStreamError> {
    let len = u16::try_from(data.len()).map_err(|_| {
        EventStreamError::TooLongToEncode(format!(
            "value of `{name}` has {} bytes (65,535 allowed)",
            data.len()
        ))
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A random header: (name, (type id, bytes, number)).
    type ArbHeader = (String, (u8, Vec<u8>, i64));
    type ArbMessage = (Vec<ArbHeader>, Vec<u8>);
    type Vector<'a> = (&'a [u8], Vec<(&'a str, HeaderValue<'a>)>, &'a [u8]);

    /// An owned copy of a decoded message, for comparisons.
    type Owned = (Vec<(String, String)>, Vec<u8>);

    fn own(m: &Message<'_>) -> Owned {
        (
            m.headers
                .iter()
                .map(|(n, v)| (n.to_string(), format!("{v:?}")))
                .collect(),
            m.payload.to_vec(),
        )
    }

    fn decode_chunks(chunks: &[&[u8]]) -> (Vec<Owned>, Result<(), EventStreamError>) {
        let mut d = EventStreamDecoder::new();
        let mut got = Vec::new();
        for c in chunks {
            if let Err(e) = d.feed(c, |m| got.push(own(m))) {
                return (got, Err(e));
            }
        }
        let end = d.finish();
        (got, end)
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    // Test vectors of the AWS SDK for JavaScript v3 event stream marshaller.
    const EMPTY_MESSAGE: &[u8] = &[0, 0, 0, 16, 0, 0, 0, 0, 5, 194, 72, 235, 125, 152, 200, 255];
    const PAYLOAD_NO_HEADERS: &[u8] = &[
        0, 0, 0, 29, 0, 0, 0, 0, 253, 82, 140, 90, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114,
        39, 125, 195, 101, 57, 54,
    ];
    const PAYLOAD_ONE_STR_HEADER: &[u8] = &[
        0, 0, 0, 61, 0, 0, 0, 32, 7, 253, 131, 150, 12, 99, 111, 110, 116, 101, 110, 116, 45, 116,
        121, 112, 101, 7, 0, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111, 110, 47, 106, 115,
        111, 110, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 141, 156, 8, 177,
    ];
    const INT32_HEADER: &[u8] = &[
        0, 0, 0, 43, 0, 0, 0, 14, 52, 139, 236, 123, 8, 101, 118, 101, 110, 116, 45, 105, 100, 4,
        0, 0, 160, 12, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 211, 137, 2, 133,
    ];
    const INT32_HEADER_EVENT_TYPE: &[u8] = &[
        0, 0, 0, 45, 0, 0, 0, 16, 65, 196, 36, 184, 10, 101, 118, 101, 110, 116, 45, 116, 121, 112,
        101, 4, 0, 0, 160, 12, 123, 39, 102, 111, 111, 39, 58, 39, 98, 97, 114, 39, 125, 54, 244,
        128, 160,
    ];

    #[test]
    fn published_vectors_decode_and_re_encode() {
        let body = b"{'foo':'bar'}";
        let cases: &[Vector<'_>] = &[
            (EMPTY_MESSAGE, vec![], b""),
            (PAYLOAD_NO_HEADERS, vec![], body),
            (
                PAYLOAD_ONE_STR_HEADER,
                vec![("content-type", HeaderValue::String("application/json"))],
                body,
            ),
            (
                INT32_HEADER,
                vec![("event-id", HeaderValue::Int(0x0000_a00c))],
                body,
            ),
            (
                INT32_HEADER_EVENT_TYPE,
                vec![("event-type", HeaderValue::Int(40972))],
                body,
            ),
        ];
        for (encoded, headers, payload) in cases {
            let mut d = EventStreamDecoder::new();
            let mut seen = 0;
            d.feed(encoded, |m| {
                assert_eq!(&m.headers, headers);
                assert_eq!(m.payload, *payload);
                seen += 1;
            })
            .unwrap();
            d.finish().unwrap();
            assert_eq!(seen, 1);
            assert_eq!(&encode_message(headers, payload).unwrap(), encoded);
        }
    }

    #[test]
    fn published_corrupted_vectors_fail() {
        let mut corrupted_headers = PAYLOAD_ONE_STR_HEADER.to_vec();
        corrupted_headers[20] = 43; // "content+type"
        let mut corrupted_header_len = PAYLOAD_ONE_STR_HEADER.to_vec();
        corrupted_header_len[6] = 1;
        let mut corrupted_length = PAYLOAD_NO_HEADERS.to_vec();
        corrupted_length[0] = 1;
        let mut corrupted_payload = PAYLOAD_NO_HEADERS.to_vec();
        corrupted_payload[24] = 141;
        let (msgs, r) = decode_chunks(&[&corrupted_headers]);
        assert!(msgs.is_empty());
        assert!(
            matches!(r, Err(EventStreamError::MessageCrc { .. })),
            "{r:?}"
        );
        let (_, r) = decode_chunks(&[&corrupted_header_len]);
        assert!(
            matches!(r, Err(EventStreamError::PreludeCrc { .. })),
            "{r:?}"
        );
        let (_, r) = decode_chunks(&[&corrupted_length]);
        assert!(
            matches!(r, Err(EventStreamError::PreludeCrc { .. })),
            "{r:?}"
        );
        let (_, r) = decode_chunks(&[&corrupted_payload]);
        assert!(
            matches!(r, Err(EventStreamError::MessageCrc { .. })),
            "{r:?}"
        );
    }

    fn all_types_message() -> Vec<u8> {
        encode_message(
            &[
                (":event-type", HeaderValue::String("contentBlockDelta")),
                ("t", HeaderValue::Bool(true)),
                ("f", HeaderValue::Bool(false)),
                ("b", HeaderValue::Byte(-7)),
                ("s", HeaderValue::Short(-300)),
                ("i", HeaderValue::Int(i32::MIN)),
                ("l", HeaderValue::Long(i64::MAX)),
                ("bytes", HeaderValue::Bytes(&[0, 255, 1])),
                ("ts", HeaderValue::Timestamp(1_700_000_000_123)),
                ("u", HeaderValue::Uuid([7; 16])),
            ],
            br#"{"delta":{"text":"hi"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn all_header_types_and_helpers() {
        let frame = all_types_message();
        let mut d = EventStreamDecoder::new();
        let mut n = 0;
        d.feed(&frame, |m| {
            n += 1;
            assert_eq!(m.event_type(), Some("contentBlockDelta"));
            assert_eq!(m.header_str("t"), None);
            assert_eq!(m.header("t"), Some(&HeaderValue::Bool(true)));
            assert_eq!(m.header("f"), Some(&HeaderValue::Bool(false)));
            assert_eq!(m.header("b"), Some(&HeaderValue::Byte(-7)));
            assert_eq!(m.header("s"), Some(&HeaderValue::Short(-300)));
            assert_eq!(m.header("i"), Some(&HeaderValue::Int(i32::MIN)));
            assert_eq!(m.header("l"), Some(&HeaderValue::Long(i64::MAX)));
            assert_eq!(m.header("bytes"), Some(&HeaderValue::Bytes(&[0, 255, 1])));
            assert_eq!(
                m.header("ts"),
                Some(&HeaderValue::Timestamp(1_700_000_000_123))
            );
            assert_eq!(m.header("u"), Some(&HeaderValue::Uuid([7; 16])));
            assert_eq!(m.message_type(), None);
            assert_eq!(m.payload, br#"{"delta":{"text":"hi"}}"#);
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn length_limits_and_truncation() {
        // Total length below the minimum, with a valid prelude CRC.
        let mut short = vec![0, 0, 0, 8, 0, 0, 0, 0];
        short.extend_from_slice(&crc32(&short).to_be_bytes());
        assert!(matches!(
            decode_chunks(&[&short]).1,
            Err(EventStreamError::FrameTooShort { total: 8 })
        ));
        // Absurd total length.
        let mut huge = vec![0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0];
        huge.extend_from_slice(&crc32(&huge).to_be_bytes());
        assert!(matches!(
            decode_chunks(&[&huge]).1,
            Err(EventStreamError::FrameTooLarge { .. })
        ));
        // Headers longer than the frame.
        let mut hdr = vec![0, 0, 0, 20, 0, 0, 0, 5];
        hdr.extend_from_slice(&crc32(&hdr).to_be_bytes());
        assert!(matches!(
            decode_chunks(&[&hdr]).1,
            Err(EventStreamError::HeadersTooLong { .. })
        ));
        // A cap below the frame size.
        let mut d = EventStreamDecoder::with_max_frame_bytes(20);
        assert!(matches!(
            d.feed(PAYLOAD_NO_HEADERS, |_| {}),
            Err(EventStreamError::FrameTooLarge { total: 29, max: 20 })
        ));
        // Truncation is reported by finish, with the bytes held.
        let mut d = EventStreamDecoder::new();
        d.feed(&PAYLOAD_NO_HEADERS[..20], |_| panic!("no message yet"))
            .unwrap();
        assert_eq!(d.pending_len(), 20);
        assert_eq!(d.finish(), Err(EventStreamError::Truncated { pending: 20 }));
        // Header value running past the section (valid CRCs around it).
        let bad = {
            let headers = [3u8, b'a', b'b', b'c', 7, 0, 50, b'x'];
            let total = u32::try_from(16 + headers.len()).unwrap();
            let mut f = total.to_be_bytes().to_vec();
            f.extend_from_slice(&u32::try_from(headers.len()).unwrap().to_be_bytes());
            f.extend_from_slice(&crc32(&f).to_be_bytes());
            f.extend_from_slice(&headers);
            f.extend_from_slice(&crc32(&f).to_be_bytes());
            f
        };
        assert!(matches!(
            decode_chunks(&[&bad]).1,
            Err(EventStreamError::BadHeader(_))
        ));
    }

    #[test]
    fn stops_after_an_error() {
        let mut bad = PAYLOAD_NO_HEADERS.to_vec();
        bad[24] ^= 1;
        let mut d = EventStreamDecoder::new();
        let mut n = 0;
        let e = d
            .feed(EMPTY_MESSAGE, |_| n += 1)
            .and(d.feed(&bad, |_| n += 1));
        assert!(e.is_err());
        assert_eq!(n, 1);
        // A valid frame afterwards is not decoded; the same error comes back.
        assert_eq!(d.feed(EMPTY_MESSAGE, |_| n += 1), e);
        assert_eq!(d.finish(), e);
        assert_eq!(n, 1);
        assert_eq!(d.error(), e.as_ref().err());
    }

    #[test]
    fn encode_refuses_what_it_cannot_frame() {
        assert!(encode_message(&[("", HeaderValue::Bool(true))], b"").is_err());
        let long = "n".repeat(256);
        assert!(encode_message(&[(long.as_str(), HeaderValue::Bool(true))], b"").is_err());
        let big = vec![0u8; 70_000];
        assert!(encode_message(&[("x", HeaderValue::Bytes(&big))], b"").is_err());
    }

    #[test]
    fn every_two_way_split_decodes_alike() {
        let mut stream = all_types_message();
        stream.extend_from_slice(EMPTY_MESSAGE);
        stream.extend_from_slice(PAYLOAD_ONE_STR_HEADER);
        let (whole, r) = decode_chunks(&[&stream]);
        r.unwrap();
        assert_eq!(whole.len(), 3);
        for i in 0..=stream.len() {
            let (a, b) = stream.split_at(i);
            let (got, r) = decode_chunks(&[a, b]);
            r.unwrap();
            assert_eq!(got, whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes).0, whole);
    }

    fn arb_value() -> impl Strategy<Value = (u8, Vec<u8>, i64)> {
        (
            0u8..10,
            prop::collection::vec(any::<u8>(), 0..40),
            any::<i64>(),
        )
    }

    fn arb_message() -> impl Strategy<Value = ArbMessage> {
        (
            prop::collection::vec(("[:a-z-]{1,20}", arb_value()), 0..6),
            prop::collection::vec(any::<u8>(), 0..200),
        )
    }

    fn encode_arb(headers: &[ArbHeader], payload: &[u8]) -> Vec<u8> {
        let strings: Vec<String> = headers
            .iter()
            .map(|(_, (_, b, _))| String::from_utf8_lossy(b).into_owned())
            .collect();
        let values: Vec<(&str, HeaderValue<'_>)> = headers
            .iter()
            .zip(&strings)
            .map(|((name, (kind, bytes, n)), s)| {
                let v = match kind {
                    0 => HeaderValue::Bool(true),
                    1 => HeaderValue::Bool(false),
                    2 => HeaderValue::Byte(*n as i8),
                    3 => HeaderValue::Short(*n as i16),
                    4 => HeaderValue::Int(*n as i32),
                    5 => HeaderValue::Long(*n),
                    6 => HeaderValue::Bytes(bytes),
                    7 => HeaderValue::String(s),
                    8 => HeaderValue::Timestamp(*n),
                    _ => HeaderValue::Uuid([*n as u8; 16]),
                };
                (name.as_str(), v)
            })
            .collect();
        encode_message(&values, payload).unwrap()
    }

    proptest! {
        #[test]
        fn random_splits_decode_identically(
            msgs in prop::collection::vec(arb_message(), 1..5),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut stream = Vec::new();
            for (h, p) in &msgs {
                stream.extend_from_slice(&encode_arb(h, p));
            }
            let (whole, r) = decode_chunks(&[&stream]);
            prop_assert!(r.is_ok());
            prop_assert_eq!(whole.len(), msgs.len());
            for ((got_h, got_p), (h, p)) in whole.iter().zip(&msgs) {
                prop_assert_eq!(got_p, p);
                let names: Vec<&String> = h.iter().map(|(n, _)| n).collect();
                let got_names: Vec<&String> = got_h.iter().map(|(n, _)| n).collect();
                prop_assert_eq!(got_names, names);
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&stream[last..p]);
                last = p;
            }
            chunks.push(&stream[last..]);
            let (got, r) = decode_chunks(&chunks);
            prop_assert!(r.is_ok());
            prop_assert_eq!(got, whole);
        }

        #[test]
        fn any_single_byte_corruption_is_an_error(
            msg in arb_message(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            chunk in 1usize..40,
        ) {
            let mut frame = encode_arb(&msg.0, &msg.1);
            let i = at.index(frame.len());
            frame[i] ^= flip;
            let chunks: Vec<&[u8]> = frame.chunks(chunk).collect();
            let (got, r) = decode_chunks(&chunks);
            prop_assert!(r.is_err());
            prop_assert!(got.is_empty());
        }

        #[test]
        fn garbage_never_panics(
            bytes in prop::collection::vec(any::<u8>(), 0..600),
            chunk in 1usize..64,
        ) {
            let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
            let _ = decode_chunks(&chunks);
            // Garbage after a valid prelude: valid lengths and prelude CRC, random rest.
            let total = u32::try_from(bytes.len() + 16).unwrap();
            let headers = u32::try_from(bytes.len() / 2).unwrap();
            let mut f = total.to_be_bytes().to_vec();
            f.extend_from_slice(&headers.to_be_bytes());
            f.extend_from_slice(&crc32(&f).to_be_bytes());
            f.extend_from_slice(&bytes);
            let crc = crc32(&f);
            f.extend_from_slice(&crc.to_be_bytes());
            let _ = decode_chunks(&[&f]);
        }
    }
}
