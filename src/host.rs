//! The few host capabilities the request logic needs. `filter` implements this trait
//! with proxy-wasm host calls; unit tests implement it with plain data.

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
    /// Replaces the whole buffered request body.
    fn replace_request_body(&mut self, body: &[u8]);
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
}

/// Body and response access, kept apart from `Host` so request-only code stays small.
pub trait BodyHost: Host {
    /// The buffered request body (first `len` bytes).
    fn request_body(&self, len: usize) -> Option<Vec<u8>>;
    /// The current response body chunk (first `len` bytes).
    fn response_body(&self, len: usize) -> Option<Vec<u8>>;
    fn response_header(&self, name: &str) -> Option<String>;
}
