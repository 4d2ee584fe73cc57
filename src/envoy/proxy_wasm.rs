//! proxy-wasm glue: the only module that calls proxy-wasm host functions. Each root
//! callback hands over to `flow::root::RootFlow` (through `RootHost`, implemented here by
//! `EnvoyRoot`), each request callback to `flow::RequestFlow` (through the `Host` traits).

use crate::envoy::headers::{Change, HeaderSnapshot};
use crate::flow::root::{RootFlow, RootHost};
use crate::flow::{Flow, RequestFlow};
use crate::host::{BodyEdit, BodyHost, Host, MetricKind, PlacedBuf, SharedStore};
use crate::quota::local::CasMismatch;
use log::{error, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
use std::cell::OnceCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The root context: hands its callbacks to [`RootFlow`].
#[derive(Default)]
struct Root {
    flow: Option<RootFlow>,
}

/// The root context's host calls.
struct EnvoyRoot;

impl RootHost for EnvoyRoot {
    fn now_s(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn dispatch_http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Option<u32> {
        hostcalls::dispatch_http_call(cluster, headers.to_vec(), None, vec![], timeout).ok()
    }

    fn dispatch_grpc_call(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout: Duration,
    ) -> bool {
        hostcalls::dispatch_grpc_call(cluster, service, method, Vec::new(), Some(message), timeout)
            .is_ok()
    }
}

impl Context for Root {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, _response_size: usize) {
        if status_code != 0 {
            warn!("llm-gateway: a quota correction to the rate limit service failed (gRPC status {status_code})");
        }
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok()?.parse::<u32>().ok())
            .unwrap_or(0);
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        flow.on_http_call_response(token_id, status, &body, EnvoyRoot.now_s());
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                error!("invalid llm-gateway configuration: the plugin configuration is empty");
                return false;
            }
        };
        let env = |name: &str| std::env::var(name).ok();
        match RootFlow::configure(&bytes, &env) {
            Ok(flow) => {
                if let Some(period) = flow.tick_period() {
                    self.set_tick_period(period);
                }
                self.flow = Some(flow);
                true
            }
            Err(e) => {
                error!("{e}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(flow) = self.flow.as_mut() {
            flow.on_tick(&mut EnvoyRoot);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let flow = self.flow.as_ref()?;
        Some(Box::new(Filter {
            flow: RequestFlow::new(Rc::clone(flow.config()), Rc::clone(flow.worker())),
            host: EnvoyHost::default(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    flow: RequestFlow,
    host: EnvoyHost,
}

impl Context for Filter {
    fn on_grpc_call_response(&mut self, _token_id: u32, status_code: u32, response_size: usize) {
        let body = if status_code == 0 {
            hostcalls::get_buffer(BufferType::GrpcReceiveBuffer, 0, response_size)
                .ok()
                .flatten()
        } else {
            None
        };
        self.flow.on_grpc_response(&mut self.host, body.as_deref());
    }
}

fn action(flow: Flow) -> Action {
    match flow {
        Flow::Continue => Action::Continue,
        Flow::Pause | Flow::Replied => Action::Pause,
    }
}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.flow.on_request_headers(&mut self.host, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.host.request_body_size = body_size;
        action(
            self.flow
                .on_request_body(&mut self.host, body_size, end_of_stream),
        )
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        action(self.flow.on_response_headers(&mut self.host, end_of_stream))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.host.response_body_size = body_size;
        action(
            self.flow
                .on_response_body(&mut self.host, body_size, end_of_stream),
        )
    }

    fn on_log(&mut self) {
        self.flow.on_log(&mut self.host);
    }
}

#[derive(Default)]
struct EnvoyHost {
    request_body_size: usize,
    response_body_size: usize,
    /// The request headers, read with one host call on first use and kept in step with
    /// this filter's writes (nothing else changes them while the filter holds the request).
    request_headers: OnceCell<HeaderSnapshot>,
}

fn load_request_headers() -> HeaderSnapshot {
    HeaderSnapshot::new(hostcalls::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default())
}

impl EnvoyHost {
    fn replace_request_body_head(&mut self, len: usize, data: &[u8]) {
        let len = len.min(self.request_body_size);
        let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, len, data);
        self.request_body_size = self.request_body_size - len + data.len();
    }

    /// Applies `edit` to the local copy; `Change::Write` means the host must be told.
    fn edit_request_headers(&mut self, edit: impl FnOnce(&mut HeaderSnapshot) -> Change) -> bool {
        let mut headers = self
            .request_headers
            .take()
            .unwrap_or_else(load_request_headers);
        let change = edit(&mut headers);
        let _ = self.request_headers.set(headers);
        change == Change::Write
    }
}

impl Host for EnvoyHost {
    fn request_header(&self, name: &str) -> Option<String> {
        self.request_headers
            .get_or_init(load_request_headers)
            .get(name)
    }

    fn set_request_header(&mut self, name: &str, value: &str) {
        if self.edit_request_headers(|h| h.set(name, value)) {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
        }
    }

    fn remove_request_header(&mut self, name: &str) {
        if self.edit_request_headers(|h| h.remove(name)) {
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
        }
    }

    fn edit_request_body(&mut self, body: &[u8], edit: &BodyEdit) {
        // Only the changed end crosses the VM boundary: `set_buffer(0, len, data)` makes
        // Envoy drain the first `len` bytes and prepend `data`; a start at or past the end
        // appends.
        match edit {
            BodyEdit::Head { replace, with } => self.replace_request_body_head(*replace, with),
            BodyEdit::Tail { keep, append } => {
                // Envoy cannot cut a body short: replace all of it by the kept start (a
                // slice of what was read, not a copy), then append.
                self.replace_request_body_head(body.len(), body.get(..*keep).unwrap_or(body));
                let _ = hostcalls::set_buffer(
                    BufferType::HttpRequestBody,
                    self.request_body_size,
                    0,
                    append,
                );
                self.request_body_size += append.len();
            }
        }
    }

    fn clear_route_cache(&mut self) {
        if hostcalls::call_foreign_function("clear_route_cache", None::<&[u8]>).is_err() {
            warn!(
                "llm-gateway: clear_route_cache is not available; routing may use the stale route"
            );
        }
    }

    fn send_reply(&mut self, status: u32, body: &[u8], headers: &[(&str, &str)]) {
        let _ = hostcalls::send_http_response(status, headers.to_vec(), Some(body));
    }

    fn set_attribute(&mut self, name: &str, value: &[u8]) {
        let _ = hostcalls::set_property(vec![name], Some(value));
    }

    fn now_ns(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let t = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(t, name).ok()
    }

    fn increment_metric(&mut self, id: u32, delta: u64) {
        let _ = hostcalls::increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn shared_data(&mut self) -> &mut dyn SharedStore {
        self
    }

    fn dispatch_grpc(
        &mut self,
        cluster: &str,
        service: &str,
        method: &str,
        message: &[u8],
        timeout_ms: u64,
    ) -> Option<u32> {
        hostcalls::dispatch_grpc_call(
            cluster,
            service,
            method,
            Vec::new(),
            Some(message),
            Duration::from_millis(timeout_ms),
        )
        .ok()
    }

    fn resume_request(&mut self) {
        let _ = hostcalls::resume_http_request();
    }
}

impl BodyHost for EnvoyHost {
    fn request_body(&self, len: usize) -> Option<PlacedBuf> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, len)
            .ok()
            .flatten()
            .map(PlacedBuf::from)
    }

    fn response_body(&self, len: usize) -> Option<PlacedBuf> {
        hostcalls::get_buffer(BufferType::HttpResponseBody, 0, len)
            .ok()
            .flatten()
            .map(PlacedBuf::from)
    }

    fn response_header(&self, name: &str) -> Option<String> {
        // Bytes, not `get_map_value`: that one panics on a value that is not UTF-8.
        hostcalls::get_map_value_bytes(MapType::HttpResponseHeaders, name)
            .ok()
            .flatten()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn set_response_header(&mut self, name: &str, value: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, Some(value));
    }

    fn remove_response_header(&mut self, name: &str) {
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, None);
    }

    fn replace_response_body(&mut self, body: &[u8]) {
        let _ = hostcalls::set_buffer(
            BufferType::HttpResponseBody,
            0,
            self.response_body_size,
            body,
        );
        self.response_body_size = body.len();
    }
}

impl SharedStore for EnvoyHost {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|_| CasMismatch)
    }
}
