//! Incremental Server-Sent Events parser (host-free).
//!
//! Feed body chunks as they arrive, split anywhere (even inside a UTF-8 character
//! or a `\r\n`); each complete event is handed to the callback as `(event, data)`,
//! `event` being the `event:` field (empty when absent) and `data` the `data:`
//! lines joined by `\n`. Comment lines (`:`), `id:` and `retry:` are ignored.

/// Longest line kept while waiting for its end; a longer line is dropped, so a
/// misbehaving upstream cannot grow the buffer without bound.
const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    overflow: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk of the stream, calling `on_event` for every event completed by it.
    pub fn push(&mut self, bytes: &[u8], mut on_event: impl FnMut(&str, &str)) {
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            if !self.overflow {
                self.line.extend_from_slice(head);
            }
            rest = tail.get(1..).unwrap_or_default();
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if self.overflow {
                self.overflow = false;
            } else {
                self.process_line(&line, &mut on_event);
            }
        }
        if !self.overflow {
            if self.line.len().saturating_add(rest.len()) > MAX_LINE {
                self.line.clear();
                self.overflow = true;
            } else {
                self.line.extend_from_slice(rest);
            }
        }
    }

    /// Ends the stream: a last event not followed by a blank line is still delivered.
    pub fn finish(&mut self, mut on_event: impl FnMut(&str, &str)) {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !line.is_empty() && !self.overflow {
            self.process_line(&line, &mut on_event);
        }
        self.overflow = false;
        self.dispatch(&mut on_event);
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(&str, &str)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(0) => return, // comment
            Some(i) => {
                let value = line.get(i + 1..).unwrap_or_default();
                (
                    line.get(..i).unwrap_or_default(),
                    value.strip_prefix(' ').unwrap_or(value),
                )
            }
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(&str, &str)) {
        if self.has_data {
            on_event(&self.event, &self.data);
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<(String, String)> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, |e, d| out.push((e.to_string(), d.to_string())));
        }
        p.finish(|e, d| out.push((e.to_string(), d.to_string())));
        out
    }

    #[test]
    fn events_and_data() {
        let s = b"event: ping\ndata: {}\n\n: comment\ndata: a\ndata: b\n\ndata: [DONE]\n\n";
        assert_eq!(
            collect(&[s]),
            vec![
                ("ping".into(), "{}".into()),
                ("".into(), "a\nb".into()),
                ("".into(), "[DONE]".into())
            ]
        );
    }

    #[test]
    fn split_anywhere_and_crlf() {
        let s = "event: x\r\ndata: h\u{e9}llo\r\n\r\ndata: tail".as_bytes();
        let whole = collect(&[s]);
        assert_eq!(
            whole,
            vec![
                ("x".into(), "h\u{e9}llo".into()),
                ("".into(), "tail".into())
            ]
        );
        for i in 0..s.len() {
            let (a, b) = s.split_at(i);
            assert_eq!(collect(&[a, b]), whole, "split at {i}");
        }
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(collect(&[b"event: x\n\n"]).is_empty());
    }
}
