//! A local copy of a header map, so the filter reads all request headers with one host
//! call and writes only what changes.
//!
//! Every host call costs microseconds in Envoy's V8 runtime (`bench/probe.py`): reading
//! the map once and answering lookups here replaces one call per header read, and knowing
//! what is present skips removals of absent headers and writes of unchanged values.

/// Header names and values as Envoy holds them (lowercase names, raw value bytes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderSnapshot {
    pairs: Vec<(String, Vec<u8>)>,
}

/// What a write needs on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The host already holds this: no call needed.
    Unchanged,
    /// The host must be told.
    Write,
}

impl HeaderSnapshot {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        HeaderSnapshot { pairs }
    }

    /// The first value of `name` (lowercase), with invalid UTF-8 replaced: header values
    /// may carry any byte, and a lossy read never fails.
    pub fn get(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// Sets `name` to the single value `value` (as Envoy's replace does).
    pub fn set(&mut self, name: &str, value: &str) -> Change {
        let mut same = 0;
        let mut other = 0;
        for (k, v) in &self.pairs {
            if k == name {
                if v.as_slice() == value.as_bytes() {
                    same += 1;
                } else {
                    other += 1;
                }
            }
        }
        if same == 1 && other == 0 {
            return Change::Unchanged;
        }
        self.pairs.retain(|(k, _)| k != name);
        self.pairs
            .push((name.to_string(), value.as_bytes().to_vec()));
        Change::Write
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) -> Change {
        let before = self.pairs.len();
        self.pairs.retain(|(k, _)| k != name);
        if self.pairs.len() == before {
            Change::Unchanged
        } else {
            Change::Write
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(pairs: &[(&str, &[u8])]) -> HeaderSnapshot {
        HeaderSnapshot::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
        )
    }

    #[test]
    fn reads_first_value_and_tolerates_any_byte() {
        let s = snap(&[(":path", b"/v1/chat"), ("x", b"caf\xe9"), ("x", b"second")]);
        assert_eq!(s.get(":path").as_deref(), Some("/v1/chat"));
        assert_eq!(s.get("x").as_deref(), Some("caf\u{fffd}"));
        assert_eq!(s.get("absent"), None);
    }

    #[test]
    fn writes_only_what_changes() {
        let mut s = snap(&[(":path", b"/v1/chat"), ("authorization", b"Bearer c")]);
        assert_eq!(s.set(":path", "/v1/chat"), Change::Unchanged);
        assert_eq!(s.set(":path", "/openai/v1/chat"), Change::Write);
        assert_eq!(s.get(":path").as_deref(), Some("/openai/v1/chat"));
        assert_eq!(s.remove("x-api-key"), Change::Unchanged);
        assert_eq!(s.remove("authorization"), Change::Write);
        assert_eq!(s.get("authorization"), None);
        assert_eq!(s.remove("authorization"), Change::Unchanged);
        assert_eq!(s.set("x-new", "1"), Change::Write);
        assert_eq!(s.get("x-new").as_deref(), Some("1"));
    }

    #[test]
    fn setting_a_repeated_header_replaces_every_value() {
        let mut s = snap(&[("x", b"a"), ("x", b"a")]);
        assert_eq!(s.set("x", "a"), Change::Write);
        assert_eq!(s, snap(&[("x", b"a")]));
    }
}
