//! The part of Envoy's dynamic-module C ABI (`source/extensions/dynamic_modules/abi/abi.h`,
//! ABI `v0.1.0`) this filter uses: the callbacks it calls and the types they take.
//! Envoy 1.40 exports every symbol declared here (checked with `nm -D`); the ABI's
//! policy is that a release keeps the previous minor version's signatures.

#![allow(non_camel_case_types)]

use std::ffi::c_void;

/// The ABI version `envoy_dynamic_module_on_program_init` returns (NUL-terminated).
pub const ABI_VERSION: &[u8] = b"v0.1.0\0";

pub type EnvoyFilterConfig = *mut c_void;
pub type EnvoyFilter = *mut c_void;

/// Bytes owned by Envoy, valid until the current hook returns or a setter is called.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, `None` for a null buffer.
    ///
    /// # Safety
    /// Envoy filled the buffer in the current hook and no setter ran since.
    pub unsafe fn bytes<'a>(&self) -> Option<&'a [u8]> {
        if self.ptr.is_null() {
            None
        } else {
            // SAFETY: Envoy guarantees `length` readable bytes at `ptr` until the hook ends.
            Some(unsafe { std::slice::from_raw_parts(self.ptr, self.length) })
        }
    }
}

/// Bytes owned by the module, read by Envoy during the call only.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// A null buffer (`set_header` removes the header).
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

#[repr(C)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

// C enums are `int`-sized.
pub type HeaderType = u32;
pub const REQUEST_HEADER: HeaderType = 0;
pub const RESPONSE_HEADER: HeaderType = 2;

pub type BodyType = u32;
pub const RECEIVED_REQUEST_BODY: BodyType = 0;
pub const BUFFERED_REQUEST_BODY: BodyType = 1;
pub const RECEIVED_RESPONSE_BODY: BodyType = 2;
pub const BUFFERED_RESPONSE_BODY: BodyType = 3;

pub type LogLevel = u32;
pub const LOG_DEBUG: LogLevel = 1;
pub const LOG_INFO: LogLevel = 2;
pub const LOG_WARN: LogLevel = 3;
pub const LOG_ERROR: LogLevel = 4;

/// `envoy_dynamic_module_type_metrics_result`: 0 is success.
pub type MetricsResult = u32;
pub const METRICS_SUCCESS: MetricsResult = 0;

/// Envoy's `FilterHeadersStatus`.
pub type HeadersStatus = u32;
pub const HEADERS_CONTINUE: HeadersStatus = 0;
pub const HEADERS_STOP_ITERATION: HeadersStatus = 1;

/// Envoy's `FilterDataStatus`.
pub type BodyStatus = u32;
pub const BODY_CONTINUE: BodyStatus = 0;
pub const BODY_STOP_AND_BUFFER: BodyStatus = 1;
pub const BODY_STOP_NO_BUFFER: BodyStatus = 3;

/// Envoy's `FilterTrailersStatus`.
pub type TrailersStatus = u32;
pub const TRAILERS_CONTINUE: TrailersStatus = 0;

extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    pub fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: EnvoyFilterConfig,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: EnvoyFilterConfig,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        id: *mut usize,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: EnvoyFilter,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: EnvoyFilter,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: EnvoyFilter,
        header_type: HeaderType,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    /// A null `value` removes the header.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: EnvoyFilter,
        header_type: HeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: EnvoyFilter,
        status_code: u32,
        headers: *const ModuleHttpHeader,
        headers_length: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter: EnvoyFilter,
        body_type: BodyType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: EnvoyFilter,
        body_type: BodyType,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: EnvoyFilter,
        body_type: BodyType,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: EnvoyFilter,
        body_type: BodyType,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter: EnvoyFilter,
        body_type: BodyType,
        length: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: EnvoyFilter,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: EnvoyFilter,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: EnvoyFilter,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter: EnvoyFilter);
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: EnvoyFilter);
}
