//! Makes a configured number of host calls of given kinds in given callbacks, so
//! `bench/probe.py` can measure what each kind costs per request in Envoy's V8 runtime
//! (CPU per request against the filter that makes none). A development tool, not shipped.
//!
//! Configuration (plugin configuration string): `;`-separated `callback:op:count`, plus
//! `pause` to hold the headers and read the whole body (as llm-gateway does), e.g.
//! `pause;body:set_property:8`. Callbacks: `headers`, `body`, `resp_headers`, `resp_body`, `log`.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default, Clone)]
struct Plan {
    pause: bool,
    ops: Vec<(String, String, u32)>,
    counter: u32,
    histogram: u32,
}

#[derive(Default)]
struct Root {
    plan: Rc<Plan>,
}

impl Context for Root {}
impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let cfg = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let cfg = String::from_utf8_lossy(&cfg).to_string();
        let mut plan = Plan::default();
        for item in cfg.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "pause" {
                plan.pause = true;
                continue;
            }
            let parts: Vec<&str> = item.split(':').collect();
            if let [cb, op, n] = parts.as_slice() {
                plan.ops
                    .push((cb.to_string(), op.to_string(), n.parse().unwrap_or(0)));
            }
        }
        plan.counter =
            hostcalls::define_metric(MetricType::Counter, "probe_counter;k=v").unwrap_or(0);
        plan.histogram =
            hostcalls::define_metric(MetricType::Histogram, "probe_histogram;k=v").unwrap_or(0);
        self.plan = Rc::new(plan);
        true
    }
    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Probe {
            plan: self.plan.clone(),
            body: 0,
        }))
    }
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Probe {
    plan: Rc<Plan>,
    body: usize,
}

const NAMES: [&str; 10] = [
    "x-probe-0",
    "x-probe-1",
    "x-probe-2",
    "x-probe-3",
    "x-probe-4",
    "x-probe-5",
    "x-probe-6",
    "x-probe-7",
    "x-probe-8",
    "x-probe-9",
];

impl Probe {
    fn run(&self, callback: &str) {
        let (req, resp) = (MapType::HttpRequestHeaders, MapType::HttpResponseHeaders);
        let map = if callback.starts_with("resp") {
            resp
        } else {
            req
        };
        for (cb, op, n) in &self.plan.ops {
            if cb != callback {
                continue;
            }
            for i in 0..*n as usize {
                let name = NAMES[i % NAMES.len()];
                match op.as_str() {
                    "get_header" => {
                        let _ = hostcalls::get_map_value(map, "content-type");
                    }
                    "get_absent_header" => {
                        let _ = hostcalls::get_map_value(map, name);
                    }
                    "get_headers" => {
                        let _ = hostcalls::get_map(map);
                    }
                    "get_headers_bytes" => {
                        let _ = hostcalls::get_map_bytes(map);
                    }
                    "set_map" => {
                        let m = hostcalls::get_map_bytes(map).unwrap_or_default();
                        let pairs: Vec<(&str, &[u8])> =
                            m.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
                        let _ = hostcalls::set_map_bytes(map, pairs);
                    }
                    "set_header" => {
                        let _ = hostcalls::set_map_value(map, name, Some("value"));
                    }
                    "add_header" => {
                        let _ = hostcalls::add_map_value(map, name, "value");
                    }
                    "remove_header" => {
                        let _ = hostcalls::set_map_value(map, name, None);
                    }
                    "set_property" => {
                        let _ = hostcalls::set_property(vec![name], Some(b"value"));
                    }
                    "get_property" => {
                        let _ = hostcalls::get_property(vec!["request", "path"]);
                    }
                    "now" => {
                        let _ = hostcalls::get_current_time();
                    }
                    "counter" => {
                        let _ = hostcalls::increment_metric(self.plan.counter, 1);
                    }
                    "histogram" => {
                        let _ = hostcalls::record_metric(self.plan.histogram, 7);
                    }
                    "clear_route" => {
                        let _ =
                            hostcalls::call_foreign_function("clear_route_cache", None::<&[u8]>);
                    }
                    "get_body" => {
                        let t = if callback == "body" {
                            BufferType::HttpRequestBody
                        } else {
                            BufferType::HttpResponseBody
                        };
                        let _ = hostcalls::get_buffer(t, 0, self.body);
                    }
                    "set_body" => {
                        let b = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, self.body)
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        let _ =
                            hostcalls::set_buffer(BufferType::HttpRequestBody, 0, self.body, &b);
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Context for Probe {}
impl HttpContext for Probe {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        self.run("headers");
        if self.plan.pause && !end_of_stream {
            Action::Pause
        } else {
            Action::Continue
        }
    }
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.plan.pause && !end_of_stream {
            return Action::Pause;
        }
        self.body = body_size;
        self.run("body");
        Action::Continue
    }
    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.run("resp_headers");
        Action::Continue
    }
    fn on_http_response_body(&mut self, body_size: usize, _: bool) -> Action {
        self.body = body_size;
        self.run("resp_body");
        Action::Continue
    }
    fn on_log(&mut self) {
        self.run("log");
    }
}
