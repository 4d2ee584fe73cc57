"""The test rate limit service on its own: real redis-server, real gRPC, hand-encoded protobuf."""
from __future__ import annotations

import threading

import pytest

from ratelimit_service import (
    OK, OVER_LIMIT, UNITS, ConfiguredLimit, Descriptor, Limiter, RateLimitService, RedisServer,
    Request, Response, Status, call, decode_request, decode_response, encode_request, encode_response,
)

MINUTE, DAY = UNITS["minute"], UNITS["day"]


@pytest.fixture(scope="module")
def redis_server():
    r = RedisServer()
    yield r
    r.stop()


@pytest.fixture
def service(redis_server):
    import redis

    redis.Redis(host="127.0.0.1", port=redis_server.port).flushall()
    svc = RateLimitService(redis_server.port, [
        ConfiguredLimit([("llm_gateway_rule", "configured")], 100, MINUTE),
    ]).start()
    yield svc
    svc.stop()


def rule(name: str, limit: int | None = None, unit: int = MINUTE, **group) -> Descriptor:
    return Descriptor([("llm_gateway_rule", name), *group.items()],
                      None if limit is None else (limit, unit))


def test_wire_format_matches_the_rust_encoder():
    # The bytes of `request_encoding_matches_hand_computed_bytes` in src/quota/rls.rs.
    rust = bytes([0x0a, 0x01, ord("d"), 0x12, 0x0f, 0x0a, 0x06, 0x0a, 0x01, ord("k"), 0x12, 0x01, ord("v"),
                  0x12, 0x05, 0x08, 0xac, 0x02, 0x10, 0x02, 0x18, 0x96, 0x01])
    req = Request("d", [Descriptor([("k", "v")], (300, MINUTE))], 150)
    assert encode_request(req) == rust
    assert decode_request(rust) == req
    # And the response bytes of `response_decoding_of_hand_encoded_bytes`.
    resp = decode_response(bytes([0x08, 0x02, 0x12, 0x0f, 0x08, 0x01, 0x12, 0x05, 0x08, 0xe8, 0x07, 0x10, 0x02,
                                  0x18, 0x2a, 0x22, 0x02, 0x08, 0x07, 0x12, 0x02, 0x08, 0x02, 0x1a, 0x00]))
    assert resp == Response(OVER_LIMIT, [Status(OK, (1000, MINUTE), 42, 7.0), Status(OVER_LIMIT)])
    assert decode_response(encode_response(resp)) == resp


def test_hits_are_counted_until_the_limit(service):
    d = [rule("r", 1000, consumer="team-a")]
    r = call(service.port, Request("llm-gateway", d, 600))
    assert r.overall_code == OK
    assert (r.statuses[0].code, r.statuses[0].limit, r.statuses[0].remaining) == (OK, (1000, MINUTE), 400)
    assert 0 < r.statuses[0].reset_seconds <= 60
    r = call(service.port, Request("llm-gateway", d, 400))
    assert (r.overall_code, r.statuses[0].remaining) == (OK, 0)
    r = call(service.port, Request("llm-gateway", d, 1))
    assert (r.overall_code, r.statuses[0].code, r.statuses[0].remaining) == (OVER_LIMIT, OVER_LIMIT, 0)
    # Another group value has its own counter; another domain too.
    assert call(service.port, Request("llm-gateway", [rule("r", 1000, consumer="team-b")], 1000)).overall_code == OK
    assert call(service.port, Request("other", d, 1000)).overall_code == OK


def test_over_limit_adds_nothing_and_is_all_or_nothing(service):
    d = [rule("small", 100), rule("big", 10_000, unit=DAY)]
    assert call(service.port, Request("llm-gateway", d, 90)).overall_code == OK
    r = call(service.port, Request("llm-gateway", d, 20))
    assert r.overall_code == OVER_LIMIT
    assert [s.code for s in r.statuses] == [OVER_LIMIT, OK]
    assert r.statuses[1].remaining == 10_000 - 90  # the big counter was not charged
    assert 0 < r.statuses[1].reset_seconds <= 86_400
    r = call(service.port, Request("llm-gateway", d, 10))
    assert r.overall_code == OK
    assert [s.remaining for s in r.statuses] == [0, 10_000 - 100]


def test_configured_limits_and_unlimited_descriptors(service):
    # No override: the configured prefix limit applies (per full descriptor).
    d = [rule("configured", consumer="a")]
    assert call(service.port, Request("llm-gateway", d, 100)).statuses[0].remaining == 0
    assert call(service.port, Request("llm-gateway", d, 1)).overall_code == OVER_LIMIT
    # Unknown descriptor without override: OK, no current_limit, nothing counted.
    r = call(service.port, Request("llm-gateway", [rule("unknown")], 10**9))
    assert r.overall_code == OK and r.statuses[0].limit is None
    # hits_addend 0 means 1.
    d = [rule("one", 2)]
    assert call(service.port, Request("llm-gateway", d, 0)).statuses[0].remaining == 1


def test_concurrent_calls_never_overshoot(service):
    d = [rule("race", 1000)]
    results = []

    def worker():
        for _ in range(10):
            results.append(call(service.port, Request("llm-gateway", d, 30)).overall_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 80 calls of 30 against 1000: exactly 33 fit.
    assert results.count(OK) == 33
    assert call(service.port, Request("llm-gateway", d, 10)).statuses[0].remaining == 0


def test_malformed_request_is_invalid_argument(service):
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as ch:
        rpc = ch.unary_unary("/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit")
        with pytest.raises(grpc.RpcError) as e:
            rpc(b"\x0b", timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_fixed_windows_roll_over(redis_server):
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    now = [1_795_413_059.5]  # 0.5 s before a minute boundary
    lim = Limiter(client, clock=lambda: now[0])
    d = [rule("roll", 10)]
    r = lim.should_rate_limit(Request("w", d, 10))
    assert r.overall_code == OK and abs(r.statuses[0].reset_seconds - 0.5) < 1e-6
    assert lim.should_rate_limit(Request("w", d, 1)).overall_code == OVER_LIMIT
    now[0] += 1
    assert lim.should_rate_limit(Request("w", d, 10)).overall_code == OK
