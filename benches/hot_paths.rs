//! Micro-benchmarks of the host-free hot paths (native code; `make microbench`).
//!
//! * request: inspect + model resolve + alias rewrite (splice) at 1 KB … 1 MB, and the
//!   prompt-token estimate a streaming request also pays;
//! * response: usage from a chat.completion body;
//! * stream: SSE parsing + OpenAI stream observation, per event, through the same
//!   `ResponseTap` the filter uses (with and without removing the injected usage);
//! * Anthropic translation: request (chat → messages, messages → chat) and streams;
//! * the whole per-request flow (`gateway::RequestFlow`) against an in-memory host that
//!   does no work, i.e. the filter's own cost without Envoy's host calls.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use llm_gateway::api::Api;
use llm_gateway::config::Config;
use llm_gateway::flow::request::{self, Rewrite};
use llm_gateway::flow::response::{ResponsePlan, ResponseTap};
use llm_gateway::flow::RequestFlow;
use llm_gateway::flow::Worker;
use llm_gateway::host::SharedStore;
use llm_gateway::host::{BodyHost, Host, MetricKind, PlacedBuf};
use llm_gateway::quota::local::mem::MemStore;
use llm_gateway::stream::openai::OpenAiStreamObserver;
use llm_gateway::stream::sse::SseParser;
use llm_gateway::tokens::estimate;
use llm_gateway::tokens::usage;
use llm_gateway::translate::anthropic as tr;
use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;

const CONFIG: &str = r#"{
    "providers": [{"name": "bench", "type": "openai", "cluster": "bench", "path_prefix": "/v1"}],
    "models": [
        {"match": "m", "provider": "bench", "upstream_model": "gpt-4o-mini"},
        {"match": "gpt-*", "provider": "bench"},
        {"match": "*", "provider": "bench"}
    ]
}"#;

/// `CONFIG` plus a consumer (virtual key `sk-client`) and two token-quota rules, as
/// `make bench`'s quota scenario configures them.
const QUOTA_CONFIG: &str = r#"{
    "providers": [{"name": "bench", "type": "openai", "cluster": "bench", "path_prefix": "/v1"}],
    "models": [{"match": "m", "provider": "bench", "upstream_model": "gpt-4o-mini"}],
    "consumers": [{"name": "bench-client", "key_sha256": "9317152c7ce9662afd2deb4078472692a4d84040d09f9c3d2b2d3688f057c7de"}],
    "quotas": {"rules": [
        {"name": "per-consumer-day", "limit": 4294967295, "window": "day", "group_by": ["consumer"]},
        {"name": "per-model-minute", "limit": 4294967295, "window": "minute", "group_by": ["model"]}
    ]}
}"#;

/// The model `m` at an Anthropic provider: requests and answers are translated.
const ANTHROPIC_CONFIG: &str = r#"{
    "providers": [{"name": "claude", "type": "anthropic", "cluster": "claude"}],
    "models": [{"match": "m", "provider": "claude", "upstream_model": "claude-haiku-4-5"}]
}"#;

const SIZES: &[(&str, usize)] = &[
    ("1KB", 1024),
    ("4KB", 4096),
    ("16KB", 16384),
    ("1MB", 1 << 20),
];

const CHAT_COMPLETION: &[u8] = br#"{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench","choices":[{"index":0,"message":{"role":"assistant","content":"The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog. ","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1200,"completion_tokens":48,"total_tokens":1248,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#;

fn config() -> Config {
    Config::parse(CONFIG.as_bytes(), &|_: &str| None).expect("bench config")
}

/// A chat request of exactly `size` bytes (as bench/run.py builds them).
fn chat_body(size: usize, stream: bool) -> Vec<u8> {
    let words = "the gateway reads the request body once resolves the model rewrites it in place and records usage while Envoy handles connections retries and timeouts";
    let head = r#"{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":""#;
    let tail = if stream {
        r#""}],"max_tokens":64,"temperature":0.2,"stream":true}"#
    } else {
        r#""}],"max_tokens":64,"temperature":0.2}"#
    };
    let need = size - head.len() - tail.len();
    let mut text = String::with_capacity(need + 200);
    let mut i = 0;
    while text.len() < need {
        let w = words.split(' ').nth(i % 23).unwrap_or("x");
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(w);
        if i % 13 == 12 {
            text.push('.');
        }
        i += 1;
    }
    text.truncate(need);
    let body = format!("{head}{text}{tail}").into_bytes();
    assert_eq!(body.len(), size);
    body
}

/// An OpenAI stream with include_usage: role, 20 content chunks, finish, usage, [DONE].
fn openai_events() -> Vec<Vec<u8>> {
    let base = r#""id":"chatcmpl-bench","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_bench""#;
    let mut out = vec![format!(
        "data: {{{base},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
    )];
    for w in "The quick brown fox jumps over the lazy dog while benchmarks run The quick brown fox jumps over the lazy dog while"
        .split(' ')
    {
        out.push(format!(
            "data: {{{base},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" {w}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
        ));
    }
    out.push(format!(
        "data: {{{base},\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}],\"usage\":null}}\n\n"
    ));
    out.push(format!(
        "data: {{{base},\"choices\":[],\"usage\":{{\"prompt_tokens\":1200,\"completion_tokens\":20,\"total_tokens\":1220,\"prompt_tokens_details\":{{\"cached_tokens\":0,\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n"
    ));
    out.push("data: [DONE]\n\n".to_string());
    out.into_iter().map(String::into_bytes).collect()
}

/// The Anthropic stream of `bench/sse_body.py` (`anthropic_sse_events`): message_start,
/// ping, one text block of 18 deltas, message_delta and message_stop (24 events).
fn anthropic_events() -> Vec<Vec<u8>> {
    let ev = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n").into_bytes();
    let mut out = vec![
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_01Bench000000000000000000","type":"message","role":"assistant","model":"claude-haiku-4-5-20251001","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":1200,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}"#,
        ),
        ev("ping", r#"{"type":"ping"}"#),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
    ];
    let words = "The quick brown fox jumps over the lazy dog while benchmarks run";
    for w in words.split(' ').cycle().take(18) {
        out.push(ev(
            "content_block_delta",
            &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":" {w}"}}}}"#),
        ));
    }
    out.push(ev(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ));
    out.push(ev("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":18}}"#));
    out.push(ev("message_stop", r#"{"type":"message_stop"}"#));
    out
}

fn plan(content_type: &str, drop_injected_usage: bool) -> ResponsePlan<'_> {
    ResponsePlan {
        client: Api::OpenAi,
        upstream: Api::OpenAi,
        content_type,
        status: Some(200),
        drop_injected_usage,
        client_include_usage: false,
        model_for_client: "gpt-4o-mini",
        error_type: None,
        created_unix: 1_767_225_600,
        max_json: 16 << 20,
    }
}

fn bench_request(c: &mut Criterion) {
    let cfg = config();
    let mut g = c.benchmark_group("request");
    for &(name, size) in SIZES {
        let body = chat_body(size, false);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("inspect_resolve_rewrite", name),
            &body,
            |b, body| {
                b.iter(|| {
                    let info = request::inspect(black_box(body)).expect("valid");
                    let r = cfg.routes.resolve(&info.model).expect("route");
                    let rw = Rewrite {
                        model: Some(r.upstream_model.as_ref()),
                        include_usage: false,
                    };
                    black_box(request::rewrite(body, &info, &rw))
                })
            },
        );
        let sbody = chat_body(size, true);
        g.bench_with_input(
            BenchmarkId::new("stream_inspect_rewrite_include_usage", name),
            &sbody,
            |b, body| {
                b.iter(|| {
                    let info = request::inspect(black_box(body)).expect("valid");
                    let r = cfg.routes.resolve(&info.model).expect("route");
                    let rw = Rewrite {
                        model: Some(r.upstream_model.as_ref()),
                        include_usage: true,
                    };
                    black_box(request::rewrite(body, &info, &rw))
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("estimate_input_tokens", name),
            &sbody,
            |b, body| {
                b.iter(|| black_box(estimate::estimate_request_input_tokens(black_box(body))))
            },
        );
    }
    g.finish();
}

fn bench_response(c: &mut Criterion) {
    let mut g = c.benchmark_group("response");
    g.throughput(Throughput::Bytes(CHAT_COMPLETION.len() as u64));
    g.bench_function("usage_from_openai_json", |b| {
        b.iter(|| black_box(usage::from_openai_json(black_box(CHAT_COMPLETION))))
    });
    g.bench_function("json_tap_keep_and_usage", |b| {
        b.iter(|| {
            let mut tap = ResponseTap::new(&plan("application/json", false));
            tap.on_chunk(black_box(CHAT_COMPLETION), true);
            black_box(tap.usage())
        })
    });
    g.finish();
}

fn bench_stream(c: &mut Criterion) {
    let events = openai_events();
    let n = events.len() as u64;
    let whole: Vec<u8> = events.concat();
    let mut g = c.benchmark_group("stream");
    g.throughput(Throughput::Elements(n));
    g.bench_function("sse_parse_observe_per_event", |b| {
        b.iter(|| {
            let mut p = SseParser::new();
            let mut o = OpenAiStreamObserver::new();
            for ev in &events {
                p.feed(black_box(ev), |e| {
                    black_box(o.observe(e));
                });
            }
            black_box(o.usage())
        })
    });
    g.bench_function("tap_observe_one_chunk_per_event", |b| {
        b.iter(|| {
            let mut tap = ResponseTap::new(&plan("text/event-stream", false));
            for (i, ev) in events.iter().enumerate() {
                black_box(tap.on_chunk(black_box(ev), i + 1 == events.len()));
            }
            black_box(tap.usage())
        })
    });
    g.bench_function("tap_drop_injected_usage_one_chunk_per_event", |b| {
        b.iter(|| {
            let mut tap = ResponseTap::new(&plan("text/event-stream", true));
            for (i, ev) in events.iter().enumerate() {
                black_box(tap.on_chunk(black_box(ev), i + 1 == events.len()));
            }
            black_box(tap.usage())
        })
    });
    g.bench_function("tap_drop_injected_usage_whole_stream_one_chunk", |b| {
        b.iter(|| {
            let mut tap = ResponseTap::new(&plan("text/event-stream", true));
            black_box(tap.on_chunk(black_box(&whole), true));
            black_box(tap.usage())
        })
    });
    g.finish();
}

fn bench_anthropic(c: &mut Criterion) {
    let mut g = c.benchmark_group("anthropic");
    for &(name, size) in &SIZES[..3] {
        let body = chat_body(size, false);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("chat_request_to_messages", name),
            &body,
            |b, body| {
                b.iter(|| {
                    black_box(tr::chat_request_to_messages(
                        black_box(body),
                        "claude-x",
                        4096,
                    ))
                })
            },
        );
    }
    let messages = br#"{"model":"claude-sonnet-4-5","max_tokens":1024,"system":"You are a helpful assistant.","messages":[{"role":"user","content":"Hello there, how are you today? Tell me about the weather."}],"stream":true}"#;
    g.throughput(Throughput::Bytes(messages.len() as u64));
    g.bench_function("messages_request_to_chat", |b| {
        b.iter(|| {
            black_box(tr::messages_request_to_chat(
                black_box(messages),
                "gpt-4o-mini",
            ))
        })
    });

    // Anthropic upstream stream -> OpenAI client, one event per chunk.
    let input =
        include_bytes!("../tests/golden/openai_chat_to_anthropic_messages/stream_text/input.sse");
    let mut events: Vec<(String, String)> = Vec::new();
    let mut p = SseParser::new();
    p.feed(input, |e| {
        events.push((e.event.to_string(), e.data.to_string()))
    });
    p.finish(|e| events.push((e.event.to_string(), e.data.to_string())));
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("messages_stream_to_chat_per_event", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            let mut t = tr::MessagesToChatStream::new("gpt-4o-mini", "chatcmpl-gw", 1, false);
            for (ev, data) in &events {
                t.on_event(ev, data, &mut out);
            }
            t.finish(&mut out);
            black_box(out.len())
        })
    });
    // OpenAI upstream stream -> Anthropic client.
    let oa = openai_events();
    let datas: Vec<String> = oa
        .iter()
        .map(|e| {
            String::from_utf8_lossy(e)
                .trim_start_matches("data: ")
                .trim_end()
                .to_string()
        })
        .collect();
    g.throughput(Throughput::Elements(datas.len() as u64));
    g.bench_function("chat_stream_to_messages_per_event", |b| {
        let mut out = Vec::with_capacity(8192);
        b.iter(|| {
            out.clear();
            let mut t = tr::ChatToMessagesStream::new("claude-x", "msg_gw");
            for d in &datas {
                t.on_event(d, &mut out);
            }
            t.finish(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

/// A host that stores nothing and answers from fixed data: the flow's own cost.
/// Shared data (quota counters) lives in an in-memory store like Envoy's.
struct NullHost {
    body: Rc<Vec<u8>>,
    chunk: Option<Rc<Vec<u8>>>,
    stream: bool,
    store: MemStore,
}

impl NullHost {
    fn new(body: &Rc<Vec<u8>>, stream: bool) -> Self {
        NullHost {
            body: Rc::clone(body),
            chunk: None,
            stream,
            store: MemStore::default(),
        }
    }
}

impl Host for NullHost {
    fn request_header(&self, name: &str) -> Option<String> {
        match name {
            ":path" => Some("/v1/chat/completions".into()),
            ":method" => Some("POST".into()),
            "content-length" => Some(self.body.len().to_string()),
            "authorization" => Some("Bearer sk-client".into()),
            _ => None,
        }
    }
    fn set_request_header(&mut self, _: &str, _: &str) {}
    fn remove_request_header(&mut self, _: &str) {}
    fn edit_request_body(&mut self, body: &[u8], edit: &llm_gateway::host::BodyEdit) {
        black_box(edit.pieces(body));
    }
    fn clear_route_cache(&mut self) {}
    fn send_reply(&mut self, _: u32, _: &[u8], _: &[(&str, &str)]) {
        panic!("unexpected local reply");
    }
    fn set_attribute(&mut self, _: &str, value: &[u8]) {
        black_box(value);
    }
    fn now_ns(&self) -> u64 {
        1_000_000_000
    }
    fn define_metric(&mut self, _: MetricKind, name: &str) -> Option<u32> {
        Some(name.len() as u32)
    }
    fn increment_metric(&mut self, _: u32, _: u64) {}
    fn record_metric(&mut self, _: u32, _: u64) {}
    fn property(&self, _: &[&str]) -> Option<Vec<u8>> {
        None
    }
    fn shared_data(&mut self) -> &mut dyn SharedStore {
        &mut self.store
    }
    fn dispatch_grpc(&mut self, _: &str, _: &str, _: &str, _: &[u8], _: u64) -> Option<u32> {
        None
    }
    fn resume_request(&mut self) {}
}

impl BodyHost for NullHost {
    fn request_body(&self, len: usize) -> Option<PlacedBuf> {
        // Envoy copies the body into the Wasm VM: so does this.
        Some(self.body.get(..len)?.to_vec().into())
    }
    fn response_body(&self, len: usize) -> Option<PlacedBuf> {
        Some(self.chunk.as_ref()?.get(..len)?.to_vec().into())
    }
    fn response_header(&self, name: &str) -> Option<String> {
        match name {
            ":status" => Some("200".into()),
            "content-type" if self.stream => Some("text/event-stream".into()),
            "content-type" => Some("application/json".into()),
            _ => None,
        }
    }
    fn set_response_header(&mut self, _: &str, _: &str) {}
    fn remove_response_header(&mut self, _: &str) {}
    fn replace_response_body(&mut self, body: &[u8]) {
        black_box(body);
    }
}

fn bench_flow(c: &mut Criterion) {
    let cfg = Rc::new(config());
    let metrics = Rc::new(RefCell::new(Worker::default()));
    let mut g = c.benchmark_group("flow");
    for &(name, size) in SIZES {
        let body = Rc::new(chat_body(size, false));
        let resp = Rc::new(CHAT_COMPLETION.to_vec());
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("request_json_response", name), |b| {
            b.iter(|| {
                let mut host = NullHost::new(&body, false);
                host.chunk = Some(Rc::clone(&resp));
                let mut f = RequestFlow::new(Rc::clone(&cfg), Rc::clone(&metrics));
                f.on_request_headers(&mut host, false);
                f.on_request_body(&mut host, body.len(), true);
                f.on_response_headers(&mut host, false);
                f.on_response_body(&mut host, resp.len(), true);
                f.on_log(&mut host);
            })
        });
    }
    let body = Rc::new(chat_body(1024, true));
    let events: Vec<Rc<Vec<u8>>> = openai_events().into_iter().map(Rc::new).collect();
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("stream_1KB_one_chunk_per_event", |b| {
        b.iter(|| {
            let mut host = NullHost::new(&body, true);
            let mut f = RequestFlow::new(Rc::clone(&cfg), Rc::clone(&metrics));
            f.on_request_headers(&mut host, false);
            f.on_request_body(&mut host, body.len(), true);
            f.on_response_headers(&mut host, false);
            for (i, ev) in events.iter().enumerate() {
                host.chunk = Some(Rc::clone(ev));
                f.on_response_body(&mut host, ev.len(), i + 1 == events.len());
            }
            f.on_log(&mut host);
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_request,
    bench_response,
    bench_stream,
    bench_anthropic,
    bench_flow
);

/// `HOT_PATHS_DRIVER=<case>:<iterations>` runs one case a fixed number of times instead of
/// the criterion benchmarks: a deterministic native driver for `valgrind --tool=callgrind`
/// (instruction counts do not depend on the machine's load, timings here do). Cases:
/// `flow<N>k` (an N KiB non-streaming request and its JSON response, e.g. `flow4k`) and
/// `stream<N>k` (an N KiB streaming request and a 24-chunk answer, e.g. `stream1k`) and
/// `quota<N>k` (`flow<N>k` with a consumer's virtual key and two local quota rules),
/// `astream<N>k` (a streaming request to an Anthropic provider, its stream translated) and
/// `to_messages<N>k` (the OpenAI → Anthropic request translation of an N KiB request) and
/// `estimate<N>k` (the prompt-token estimate of an N KiB streamed request).
/// Instructions per iteration =
/// (Ir at 2N − Ir at N) / N.
fn driver(spec: &str) {
    let (case, n) = spec.split_once(':').unwrap_or((spec, "1000"));
    let n: usize = n.parse().expect("iterations");
    if let Some(kib) = case.strip_prefix("to_messages") {
        // The OpenAI → Anthropic request translation alone.
        let kib: usize = kib.trim_end_matches('k').parse().expect("to_messages<N>k");
        let body = chat_body(kib * 1024, false);
        for _ in 0..n {
            black_box(
                tr::chat_request_to_messages(&body, "claude-x", 4096)
                    .map(|b| b.len())
                    .ok(),
            );
        }
        return;
    }
    if let Some(kib) = case.strip_prefix("estimate") {
        // The prompt-token estimate of a streamed request alone.
        let kib: usize = kib.trim_end_matches('k').parse().expect("estimate<N>k");
        let body = chat_body(kib * 1024, true);
        for _ in 0..n {
            black_box(estimate::estimate_request_input_tokens(black_box(&body)));
        }
        return;
    }
    let json = if case.starts_with("quota") {
        QUOTA_CONFIG
    } else if case.starts_with("astream") {
        ANTHROPIC_CONFIG
    } else {
        CONFIG
    };
    let cfg = Rc::new(Config::parse(json.as_bytes(), &|_: &str| None).expect("bench config"));
    let metrics = Rc::new(RefCell::new(Worker::default()));
    let stream = case.starts_with("stream") || case.starts_with("astream");
    let mut store = MemStore::default();
    let kib: usize = case
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .trim_end_matches('k')
        .parse()
        .expect("case: flow<N>k, stream<N>k, quota<N>k or astream<N>k");
    let body = Rc::new(chat_body(kib * 1024, stream));
    let chunks: Vec<Rc<Vec<u8>>> = if case.starts_with("astream") {
        // An Anthropic stream arriving in one piece (as from make bench's upstream).
        vec![Rc::new(anthropic_events().concat())]
    } else if stream {
        openai_events().into_iter().map(Rc::new).collect()
    } else {
        vec![Rc::new(CHAT_COMPLETION.to_vec())]
    };
    for _ in 0..n {
        let mut host = NullHost::new(&body, stream);
        // The counters outlive the request, as in Envoy's shared data.
        host.store = std::mem::take(&mut store);
        let mut f = RequestFlow::new(Rc::clone(&cfg), Rc::clone(&metrics));
        f.on_request_headers(&mut host, false);
        f.on_request_body(&mut host, body.len(), true);
        f.on_response_headers(&mut host, false);
        for (i, c) in chunks.iter().enumerate() {
            host.chunk = Some(Rc::clone(c));
            f.on_response_body(&mut host, c.len(), i + 1 == chunks.len());
        }
        f.on_log(&mut host);
        store = std::mem::take(&mut host.store);
    }
}

fn main() {
    if let Ok(spec) = std::env::var("HOT_PATHS_DRIVER") {
        driver(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
