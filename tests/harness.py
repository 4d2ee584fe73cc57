"""Test harness: real Envoy (from .venv) with the compiled filter, and mock providers.

Everything listens on 127.0.0.1 with ports chosen free per test.
"""
from __future__ import annotations

import copy
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVOY = ROOT / ".venv" / "bin" / "envoy"
WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "llm_gateway.wasm"
SHIPPED_CONFIG = ROOT / "envoy" / "envoy.yaml"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports: each socket stays bound until all are chosen (ports taken one
    at a time, each released before the next, can repeat)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --------------------------------------------------------------------------- mock provider

@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Streamed replies: (delay_seconds, bytes) pairs sent with chunked encoding.
    chunks: list[tuple[float, bytes]] | None = None


def chat_completion(model: str, prompt_tokens: int, completion_tokens: int, content: str = "Hello!") -> dict:
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1767225600,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class MockProvider:
    """An HTTP server that records every request and answers with `handler(recorded)`.

    The default handler answers OpenAI-style: chat completions with usage that varies per
    request (prompt 10+i, completion 20+2i), embeddings with prompt usage.
    """

    def __init__(self, name: str = "mock", handler: Callable[[Recorded], Reply] | None = None):
        self.name = name
        self.handler = handler or self.default_handler
        self.requests: list[Recorded] = []
        self.issued = {"prompt": 0, "completion": 0}
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def default_handler(self, req: Recorded) -> Reply:
        with self.lock:
            i = len(self.requests)
        try:
            model = req.json.get("model", "?")
        except Exception:
            return Reply(400, {"error": {"message": "mock: bad json", "type": "invalid_request_error"}})
        if req.path.endswith("/embeddings"):
            p = 5 + i
            with self.lock:
                self.issued["prompt"] += p
            return Reply(200, {"object": "list", "model": model,
                               "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                               "usage": {"prompt_tokens": p, "total_tokens": p}})
        p, c = 10 + i, 20 + 2 * i
        with self.lock:
            self.issued["prompt"] += p
            self.issued["completion"] += c
        return Reply(200, chat_completion(model, p, c, content=f"reply from {self.name}"))

    def start(self) -> "MockProvider":
        mock = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = _read_chunked(self.rfile)
                rec = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                reply = mock.handler(rec)
                with mock.lock:
                    mock.requests.append(rec)
                self.send_response(reply.status)
                headers = {k.lower(): v for k, v in reply.headers.items()}
                if reply.chunks is not None:
                    headers.setdefault("content-type", "text/event-stream")
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    try:
                        for delay, data in reply.chunks:
                            if delay:
                                time.sleep(delay)
                            if data:
                                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                                self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                body_out = reply.body
                if isinstance(body_out, (dict, list)):
                    body_out = json.dumps(body_out).encode()
                    headers.setdefault("content-type", "application/json")
                body_out = body_out or b""
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body_out)))
                self.end_headers()
                self.wfile.write(body_out)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def _read_chunked(f) -> bytes:
    out = b""
    while True:
        size = int(f.readline().strip().split(b";")[0], 16)
        if size == 0:
            f.readline()
            return out
        out += f.read(size)
        f.readline()


# --------------------------------------------------------------------------- envoy

def shipped_config() -> dict:
    return yaml.safe_load(SHIPPED_CONFIG.read_text())


def _wasm_filter(cfg: dict) -> dict:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    for f in hcm["http_filters"]:
        if f["name"] == "envoy.filters.http.wasm":
            return f["typed_config"]["config"]
    raise AssertionError("no wasm filter in shipped config")


NATIVE_DIR = ROOT / "target" / "native" / "release"
NATIVE_MODULE = NATIVE_DIR / "libllm_gateway.so"
# LLMGW_FILTER=native runs the tests against the native build (libllm_gateway.so, an Envoy
# dynamic module) instead of the Wasm filter: `make integration-native`.
NATIVE = os.environ.get("LLMGW_FILTER", "wasm") == "native"


def native_filter(plugin_json: str) -> dict:
    """The dynamic-module http_filters entry that loads libllm_gateway.so with `plugin_json`."""
    return {"name": "envoy.filters.http.dynamic_modules", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
        "dynamic_module_config": {"name": "llm_gateway", "do_not_close": True},
        "filter_name": "llm_gateway",
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin_json}}}


def use_native(cfg: dict) -> None:
    """Replaces the Wasm filter of `cfg` by the native module with the same configuration."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    filters = hcm["http_filters"]
    for i, f in enumerate(filters):
        if f["name"] == "envoy.filters.http.wasm":
            filters[i] = native_filter(f["typed_config"]["config"]["configuration"]["value"])


NATIVE_METRIC_PREFIX = "envoy_dynamicmodulescustom_"


def native_env() -> dict:
    return {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(NATIVE_DIR)}


def shipped_plugin_config() -> dict:
    return json.loads(_wasm_filter(shipped_config())["configuration"]["value"])


def static_cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def grpc_cluster(name: str, port: int) -> dict:
    """A cluster on 127.0.0.1 speaking HTTP/2, as gRPC services (the rate limit service) need."""
    cluster = static_cluster(name, port)
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    return cluster


class Envoy:
    """The shipped envoy/envoy.yaml with free ports, the built wasm, and optionally another
    plugin configuration and extra clusters (name -> port on 127.0.0.1)."""

    def __init__(self, plugin_config: dict | None = None, clusters: dict[str, int] | None = None,
                 env: dict[str, str] | None = None, concurrency: int = 1, mutate: Callable[[dict], None] | None = None):
        self.port, self.admin_port, self.demo_port = free_ports(3)
        self.env = env or {}
        self.concurrency = concurrency
        cfg = shipped_config()
        cfg["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        cfg["stats_flush_interval"] = "0.5s"
        listeners = cfg["static_resources"]["listeners"]
        listeners[0]["address"]["socket_address"]["port_value"] = self.port
        listeners[1]["address"]["socket_address"]["port_value"] = self.demo_port
        wasm = _wasm_filter(cfg)
        wasm["vm_config"]["code"]["local"]["filename"] = str(WASM)
        keys = set(wasm["vm_config"].get("environment_variables", {}).get("host_env_keys", []))
        keys |= set(self.env)
        wasm["vm_config"]["environment_variables"] = {"host_env_keys": sorted(keys)}
        if plugin_config is not None:
            wasm["configuration"]["value"] = json.dumps(plugin_config)
        new_clusters = [static_cluster("demo", self.demo_port)]
        for name, port in (clusters or {}).items():
            new_clusters.append(static_cluster(name, port))
        cfg["static_resources"]["clusters"] = new_clusters
        if mutate:
            mutate(cfg)
        if NATIVE:
            use_native(cfg)
        self.config = cfg
        self.dir = Path(tempfile.mkdtemp(prefix="llmgw-"))
        self.config_path = self.dir / "envoy.json"
        self.log_path = self.dir / "envoy.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> "Envoy":
        self.config_path.write_text(json.dumps(self.config))
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update(self.env)
        env.update(native_env())  # where Envoy finds the native module, when the config loads it
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(ENVOY), "-c", str(self.config_path), "--concurrency", str(self.concurrency),
             "--disable-hot-restart", "--file-flush-interval-msec", "100", "-l", "info", "--log-format", "[%l] %v"],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited ({self.proc.returncode}):\n{self.log()}")
            try:
                status, _, body = request("GET", self.admin_port, "/ready")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"envoy did not become ready:\n{self.log()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def access_log_lines(self) -> list[str]:
        return [l for l in self.log().splitlines() if l.startswith("[20") and '" ' in l]

    # ---- requests
    def post(self, path: str, body, headers: dict | None = None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"content-type": "application/json"}
        h.update(headers or {})
        return request("POST", self.port, path, data, h)

    def chat(self, model: str, content: str = "hi", headers: dict | None = None, **extra):
        body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
        return self.post("/v1/chat/completions", body, headers)

    # ---- stats
    def prometheus(self) -> dict[tuple, float]:
        _, _, body = request("GET", self.admin_port, "/stats/prometheus")
        return parse_prometheus(body.decode())

    def metric(self, name: str, **labels) -> float:
        """Sum of every series of `name` whose labels include `labels`."""
        total = 0.0
        for (n, ls), v in self.prometheus().items():
            if n == name and all(dict(ls).get(k) == str(v2) for k, v2 in labels.items()):
                total += v
        return total

    def wait_metric(self, name: str, expected: float, timeout: float = 10, **labels) -> float:
        deadline = time.time() + timeout
        value = self.metric(name, **labels)
        while value != expected and time.time() < deadline:
            time.sleep(0.2)
            value = self.metric(name, **labels)
        return value

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
_PROM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> dict[tuple, float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _PROM_LINE.match(line)
        if not m:
            continue
        labels = tuple(sorted(_PROM_LABEL.findall(m.group(3) or "")))
        # The native module's metrics carry Envoy's dynamic-module prefix; the tests name
        # them as the Wasm build's.
        name = m.group(1).removeprefix(NATIVE_METRIC_PREFIX)
        out[(name, labels)] = float(m.group(4))
    return out


def request(method: str, port: int, path: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def validate_config(cfg: dict, native: bool | None = None) -> subprocess.CompletedProcess:
    """`envoy --mode validate` on a config dict (instantiates the wasm, runs on_configure; or,
    with `native` (default: LLMGW_FILTER=native), loads the native module in its place)."""
    native = NATIVE if native is None else native
    if native:
        cfg = copy.deepcopy(cfg)
        use_native(cfg)
    d = Path(tempfile.mkdtemp(prefix="llmgw-validate-"))
    p = d / "envoy.json"
    p.write_text(json.dumps(cfg))
    return subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(p), "-l", "info"],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=120,
                          env={**os.environ, **native_env()})


# --------------------------------------------------------------------------- streaming

def openai_sse(model: str, pieces: list[str], usage: tuple[int, int] | None, include_usage: bool,
               finish_reason: str = "stop") -> list[bytes]:
    """The events of an OpenAI chat.completion.chunk stream, as OpenAI sends them: with
    include_usage, every chunk has `"usage":null` and a final chunk with empty choices
    carries the usage."""
    def event(obj) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    base = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1767225600,
            "model": model, "system_fingerprint": "fp_mock"}
    extra = {"usage": None} if include_usage else {}
    out = [event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": None, "finish_reason": None}], **extra})]
    for p in pieces:
        out.append(event({**base, "choices": [{"index": 0, "delta": {"content": p}, "logprobs": None,
                                                "finish_reason": None}], **extra}))
    out.append(event({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                            "finish_reason": finish_reason}], **extra}))
    if include_usage and usage:
        p, c = usage
        out.append(event({**base, "choices": [], "usage": {
            "prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}}))
    out.append(b"data: [DONE]\n\n")
    return out


def split_odd(events: list[bytes], delay: float, cut: int = 7) -> list[tuple[float, bytes]]:
    """Sends the stream in writes that cut events at odd byte offsets (never on event
    boundaries), each write `delay` seconds after the previous one."""
    data = b"".join(events)
    chunks, pos, step = [], 0, max(1, cut)
    sizes = [step, 3 * step + 1, 11, 2 * step + 5]
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)] + len(data) // (len(events) + 1)
        chunks.append((delay if i else 0.0, data[pos:pos + n]))
        pos += n
        i += 1
    return chunks


def stream_request(port: int, body: dict, headers: dict | None = None, read_chunks: int | None = None,
                   timeout: float = 30, path: str = "/v1/chat/completions"):
    """POSTs and reads the response incrementally. Returns (status, headers, [(t, bytes)]);
    with read_chunks, closes the connection after that many reads (a client going away)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"content-type": "application/json"}
    h.update(headers or {})
    conn.request("POST", path, body=json.dumps(body).encode(), headers=h)
    resp = conn.getresponse()
    got = []
    while True:
        if read_chunks is not None and len(got) >= read_chunks:
            conn.sock.close()
            break
        data = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not data:
            break
        got.append((time.time(), data))
    status = resp.status
    hdrs = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return status, hdrs, got
