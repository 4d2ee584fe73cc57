//! The few host capabilities the request logic needs. `filter` implements this trait
//! with proxy-wasm host calls; unit tests implement it with plain data.

pub use crate::fastjson::placement::PlacedBuf;
pub use crate::quota::local::SharedStore;

/// A rewritten request body, as the fewest bytes to hand to Envoy. Envoy can replace the
/// first bytes of a buffered body or append to it, so a large body's unchanged end
/// (`Head`, e.g. `model` first) or start (`Tail`, e.g. `model` after `messages`) is never
/// copied into or out of the Wasm VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEdit {
    /// Replace the first `replace` bytes with `with`; the rest stays.
    Head { replace: usize, with: Vec<u8> },
    /// Keep the first `keep` bytes, drop the rest and append `append`.
    Tail { keep: usize, append: Vec<u8> },
}

impl BodyEdit {
    /// The two pieces the edited body is made of: the new bytes, the old ones kept, in order.
    pub fn pieces<'a>(&'a self, body: &'a [u8]) -> [&'a [u8]; 2] {
        match self {
            BodyEdit::Head { replace, with } => [with, body.get(*replace..).unwrap_or_default()],
            BodyEdit::Tail { keep, append } => [body.get(..*keep).unwrap_or(body), append],
        }
    }

    /// Length of the body after the edit.
    pub fn new_len(&self, old_len: usize) -> usize {
        match self {
            BodyEdit::Head { replace, with } => old_len.saturating_sub(*replace) + with.len(),
            BodyEdit::Tail { keep, append } => (*keep).min(old_len) + append.len(),
        }
    }

    /// A replacement of the whole body (what translations produce).
    pub fn whole(body: Vec<u8>, old_len: usize) -> Self {
        BodyEdit::Head {
            replace: old_len,
            with: body,
        }
    }

    /// The new body when the edit replaces all of it.
    pub fn as_whole(&self, old_len: usize) -> Option<&[u8]> {
        match self {
            BodyEdit::Head { replace, with } if *replace >= old_len => Some(with),
            _ => None,
        }
    }

    /// The whole edited body.
    pub fn apply(&self, body: &[u8]) -> Vec<u8> {
        let [a, b] = self.pieces(body);
        [a, b].concat()
    }
}

/// Kind of an Envoy metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Histogram,
}

pub trait Host {
    /// A request header (lowercase name), `None` when absent.
    fn request_header(&self, name: &str) -> Option<String>;
    fn set_request_header(&mut self, name: &str, value: &str);
    fn remove_request_header(&mut self, name: &str);
    /// Applies `edit` to the buffered request body, whose bytes as read are `body`; each
    /// host moves as few bytes as its API allows.
    fn edit_request_body(&mut self, body: &[u8], edit: &BodyEdit);
    /// Asks Envoy to pick the route again after routing headers changed.
    fn clear_route_cache(&mut self);
    /// Ends the request with a local reply (no upstream call).
    fn send_reply(&mut self, status: u32, body: &[u8], headers: &[(&str, &str)]);
    /// Publishes a value to access logs (Envoy filter state `wasm.<name>`).
    fn set_attribute(&mut self, name: &str, value: &[u8]);
    /// Wall-clock time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Defines (or finds) a metric; `None` when the host refuses the name.
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment_metric(&mut self, id: u32, delta: u64);
    fn record_metric(&mut self, id: u32, value: u64);
    /// An Envoy attribute (e.g. `metadata.filter_metadata.<filter>.<key>`), serialised
    /// as the host returns it.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// Process-wide key/value store with compare-and-swap (all workers of one Envoy).
    fn shared_data(&mut self) -> &mut dyn SharedStore;
    /// Starts a unary gRPC call; its answer arrives through the filter's gRPC callback.
    /// `None` when the call could not be started.
    fn dispatch_grpc(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Option<u32>;
    /// Lets a request held by `Flow::Pause` go on.
    fn resume_request(&mut self);
}

/// Body and response access, kept apart from `Host` so request-only code stays small.
pub trait BodyHost: Host {
    /// The buffered request body (first `len` bytes).
    fn request_body(&self, len: usize) -> Option<PlacedBuf>;
    /// The current response body chunk (first `len` bytes).
    fn response_body(&self, len: usize) -> Option<PlacedBuf>;
    fn response_header(&self, name: &str) -> Option<String>;
    fn set_response_header(&mut self, name: &str, value: &str);
    fn remove_response_header(&mut self, name: &str);
    /// Replaces the current response body chunk.
    fn replace_response_body(&mut self, body: &[u8]);
}

/// An in-memory host for unit tests of the request logic.
#[cfg(test)]
pub mod fake {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Reply {
        pub status: u32,
        pub body: Vec<u8>,
        pub headers: Vec<(String, String)>,
    }

    #[derive(Default)]
    pub struct FakeHost {
        pub request_headers: BTreeMap<String, String>,
        pub response_headers: BTreeMap<String, String>,
        pub request_body: Vec<u8>,
        /// The current response chunk.
        pub response_chunk: Vec<u8>,
        pub reply: Option<Reply>,
        pub attributes: BTreeMap<String, Vec<u8>>,
        pub route_cache_cleared: usize,
        pub now: u64,
        pub metric_names: Vec<(MetricKind, String)>,
        pub counters: HashMap<String, u64>,
        pub histograms: HashMap<String, Vec<u64>>,
        pub properties: HashMap<String, Vec<u8>>,
        pub store: crate::quota::local::mem::MemStore,
        /// (cluster, service, method, message, timeout_ms) of every gRPC call started.
        pub grpc_calls: Vec<(String, String, String, Vec<u8>, u64)>,
        pub resumed: usize,
    }

    impl FakeHost {
        pub fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Self {
            let mut h = FakeHost::default();
            h.request_headers.insert(":method".into(), method.into());
            h.request_headers.insert(":path".into(), path.into());
            for (k, v) in headers {
                h.request_headers.insert((*k).into(), (*v).into());
            }
            h
        }

        pub fn counter(&self, name: &str) -> u64 {
            self.counters.get(name).copied().unwrap_or(0)
        }
    }

    impl Host for FakeHost {
        fn request_header(&self, name: &str) -> Option<String> {
            self.request_headers.get(name).cloned()
        }
        fn set_request_header(&mut self, name: &str, value: &str) {
            self.request_headers.insert(name.into(), value.into());
        }
        fn remove_request_header(&mut self, name: &str) {
            self.request_headers.remove(name);
        }
        fn edit_request_body(&mut self, body: &[u8], edit: &BodyEdit) {
            assert_eq!(body, self.request_body.as_slice(), "the body as read");
            self.request_body = edit.apply(body);
        }
        fn clear_route_cache(&mut self) {
            self.route_cache_cleared += 1;
        }
        fn send_reply(&mut self, status: u32, body: &[u8], headers: &[(&str, &str)]) {
            self.reply = Some(Reply {
                status,
                body: body.to_vec(),
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            });
        }
        fn set_attribute(&mut self, name: &str, value: &[u8]) {
            self.attributes.insert(name.into(), value.to_vec());
        }
        fn now_ns(&self) -> u64 {
            self.now
        }
        fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
            // Hosts that define metric families up front need every name to be one.
            assert!(
                crate::metrics::split_name(kind, name).is_some(),
                "metric {name:?} ({kind:?}) is not in metrics::FAMILIES"
            );
            self.metric_names.push((kind, name.into()));
            u32::try_from(self.metric_names.len() - 1).ok()
        }
        fn increment_metric(&mut self, id: u32, delta: u64) {
            let name = self.metric_names[id as usize].1.clone();
            *self.counters.entry(name).or_default() += delta;
        }
        fn record_metric(&mut self, id: u32, value: u64) {
            let name = self.metric_names[id as usize].1.clone();
            self.histograms.entry(name).or_default().push(value);
        }
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.properties.get(&path.join(".")).cloned()
        }
        fn shared_data(&mut self) -> &mut dyn SharedStore {
            &mut self.store
        }
        fn dispatch_grpc(
            &mut self,
            cluster: &str,
            service: &str,
            method: &str,
            message: &[u8],
            timeout_ms: u64,
        ) -> Option<u32> {
            self.grpc_calls.push((
                cluster.into(),
                service.into(),
                method.into(),
                message.to_vec(),
                timeout_ms,
            ));
            u32::try_from(self.grpc_calls.len()).ok()
        }
        fn resume_request(&mut self) {
            self.resumed += 1;
        }
    }

    impl BodyHost for FakeHost {
        fn request_body(&self, len: usize) -> Option<PlacedBuf> {
            let bytes: Vec<u8> = self.request_body.iter().take(len).copied().collect();
            Some(bytes.into())
        }
        fn response_body(&self, len: usize) -> Option<PlacedBuf> {
            let bytes: Vec<u8> = self.response_chunk.iter().take(len).copied().collect();
            Some(bytes.into())
        }
        fn response_header(&self, name: &str) -> Option<String> {
            self.response_headers.get(name).cloned()
        }
        fn set_response_header(&mut self, name: &str, value: &str) {
            self.response_headers.insert(name.into(), value.into());
        }
        fn remove_response_header(&mut self, name: &str) {
            self.response_headers.remove(name);
        }
        fn replace_response_body(&mut self, body: &[u8]) {
            self.response_chunk = body.to_vec();
        }
    }
}
