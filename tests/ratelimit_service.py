"""A small rate limit service for the integration tests of the gateway's global quota mode.

It speaks Envoy's rate limit service protocol
(`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) over gRPC and keeps its
counters in a real Redis, updated by one atomic Lua script per call. It exists so tests can
run a cluster-wide quota with nothing but `grpcio`, `redis` and Debian's `redis-server`;
operators run Limitador or envoyproxy/ratelimit in production (see docs/quotas.md).

Semantics (close to envoyproxy/ratelimit, with one difference stated below):

* fixed windows aligned to the Unix epoch: SECOND 1 s, MINUTE 60 s, HOUR 3600 s,
  DAY 86400 s, MONTH 30 days, YEAR 365 days (envoyproxy/ratelimit's dividers);
* a descriptor's limit is its `limit` override when the request carries one, else the
  first configured limit whose entries are a prefix of the descriptor's entries, else it
  is unlimited (status OK without `current_limit`);
* `hits_addend` 0 counts as 1 (proto3 cannot tell 0 from "not set");
* a call is OVER_LIMIT when adding its hits would take any limited descriptor above its
  limit; then **nothing** is added (envoyproxy/ratelimit adds the hits anyway).

The protobuf messages are encoded and decoded by hand (no protoc): see `encode_request`,
`decode_request`, `encode_response`, `decode_response`.

Run standalone: `python tests/ratelimit_service.py --redis-port 6379 [--port 0] [--config limits.json]`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

SERVICE = "envoy.service.ratelimit.v3.RateLimitService"
METHOD = "ShouldRateLimit"
FULL_METHOD = f"/{SERVICE}/{METHOD}"

OK, OVER_LIMIT = 1, 2
UNITS = {"second": 1, "minute": 2, "hour": 3, "day": 4, "month": 5, "year": 6}
UNIT_SECONDS = {1: 1, 2: 60, 3: 3600, 4: 86400, 5: 30 * 86400, 6: 365 * 86400}


# --------------------------------------------------------------------------- protobuf wire format

def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _tag(field_no: int, wire: int) -> bytes:
    return _varint((field_no << 3) | wire)


def _uint(field_no: int, v: int) -> bytes:
    return _tag(field_no, 0) + _varint(v) if v else b""


def _len(field_no: int, data: bytes) -> bytes:
    return _tag(field_no, 2) + _varint(len(data)) + data


def _str(field_no: int, s: str) -> bytes:
    return _len(field_no, s.encode()) if s else b""


def _fields(buf: bytes):
    """Yields (field number, wire type, value) of one message; raises ValueError when malformed."""
    pos = 0

    def varint():
        nonlocal pos
        v, shift = 0, 0
        while True:
            if pos >= len(buf) or shift > 63:
                raise ValueError("bad varint")
            b = buf[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while pos < len(buf):
        key = varint()
        f, wire = key >> 3, key & 7
        if f == 0:
            raise ValueError("field 0")
        if wire == 0:
            yield f, wire, varint()
        elif wire == 2:
            n = varint()
            if pos + n > len(buf):
                raise ValueError("truncated field")
            yield f, wire, buf[pos:pos + n]
            pos += n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            if pos + n > len(buf):
                raise ValueError("truncated fixed field")
            yield f, wire, int.from_bytes(buf[pos:pos + n], "little")
            pos += n
        else:
            raise ValueError(f"wire type {wire}")


@dataclass
class Descriptor:
    entries: list[tuple[str, str]]
    limit: tuple[int, int] | None = None  # (requests_per_unit, unit)


@dataclass
class Request:
    domain: str
    descriptors: list[Descriptor]
    hits_addend: int = 0


@dataclass
class Status:
    code: int
    limit: tuple[int, int] | None = None  # current_limit (requests_per_unit, unit)
    remaining: int = 0
    reset_seconds: float | None = None


@dataclass
class Response:
    overall_code: int
    statuses: list[Status] = field(default_factory=list)


def encode_request(req: Request) -> bytes:
    out = _str(1, req.domain)
    for d in req.descriptors:
        body = b"".join(_len(1, _str(1, k) + _str(2, v)) for k, v in d.entries)
        if d.limit is not None:
            body += _len(2, _uint(1, d.limit[0]) + _uint(2, d.limit[1]))
        out += _len(2, body)
    return out + _uint(3, req.hits_addend)


def decode_request(buf: bytes) -> Request:
    req = Request("", [])
    for f, w, v in _fields(buf):
        if f == 1 and w == 2:
            req.domain = v.decode()
        elif f == 2 and w == 2:
            d = Descriptor([])
            for df, dw, dv in _fields(v):
                if df == 1 and dw == 2:
                    kv = {ef: ev.decode() for ef, ew, ev in _fields(dv) if ew == 2}
                    d.entries.append((kv.get(1, ""), kv.get(2, "")))
                elif df == 2 and dw == 2:
                    o = {of: ov for of, ow, ov in _fields(dv) if ow == 0}
                    d.limit = (o.get(1, 0), o.get(2, 0))
            req.descriptors.append(d)
        elif f == 3 and w == 0:
            req.hits_addend = v
    return req


def encode_response(resp: Response) -> bytes:
    out = _uint(1, resp.overall_code)
    for s in resp.statuses:
        body = _uint(1, s.code)
        if s.limit is not None:
            body += _len(2, _uint(1, s.limit[0]) + _uint(2, s.limit[1]))
        body += _uint(3, s.remaining)
        if s.reset_seconds is not None:
            secs = int(s.reset_seconds)
            nanos = int(round((s.reset_seconds - secs) * 1e9))
            body += _len(4, _uint(1, secs) + _uint(2, nanos))
        out += _len(2, body)
    return out


def decode_response(buf: bytes) -> Response:
    resp = Response(0)
    for f, w, v in _fields(buf):
        if f == 1 and w == 0:
            resp.overall_code = v
        elif f == 2 and w == 2:
            s = Status(0)
            for sf, sw, sv in _fields(v):
                if sf == 1 and sw == 0:
                    s.code = sv
                elif sf == 2 and sw == 2:
                    o = {lf: lv for lf, lw, lv in _fields(sv) if lw == 0}
                    s.limit = (o.get(1, 0), o.get(2, 0))
                elif sf == 3 and sw == 0:
                    s.remaining = sv
                elif sf == 4 and sw == 2:
                    d = {df: dv for df, dw, dv in _fields(sv) if dw == 0}
                    s.reset_seconds = d.get(1, 0) + d.get(2, 0) / 1e9
            resp.statuses.append(s)
    return resp


# --------------------------------------------------------------------------- counting in Redis

# KEYS: one counter key per limited descriptor (window included in the key).
# ARGV: hits, then (limit, ttl_seconds) per key.
# Returns: {over (0/1), value_1, …, value_n} — values after the call (unchanged when over).
LUA = """
local hits = tonumber(ARGV[1])
local current = {}
local over = 0
for i, key in ipairs(KEYS) do
  local v = tonumber(redis.call('GET', key) or '0')
  current[i] = v
  if v + hits > tonumber(ARGV[2 * i]) then over = 1 end
end
if over == 0 then
  for i, key in ipairs(KEYS) do
    current[i] = redis.call('INCRBY', key, hits)
    redis.call('EXPIRE', key, tonumber(ARGV[2 * i + 1]))
  end
end
local out = {over}
for i = 1, #KEYS do out[#out + 1] = current[i] end
return out
"""


@dataclass
class ConfiguredLimit:
    entries: list[tuple[str, str]]
    requests_per_unit: int
    unit: int


def load_limits(config: dict | None) -> list[ConfiguredLimit]:
    """`{"descriptors": [{"entries": [["llm_gateway_rule", "r"]], "requests_per_unit": 100, "unit": "minute"}]}`."""
    out = []
    for d in (config or {}).get("descriptors", []):
        unit = d["unit"]
        out.append(ConfiguredLimit([tuple(e) for e in d["entries"]], int(d["requests_per_unit"]),
                                   UNITS[unit] if isinstance(unit, str) else int(unit)))
    return out


class Limiter:
    def __init__(self, redis_client, limits: list[ConfiguredLimit] | None = None, clock=time.time):
        self.redis = redis_client
        self.limits = limits or []
        self.clock = clock
        self.script = redis_client.register_script(LUA)
        self.calls: list[Request] = []

    def limit_for(self, d: Descriptor) -> tuple[int, int] | None:
        if d.limit is not None and d.limit[0] > 0 and d.limit[1] in UNIT_SECONDS:
            return d.limit
        for c in self.limits:
            if d.entries[:len(c.entries)] == c.entries:
                return (c.requests_per_unit, c.unit)
        return None

    def should_rate_limit(self, req: Request) -> Response:
        self.calls.append(req)
        now = self.clock()
        hits = max(1, req.hits_addend)
        keys, argv, limited = [], [hits], []
        for i, d in enumerate(req.descriptors):
            lim = self.limit_for(d)
            if lim is None:
                continue
            per, unit = lim
            secs = UNIT_SECONDS[unit]
            start = int(now) - int(now) % secs
            entries = "|".join(f"{len(k)}:{k}={len(v)}:{v}" for k, v in d.entries)
            keys.append(f"rls|{req.domain}|{entries}|{unit}|{start}")
            argv += [per, secs + 5]
            limited.append((i, per, unit, start + secs - now))
        statuses = [Status(OK) for _ in req.descriptors]
        if not keys:
            return Response(OK, statuses)
        over, *values = self.script(keys=keys, args=argv)
        for (i, per, unit, reset), value in zip(limited, values):
            exceeds = value + hits > per if over else False
            statuses[i] = Status(OVER_LIMIT if exceeds else OK, (per, unit),
                                 0 if exceeds else max(0, per - value), reset)
        return Response(OVER_LIMIT if over else OK, statuses)


# --------------------------------------------------------------------------- gRPC server

class RateLimitService:
    """The gRPC server (in-process). `port` 0 picks a free port."""

    def __init__(self, redis_port: int, limits: list[ConfiguredLimit] | None = None, port: int = 0):
        import grpc
        import redis

        self.limiter = Limiter(redis.Redis(host="127.0.0.1", port=redis_port), limits)
        self._grpc = grpc
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))

        def handle(request: bytes, context):
            try:
                req = decode_request(request)
            except (ValueError, UnicodeDecodeError) as e:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed RateLimitRequest: {e}")
            return encode_response(self.limiter.should_rate_limit(req))

        handler = grpc.method_handlers_generic_handler(SERVICE, {
            METHOD: grpc.unary_unary_rpc_method_handler(handle),  # bytes in, bytes out
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")

    def start(self) -> "RateLimitService":
        self.server.start()
        return self

    def stop(self):
        self.server.stop(grace=None)

    @property
    def calls(self) -> list[Request]:
        return self.limiter.calls


def call(port: int, req: Request, timeout: float = 5) -> Response:
    """A ShouldRateLimit call over gRPC with the hand-written encoder."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        rpc = ch.unary_unary(FULL_METHOD)  # no (de)serialisers: bytes
        return decode_response(rpc(encode_request(req), timeout=timeout))


# --------------------------------------------------------------------------- redis-server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """`redis-server` on 127.0.0.1 and a free port, without persistence."""

    def __init__(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found: run `make setup` (installs Debian's redis-server)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="llmgw-redis-"))
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-port", type=int, required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--config", help="JSON file with configured limits")
    a = p.parse_args()
    limits = load_limits(json.loads(Path(a.config).read_text())) if a.config else []
    svc = RateLimitService(a.redis_port, limits, a.port).start()
    print(f"ratelimit service listening on 127.0.0.1:{svc.port}", flush=True)
    try:
        svc.server.wait_for_termination()
    except KeyboardInterrupt:
        svc.stop()


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
