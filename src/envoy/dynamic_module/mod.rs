//! Envoy dynamic-module glue: the same gateway as the Wasm filter, loaded as a native
//! shared library (`libllm_gateway.so`, `make native`) through Envoy's dynamic modules
//! C ABI instead of proxy-wasm. Like `filter`, it only adapts host calls: each hook hands
//! over to `gateway::RequestFlow` through the `Host` traits implemented here.
//!
//! Differences from the Wasm build, all checked when the configuration loads:
//! - Envoy runs every worker in one process without a VM boundary, so the local quota
//!   store is a process-wide map and the configuration is parsed once per worker thread.
//! - Metrics are defined up front (`metrics::FAMILIES`) with real Envoy labels; no
//!   `stats_tags` are needed.
//! - Global quotas (gRPC to a rate limit service), Vertex AI metadata-server tokens and
//!   JWT identities are not available yet: a configuration using them is rejected.

mod abi;

use crate::config::{Config, ConfigError};
use crate::fastjson::placement::{self, PAGE};
use crate::flow::{Flow, RequestFlow, Worker};
use crate::host::{BodyEdit, BodyHost, Host, MetricKind, PlacedBuf, SharedStore};
use crate::metrics::FAMILIES;
use crate::quota::local::CasMismatch;
use abi::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// Filter-state keys carry the Wasm filter's `wasm.` prefix, so access-log formats
/// (`%FILTER_STATE(wasm.llm_gateway.model:PLAIN)%`) work with either build.
const ATTRIBUTE_PREFIX: &str = "wasm.";

// ---------------------------------------------------------------------------------------
// Logging: the `log` macros of the gateway go to Envoy's `dynamic_modules` logger.

struct EnvoyLogger;

fn envoy_level(level: log::Level) -> LogLevel {
    match level {
        log::Level::Error => LOG_ERROR,
        log::Level::Warn => LOG_WARN,
        log::Level::Info => LOG_INFO,
        log::Level::Debug | log::Level::Trace => LOG_DEBUG,
    }
}

impl log::Log for EnvoyLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        // SAFETY: a plain query of Envoy's log level.
        unsafe { envoy_dynamic_module_callback_log_enabled(envoy_level(metadata.level())) }
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        // SAFETY: Envoy copies the message during the call.
        unsafe {
            envoy_dynamic_module_callback_log(
                envoy_level(record.level()),
                ModuleBuffer::of(message.as_bytes()),
            )
        }
    }

    fn flush(&self) {}
}

static LOGGER: EnvoyLogger = EnvoyLogger;

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    ABI_VERSION.as_ptr().cast()
}

// ---------------------------------------------------------------------------------------
// Filter configuration (main thread) and its per-worker state.

/// One loaded filter configuration; Envoy owns it through the pointer
/// `on_http_filter_config_new` returns.
struct ModuleConfig {
    /// The plugin configuration (JSON), parsed again once on each worker thread: the
    /// gateway's per-worker state is single-threaded, as in a Wasm VM.
    json: Vec<u8>,
    id: u64,
    /// Dropped with the configuration; worker threads drop their state for it then.
    alive: Arc<()>,
    /// Envoy metric ids of `metrics::FAMILIES`, in order.
    families: Arc<[usize]>,
}

// Envoy creates every worker's filters from one configuration, on their own threads: it
// must be shareable (an `Rc` in it would be a data race).
const _: fn() = || {
    fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<ModuleConfig>();
};

/// What one worker thread keeps for one configuration.
struct WorkerState {
    id: u64,
    alive: Weak<()>,
    shared: PerWorker,
}

/// The per-worker state each request of that worker holds a handle to.
#[derive(Clone)]
struct PerWorker {
    config: Rc<Config>,
    worker: Rc<RefCell<Worker>>,
    series: Rc<RefCell<Series>>,
}

thread_local! {
    static WORKERS: RefCell<Vec<WorkerState>> = const { RefCell::new(Vec::new()) };
}

static NEXT_CONFIG_ID: AtomicU64 = AtomicU64::new(1);

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Parses the configuration and refuses what this build cannot do yet.
fn load(json: &[u8]) -> Result<Config, ConfigError> {
    let config = Config::parse(json, &env)?;
    let unsupported = |path: String, what: &str| ConfigError {
        path,
        message: format!(
            "{what} is not available in the native (dynamic module) build yet; use the Wasm filter"
        ),
    };
    if let Some(policy) = &config.policy {
        if policy.quotas.as_ref().is_some_and(|q| q.global.is_some()) {
            return Err(unsupported(
                "quotas.global".into(),
                "a global quota (rate limit service)",
            ));
        }
        if policy.jwt_payload_path().is_some() {
            return Err(unsupported("identity.jwt".into(), "a JWT identity"));
        }
    }
    if let Some(i) = config
        .providers
        .iter()
        .position(|p| p.token_endpoint.is_some())
    {
        return Err(unsupported(
            format!("providers[{i}].token_endpoint"),
            "a metadata-server token endpoint",
        ));
    }
    Ok(config)
}

/// Defines every metric family with its labels (Envoy accepts definitions only while
/// the configuration loads).
fn define_families(envoy: EnvoyFilterConfig) -> Option<Arc<[usize]>> {
    let mut ids = Vec::with_capacity(FAMILIES.len());
    for family in FAMILIES {
        let labels: Vec<ModuleBuffer> = family
            .labels
            .iter()
            .map(|l| ModuleBuffer::of(l.as_bytes()))
            .collect();
        let mut id = 0usize;
        let name = ModuleBuffer::of(family.name.as_bytes());
        // SAFETY: the buffers outlive the call; `id` is a valid out-pointer.
        let result = unsafe {
            match family.kind {
                MetricKind::Counter => {
                    envoy_dynamic_module_callback_http_filter_config_define_counter(
                        envoy,
                        name,
                        labels.as_ptr(),
                        labels.len(),
                        &mut id,
                    )
                }
                MetricKind::Histogram => {
                    envoy_dynamic_module_callback_http_filter_config_define_histogram(
                        envoy,
                        name,
                        labels.as_ptr(),
                        labels.len(),
                        &mut id,
                    )
                }
            }
        };
        if result != METRICS_SUCCESS {
            log::error!(
                "llm-gateway: Envoy refused metric {} (result {result})",
                family.name
            );
            return None;
        }
        ids.push(id);
    }
    Some(ids.into())
}

/// # Safety
/// Called by Envoy with buffers valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    envoy: EnvoyFilterConfig,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    // SAFETY: Envoy passes the configuration bytes for the duration of this call.
    let json = unsafe { config.bytes() }.unwrap_or_default().to_vec();
    if json.is_empty() {
        log::error!("invalid llm-gateway configuration: the filter_config is empty");
        return std::ptr::null();
    }
    let config = match load(&json) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            return std::ptr::null();
        }
    };
    config.log_missing_keys();
    let Some(families) = define_families(envoy) else {
        return std::ptr::null();
    };
    let module = ModuleConfig {
        json,
        id: NEXT_CONFIG_ID.fetch_add(1, Ordering::Relaxed),
        alive: Arc::new(()),
        families,
    };
    Box::into_raw(Box::new(module)).cast_const().cast()
}

/// # Safety
/// `config` is a pointer `on_http_filter_config_new` returned, destroyed once.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *mut c_void) {
    if !config.is_null() {
        // SAFETY: created by `Box::into_raw` in `on_http_filter_config_new`.
        drop(unsafe { Box::from_raw(config.cast::<ModuleConfig>()) });
    }
}

/// This worker's state for `config`, created on its first request.
fn worker_state(config: &ModuleConfig) -> Option<PerWorker> {
    WORKERS.with_borrow_mut(|workers| {
        if let Some(w) = workers.iter().find(|w| w.id == config.id) {
            return Some(w.shared.clone());
        }
        // A configuration this thread has not seen: forget those Envoy has dropped.
        workers.retain(|w| w.alive.strong_count() > 0);
        let parsed = match load(&config.json) {
            Ok(c) => Rc::new(c),
            Err(e) => {
                log::error!("{e}");
                return None;
            }
        };
        let shared = PerWorker {
            config: parsed,
            worker: Rc::default(),
            series: Rc::default(),
        };
        workers.push(WorkerState {
            id: config.id,
            alive: Arc::downgrade(&config.alive),
            shared: shared.clone(),
        });
        Some(shared)
    })
}

// ---------------------------------------------------------------------------------------
// Per-request filter (worker thread).

struct ModuleFilter {
    flow: RequestFlow,
    host: NativeHost,
}

/// # Safety
/// `config` is a live pointer from `on_http_filter_config_new`.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    envoy: EnvoyFilter,
) -> *mut c_void {
    // SAFETY: Envoy keeps the configuration alive while its filters exist.
    let Some(config) = (unsafe { config.cast::<ModuleConfig>().as_ref() }) else {
        return std::ptr::null_mut();
    };
    let Some(state) = worker_state(config) else {
        return std::ptr::null_mut();
    };
    let filter = ModuleFilter {
        flow: RequestFlow::new(state.config, state.worker),
        host: NativeHost {
            envoy,
            families: config.families.clone(),
            series: state.series,
            key: String::new(),
        },
    };
    Box::into_raw(Box::new(filter)).cast()
}

/// Runs `hook` on the filter behind `module` (a pointer `on_http_filter_new` returned);
/// `otherwise` when it is null.
///
/// # Safety
/// `module` is live and used by this thread only (Envoy calls a filter's hooks on its
/// worker thread, one at a time).
unsafe fn with_filter<T>(
    module: *mut c_void,
    otherwise: T,
    hook: impl FnOnce(&mut RequestFlow, &mut NativeHost) -> T,
) -> T {
    // SAFETY: see above.
    match unsafe { module.cast::<ModuleFilter>().as_mut() } {
        Some(f) => hook(&mut f.flow, &mut f.host),
        None => otherwise,
    }
}

fn headers_status(flow: Flow) -> HeadersStatus {
    match flow {
        Flow::Continue => HEADERS_CONTINUE,
        Flow::Pause | Flow::Replied => HEADERS_STOP_ITERATION,
    }
}

fn body_status(flow: Flow) -> BodyStatus {
    match flow {
        Flow::Continue => BODY_CONTINUE,
        Flow::Pause => BODY_STOP_AND_BUFFER,
        Flow::Replied => BODY_STOP_NO_BUFFER,
    }
}

/// # Safety
/// Envoy's hook contract: live pointers, on the filter's worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: EnvoyFilter,
    module: *mut c_void,
    end_of_stream: bool,
) -> HeadersStatus {
    if module.is_null() {
        // This worker could not load the configuration (logged): fail closed, as a Wasm
        // filter whose VM failed does, rather than let the request through unfiltered
        // with its client-sent routing headers.
        // SAFETY: hook contract; Envoy copies headers and body during the call.
        unsafe { refuse_unconfigured(envoy) };
        return HEADERS_STOP_ITERATION;
    }
    // SAFETY: hook contract.
    unsafe {
        with_filter(module, HEADERS_CONTINUE, |flow, host| {
            headers_status(flow.on_request_headers(host, end_of_stream))
        })
    }
}

/// A 503 in OpenAI's error format for a request this worker has no filter for.
///
/// # Safety
/// `envoy` is the live filter of the current hook.
unsafe fn refuse_unconfigured(envoy: EnvoyFilter) {
    const BODY: &[u8] = br#"{"error":{"message":"the LLM gateway is not configured on this worker","type":"server_error","param":null,"code":"gateway_unavailable"}}"#;
    let headers = [ModuleHttpHeader {
        key_ptr: b"content-type".as_ptr(),
        key_length: b"content-type".len(),
        value_ptr: b"application/json".as_ptr(),
        value_length: b"application/json".len(),
    }];
    // SAFETY: see above.
    unsafe {
        envoy_dynamic_module_callback_http_send_response(
            envoy,
            503,
            headers.as_ptr(),
            headers.len(),
            ModuleBuffer::of(BODY),
            ModuleBuffer::of(b"llm_gateway"),
        )
    }
}

/// # Safety
/// Envoy's hook contract: live pointers, on the filter's worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _envoy: EnvoyFilter,
    module: *mut c_void,
    end_of_stream: bool,
) -> BodyStatus {
    // SAFETY: hook contract.
    unsafe {
        with_filter(module, BODY_CONTINUE, |flow, host| {
            let size = host.body_size(Side::Request);
            body_status(flow.on_request_body(host, size, end_of_stream))
        })
    }
}

/// # Safety
/// Envoy's hook contract.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
) -> TrailersStatus {
    TRAILERS_CONTINUE
}

/// # Safety
/// Envoy's hook contract: live pointers, on the filter's worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _envoy: EnvoyFilter,
    module: *mut c_void,
    end_of_stream: bool,
) -> HeadersStatus {
    // SAFETY: hook contract.
    unsafe {
        with_filter(module, HEADERS_CONTINUE, |flow, host| {
            headers_status(flow.on_response_headers(host, end_of_stream))
        })
    }
}

/// # Safety
/// Envoy's hook contract: live pointers, on the filter's worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy: EnvoyFilter,
    module: *mut c_void,
    end_of_stream: bool,
) -> BodyStatus {
    // SAFETY: hook contract.
    unsafe {
        with_filter(module, BODY_CONTINUE, |flow, host| {
            let size = host.body_size(Side::Response);
            body_status(flow.on_response_body(host, size, end_of_stream))
        })
    }
}

/// # Safety
/// Envoy's hook contract.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
) -> TrailersStatus {
    TRAILERS_CONTINUE
}

/// Called before the access logs are written: the request's usage and metrics.
///
/// # Safety
/// Envoy's hook contract: live pointers, on the filter's worker thread.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _envoy: EnvoyFilter,
    module: *mut c_void,
) {
    // SAFETY: hook contract.
    unsafe { with_filter(module, (), |flow, host| flow.on_log(host)) }
}

/// # Safety
/// `module` came from `on_http_filter_new` and is destroyed once.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *mut c_void) {
    if !module.is_null() {
        // SAFETY: created by `Box::into_raw` in `on_http_filter_new`.
        drop(unsafe { Box::from_raw(module.cast::<ModuleFilter>()) });
    }
}

// Hooks Envoy requires for features this filter does not use (callouts, schedulers,
// terminal filters): they do nothing.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
    _callout_id: u64,
    _result: u32,
    _headers: *const c_void,
    _headers_size: usize,
    _body_chunks: *const c_void,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
    _stream_id: u64,
    _headers: *const c_void,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
    _stream_id: u64,
    _data: *const c_void,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
    _stream_id: u64,
    _trailers: *const c_void,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy: EnvoyFilter,
    _module: *mut c_void,
) {
}

// ---------------------------------------------------------------------------------------
// Host calls.

/// Metric series one worker has used: index → (family, label values). The gateway's
/// metric cache (`metrics::Metrics`) maps names to these indices.
#[derive(Default)]
struct Series(Vec<(usize, Vec<String>)>);

struct NativeHost {
    envoy: EnvoyFilter,
    families: Arc<[usize]>,
    series: Rc<RefCell<Series>>,
    /// Reused for filter-state keys.
    key: String,
}

#[derive(Clone, Copy)]
enum Side {
    Request,
    Response,
}

impl Side {
    fn received(self) -> BodyType {
        match self {
            Side::Request => RECEIVED_REQUEST_BODY,
            Side::Response => RECEIVED_RESPONSE_BODY,
        }
    }

    fn buffered(self) -> BodyType {
        match self {
            Side::Request => BUFFERED_REQUEST_BODY,
            Side::Response => BUFFERED_RESPONSE_BODY,
        }
    }
}

impl NativeHost {
    fn header(&self, kind: HeaderType, name: &str) -> Option<String> {
        let mut out = EnvoyBuffer::NULL;
        // SAFETY: `out` is a valid out-pointer; the value is copied before the hook ends.
        unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.envoy,
                kind,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                std::ptr::null_mut(),
            );
            out.bytes()
        }
        .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn set_header(&mut self, kind: HeaderType, name: &str, value: Option<&str>) {
        let value = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: Envoy copies key and value during the call.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.envoy,
                kind,
                ModuleBuffer::of(name.as_bytes()),
                value,
            );
        }
    }

    /// Whether the "received" body is the body buffered earlier (a filter before this
    /// one buffered it and resumed): then only the buffered body counts.
    fn received_is_buffered(&self, side: Side) -> bool {
        // SAFETY: plain queries on a live filter.
        unsafe {
            match side {
                Side::Request => {
                    envoy_dynamic_module_callback_http_received_buffered_request_body(self.envoy)
                }
                Side::Response => {
                    envoy_dynamic_module_callback_http_received_buffered_response_body(self.envoy)
                }
            }
        }
    }

    /// The body types that make up the whole body seen so far, in order.
    fn parts(&self, side: Side) -> &'static [BodyType] {
        match (side, self.received_is_buffered(side)) {
            (Side::Request, true) => &[BUFFERED_REQUEST_BODY],
            (Side::Request, false) => &[BUFFERED_REQUEST_BODY, RECEIVED_REQUEST_BODY],
            (Side::Response, true) => &[BUFFERED_RESPONSE_BODY],
            (Side::Response, false) => &[BUFFERED_RESPONSE_BODY, RECEIVED_RESPONSE_BODY],
        }
    }

    fn body_size(&self, side: Side) -> usize {
        self.parts(side)
            .iter()
            // SAFETY: plain queries on a live filter.
            .map(|t| unsafe { envoy_dynamic_module_callback_http_get_body_size(self.envoy, *t) })
            .sum()
    }

    /// A copy of the first `len` bytes of the body, half a page into its buffer when it
    /// is large: Envoy's slices start on a page, and copying between two places at the
    /// same offset in their pages is glibc's slow path (`copy_placement`).
    fn read_body(&self, side: Side, len: usize) -> PlacedBuf {
        let mut out = PlacedBuf::for_copy(len.min(self.body_size(side)), PAGE / 2);
        for t in self.parts(side) {
            // SAFETY: the chunk array is sized as Envoy reports; the chunks are copied
            // before the hook ends.
            unsafe {
                let n = envoy_dynamic_module_callback_http_get_body_chunks_size(self.envoy, *t);
                if n == 0 {
                    continue;
                }
                let mut chunks = vec![EnvoyBuffer::NULL; n];
                if !envoy_dynamic_module_callback_http_get_body_chunks(
                    self.envoy,
                    *t,
                    chunks.as_mut_ptr(),
                ) {
                    continue;
                }
                for c in &chunks {
                    let room = len.saturating_sub(out.len());
                    if let Some(bytes) = c.bytes() {
                        out.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or(bytes));
                    }
                }
            }
        }
        out
    }

    /// Empties the body seen so far.
    fn drain_body(&mut self, side: Side) {
        for t in self.parts(side) {
            // SAFETY: drains on a live filter.
            unsafe {
                envoy_dynamic_module_callback_http_drain_body(self.envoy, *t, usize::MAX);
            }
        }
    }

    fn append_body(&mut self, side: Side, data: &[u8]) {
        // Into the chunk being processed, unless it is the buffered body itself.
        let target = if self.received_is_buffered(side) {
            side.buffered()
        } else {
            side.received()
        };
        // SAFETY: Envoy copies the data during the call.
        unsafe {
            envoy_dynamic_module_callback_http_append_body(
                self.envoy,
                target,
                ModuleBuffer::of(data),
            );
        }
    }

    /// Replaces the body seen so far with `pieces`, in order. After the drain Envoy
    /// writes byte `n` of what is appended at offset `n` within a page (its slices are
    /// whole pages, each filled before the next); a large piece that would be copied
    /// onto glibc's slow path from where it is goes through a buffer half a page over.
    fn write_body(&mut self, side: Side, pieces: &[&[u8]]) {
        self.drain_body(side);
        let mut written = 0usize;
        for piece in pieces {
            if piece.len() >= placement::MIN_LEN
                && placement::slow(written, piece.as_ptr() as usize)
            {
                let mut moved = PlacedBuf::for_copy(piece.len(), written + PAGE / 2);
                moved.extend_from_slice(piece);
                self.append_body(side, &moved);
            } else {
                self.append_body(side, piece);
            }
            written = written.wrapping_add(piece.len());
        }
    }

    fn metric(&mut self, id: u32, value: u64, kind: MetricKind) {
        let series = self.series.borrow();
        let Some((family, values)) = series.0.get(id as usize) else {
            return;
        };
        let Some(envoy_id) = self.families.get(*family) else {
            return;
        };
        let labels: Vec<ModuleBuffer> = values
            .iter()
            .map(|v| ModuleBuffer::of(v.as_bytes()))
            .collect();
        // SAFETY: the label buffers outlive the call.
        unsafe {
            match kind {
                MetricKind::Counter => envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.envoy,
                    *envoy_id,
                    labels.as_ptr(),
                    labels.len(),
                    value,
                ),
                MetricKind::Histogram => {
                    envoy_dynamic_module_callback_http_filter_record_histogram_value(
                        self.envoy,
                        *envoy_id,
                        labels.as_ptr(),
                        labels.len(),
                        value,
                    )
                }
            };
        }
    }
}

impl Host for NativeHost {
    fn request_header(&self, name: &str) -> Option<String> {
        self.header(REQUEST_HEADER, name)
    }

    fn set_request_header(&mut self, name: &str, value: &str) {
        self.set_header(REQUEST_HEADER, name, Some(value));
    }

    fn remove_request_header(&mut self, name: &str) {
        self.set_header(REQUEST_HEADER, name, None);
    }

    fn edit_request_body(&mut self, body: &[u8], edit: &BodyEdit) {
        // The ABI drains from the front and appends, so the edited body is written anew
        // from its two pieces (the kept part straight from the bytes read: one copy, into
        // Envoy's buffer).
        self.write_body(Side::Request, &edit.pieces(body));
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: a plain call on a live filter.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.envoy) }
    }

    fn send_reply(&mut self, status: u32, body: &[u8], headers: &[(&str, &str)]) {
        let headers: Vec<ModuleHttpHeader> = headers
            .iter()
            .map(|(k, v)| ModuleHttpHeader {
                key_ptr: k.as_ptr(),
                key_length: k.len(),
                value_ptr: v.as_ptr(),
                value_length: v.len(),
            })
            .collect();
        // SAFETY: Envoy copies headers and body during the call.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.envoy,
                status,
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(b"llm_gateway"),
            )
        }
    }

    fn set_attribute(&mut self, name: &str, value: &[u8]) {
        self.key.clear();
        self.key.push_str(ATTRIBUTE_PREFIX);
        self.key.push_str(name);
        // SAFETY: Envoy copies key and value during the call.
        unsafe {
            envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.envoy,
                ModuleBuffer::of(self.key.as_bytes()),
                ModuleBuffer::of(value),
            );
        }
    }

    fn now_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let (family, values) = crate::metrics::split_name(kind, name)?;
        let mut series = self.series.borrow_mut();
        let id = u32::try_from(series.0.len()).ok()?;
        series
            .0
            .push((family, values.into_iter().map(String::from).collect()));
        Some(id)
    }

    fn increment_metric(&mut self, id: u32, delta: u64) {
        self.metric(id, delta, MetricKind::Counter);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.metric(id, value, MetricKind::Histogram);
    }

    fn property(&self, _path: &[&str]) -> Option<Vec<u8>> {
        // Only JWT identities read properties; `load` refuses them in this build.
        None
    }

    fn shared_data(&mut self) -> &mut dyn SharedStore {
        self
    }

    fn dispatch_grpc(
        &mut self,
        _cluster: &str,
        _service: &str,
        _method: &str,
        _message: &[u8],
        _timeout_ms: u64,
    ) -> Option<u32> {
        // Only global quotas call out; `load` refuses them in this build.
        None
    }

    fn resume_request(&mut self) {
        // SAFETY: a plain call on a live filter.
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.envoy) }
    }
}

impl BodyHost for NativeHost {
    fn request_body(&self, len: usize) -> Option<PlacedBuf> {
        Some(self.read_body(Side::Request, len))
    }

    fn response_body(&self, len: usize) -> Option<PlacedBuf> {
        Some(self.read_body(Side::Response, len))
    }

    fn response_header(&self, name: &str) -> Option<String> {
        self.header(RESPONSE_HEADER, name)
    }

    fn set_response_header(&mut self, name: &str, value: &str) {
        self.set_header(RESPONSE_HEADER, name, Some(value));
    }

    fn remove_response_header(&mut self, name: &str) {
        self.set_header(RESPONSE_HEADER, name, None);
    }

    fn replace_response_body(&mut self, body: &[u8]) {
        self.write_body(Side::Response, &[body]);
    }
}

/// The local quota store: one map for all worker threads of the process (the Wasm
/// build uses Envoy's shared data for the same). Values carry a version for
/// compare-and-swap.
type Store = Mutex<HashMap<String, (Vec<u8>, u32)>>;

fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(Mutex::default)
}

impl SharedStore for NativeHost {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        let map = store().lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
        let mut map = store().lock().unwrap_or_else(|e| e.into_inner());
        let current = map.get(key).map(|(_, c)| *c);
        if let (Some(expected), Some(now)) = (cas, current) {
            if expected != now {
                return Err(CasMismatch);
            }
        }
        let next = current.map_or(1, |c| c.wrapping_add(1).max(1));
        map.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }
}
