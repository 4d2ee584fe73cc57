"""Consumers, model access and token quotas through the real filter in real Envoy:
local reservations exact across workers, refunds, and one limit shared by two Envoys
through a real rate limit service over a real Redis."""
import hashlib
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import Envoy, MockProvider, Reply, chat_completion, grpc_cluster, request
from ratelimit_service import RateLimitService, RedisServer

PROVIDER_KEY = "sk-provider-quota-test"
KEYS = {f"team-{c}": f"sk-virtual-team-{c}-{c * 8}" for c in "abcd"}


def sha(k: str) -> str:
    return hashlib.sha256(k.encode()).hexdigest()


def plugin_config(rules, consumers=None, mode_extra=None, **extra):
    consumers = consumers if consumers is not None else [{"name": n, "key_sha256": sha(k)} for n, k in KEYS.items()]
    quotas = {"rules": rules, "default_max_tokens": 256}
    quotas.update(mode_extra or {})
    cfg = {
        "providers": [{"name": "openai", "type": "openai", "cluster": "up", "api_key_env": "OPENAI_API_KEY"}],
        "models": [{"match": "gpt-*", "provider": "openai"}, {"match": "fast", "provider": "openai",
                                                            "upstream_model": "gpt-4o-mini"}],
        "consumers": consumers,
    }
    if rules:
        cfg["quotas"] = quotas
    cfg.update(extra)
    return cfg


class UsageMock(MockProvider):
    """Answers with prompt 12 and a completion that never exceeds the request's max_tokens
    (so reservations cover real usage), varying per request; optional delay."""

    def __init__(self, delay: float = 0.0):
        super().__init__("quota", self.answer)
        self.delay = delay
        self.n = 0

    def answer(self, req):
        with self.lock:
            self.n += 1
            n = self.n
        body = req.json
        if self.delay:
            time.sleep(self.delay)
        max_tokens = body.get("max_tokens") or 256
        completion = 1 + (n * 7) % max_tokens
        return Reply(200, chat_completion(body["model"], 12, completion))


def body_for(max_tokens: int, model: str = "gpt-4o-mini") -> bytes:
    return json.dumps({"model": model, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "count to ten"}]}).encode()


def reservation(body: bytes, max_tokens: int) -> int:
    # Documented reservation: ceil(body bytes / 4) for the input, plus max_tokens.
    return math.ceil(len(body) / 4) + max_tokens


def post(gw, body: bytes, key: str | None):
    h = {"content-type": "application/json"}
    if key:
        h["authorization"] = f"Bearer {key}"
    return gw.post("/v1/chat/completions", body, h)


@pytest.fixture
def umock():
    m = UsageMock().start()
    yield m
    m.stop()


def test_identity_and_access_errors_are_openai_format(umock):
    consumers = [{"name": "team-a", "key_sha256": sha(KEYS["team-a"]), "models": ["fast", "gpt-4o-mini"]}]
    with Envoy(plugin_config([], consumers=consumers), {"up": umock.port},
               env={"OPENAI_API_KEY": PROVIDER_KEY}) as gw:
        for key, status, code in [(None, 401, "invalid_api_key"), ("sk-wrong", 401, "invalid_api_key")]:
            s, h, b = post(gw, body_for(10), key)
            assert s == status and json.loads(b)["error"]["code"] == code, b
        s, _, b = post(gw, body_for(10, model="gpt-4.1"), KEYS["team-a"])
        assert s == 403 and json.loads(b)["error"]["code"] == "model_not_allowed", b
        s, _, b = post(gw, b'{"model":"fast","max_tokens":"lots","messages":[]}', KEYS["team-a"])
        assert s == 400, b
        s, _, b = post(gw, b'{"model":"fast","max_tokens":-5,"messages":[]}', KEYS["team-a"])
        assert s == 400, b
        assert umock.requests == []
        # x-api-key works too (the Anthropic SDK style); the alias is allowed; the
        # virtual key never reaches the provider.
        s, _, b = gw.post("/v1/chat/completions", body_for(10, model="fast"), {"x-api-key": KEYS["team-a"]})
        assert s == 200, b
        rec = umock.requests[0]
        assert rec.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
        assert KEYS["team-a"] not in json.dumps(rec.headers)
        assert gw.wait_metric("llm_gateway_rejected_total", 2, reason="invalid_api_key") == 2
        assert gw.metric("llm_gateway_rejected_total", reason="model_not_allowed") == 1


def test_reservation_blocks_then_refund_frees(tmp_path):
    slow = UsageMock(delay=1.0).start()
    try:
        rules = [{"name": "team-day", "limit": 1000, "window": "day", "group_by": ["consumer"]}]
        with Envoy(plugin_config(rules), {"up": slow.port}, env={"OPENAI_API_KEY": PROVIDER_KEY}) as gw:
            key = KEYS["team-a"]
            first = body_for(600)
            results = {}
            t = threading.Thread(target=lambda: results.setdefault("first", post(gw, first, key)))
            t.start()
            time.sleep(0.4)  # the first request holds its reservation at the provider
            second = body_for(500)
            assert reservation(first, 600) + reservation(second, 500) > 1000
            s, h, b = post(gw, second, key)
            assert s == 429, b
            err = json.loads(b)["error"]
            assert err["code"] == "rate_limit_exceeded"
            assert int(h["retry-after"]) >= 1
            assert int(h["x-ratelimit-limit-tokens"]) == 1000
            assert int(h["x-ratelimit-remaining-tokens"]) == 1000 - reservation(first, 600)
            t.join()
            s1, h1, b1 = results["first"]
            assert s1 == 200
            used = json.loads(b1)["usage"]["total_tokens"]
            assert int(h1["x-ratelimit-limit-tokens"]) == 1000
            assert len(slow.requests) == 1  # the refused request never reached the provider
            # The unused part of the first reservation came back: the same request now fits.
            assert used + reservation(second, 500) <= 1000
            s, h, b = post(gw, second, key)
            assert s == 200, b
            assert len(slow.requests) == 2
    finally:
        slow.stop()


def test_local_limits_are_exact_across_two_workers(umock):
    limit = 30_000
    rules = [{"name": "team-day", "limit": limit, "window": "day", "group_by": ["consumer"]}]
    with Envoy(plugin_config(rules), {"up": umock.port}, env={"OPENAI_API_KEY": PROVIDER_KEY},
               concurrency=2) as gw:
        names = list(KEYS)
        jobs = [(names[i % len(names)], 40 + (i * 13) % 200) for i in range(2000)]
        admitted = {n: 0 for n in names}
        refused = {n: 0 for n in names}
        lock = threading.Lock()

        def one(job):
            name, max_tokens = job
            s, h, b = post(gw, body_for(max_tokens), KEYS[name])
            with lock:
                if s == 200:
                    admitted[name] += json.loads(b)["usage"]["total_tokens"]
                else:
                    assert s == 429, b
                    refused[name] += 1

        with ThreadPoolExecutor(max_workers=48) as pool:
            list(pool.map(one, jobs))
        for n in names:
            # No consumer went past its limit, by zero tokens.
            assert admitted[n] <= limit, (n, admitted[n])
            # The limit was really reached (some were refused), so the bound is tight.
            assert refused[n] > 0, n
        assert sum(refused.values()) + len(umock.requests) == 2000
        # Tokens charged per consumer equal what the provider reported, exactly.
        for n in names:
            charged = gw.wait_metric("llm_gateway_consumer_tokens_total", admitted[n], consumer=n, type="charged")
            assert charged == admitted[n], n
        assert gw.metric("llm_gateway_quota_limited_total", rule="team-day") == sum(refused.values())
        # Every request that reached the provider was counted as admitted by the rule.
        assert gw.metric("llm_gateway_quota_allowed_total", rule="team-day") == len(umock.requests)


@pytest.fixture(scope="module")
def redis_server():
    r = RedisServer()
    yield r
    r.stop()


def rls_cluster(port: int):
    def mutate(cfg):
        cfg["static_resources"]["clusters"].append(grpc_cluster("ratelimit", port))
    return mutate


@pytest.mark.wasm_only("global quotas (gRPC rate limit service)")
@pytest.mark.parametrize("failure_mode", ["allow", "deny"])
def test_two_envoys_share_one_limit_through_the_rate_limit_service(redis_server, umock, failure_mode):
    import redis
    redis.Redis(host="127.0.0.1", port=redis_server.port).flushall()
    svc = RateLimitService(redis_server.port).start()
    limit = 2000
    rules = [{"name": "shared-day", "limit": limit, "window": "day", "group_by": ["consumer"]}]
    global_cfg = {"mode": "global", "global": {"cluster": "ratelimit", "timeout_ms": 500,
                                                "failure_mode": failure_mode}}
    cfg = plugin_config(rules, mode_extra=global_cfg)
    env = {"OPENAI_API_KEY": PROVIDER_KEY}
    try:
        with Envoy(cfg, {"up": umock.port}, env=env, mutate=rls_cluster(svc.port)) as a, \
                Envoy(cfg, {"up": umock.port}, env=env, mutate=rls_cluster(svc.port)) as b:
            body = body_for(200)
            per_request = reservation(body, 200)
            fits = limit // per_request
            statuses = []
            for i in range(fits + 3):
                gw = (a, b)[i % 2]
                s, h, out = post(gw, body, KEYS["team-a"])
                statuses.append(s)
                if s == 200:
                    assert int(h["x-ratelimit-limit-tokens"]) == limit
            # Alternating between the two Envoys, the shared limit cuts off exactly.
            assert statuses == [200] * fits + [429] * 3, statuses
            assert len(umock.requests) == fits
            # Another consumer has its own counter.
            assert post(b, body, KEYS["team-b"])[0] == 200
            calls = svc.calls
            assert calls and all(c.domain == "llm-gateway" for c in calls)
            assert calls[0].hits_addend == per_request

            # The rate limit service goes away: the configured failure mode decides.
            svc.stop()
            s, _, out = post(a, body, KEYS["team-c"])
            if failure_mode == "allow":
                assert s == 200, out
                assert a.wait_metric("llm_gateway_quota_errors_total", 1, reason="service_failure_allowed") == 1
            else:
                assert s == 503, out
                assert json.loads(out)["error"]["code"] == "quota_service_unavailable"
    finally:
        svc.stop()


@pytest.mark.wasm_only("global quotas (gRPC rate limit service)")
def test_global_corrections_add_up_per_consumer_into_one_call_per_tick(redis_server):
    """Requests that cost more than they reserved are corrected: the service receives
    exactly each consumer's real cost, and the corrections of one consumer's requests
    within a tick arrive as one call, not one per request."""
    import redis
    redis.Redis(host="127.0.0.1", port=redis_server.port).flushall()
    svc = RateLimitService(redis_server.port).start()
    # Every answer reports 100 + 50 tokens, far above the reservation of a max_tokens=1 request.
    over = MockProvider("over", lambda req: Reply(200, chat_completion(req.json["model"], 100, 50))).start()
    rules = [{"name": "big-day", "limit": 1_000_000, "window": "day", "group_by": ["consumer"]}]
    cfg = plugin_config(rules, mode_extra={"mode": "global", "global": {"cluster": "ratelimit", "timeout_ms": 500}})
    try:
        with Envoy(cfg, {"up": over.port}, env={"OPENAI_API_KEY": PROVIDER_KEY},
                   mutate=rls_cluster(svc.port)) as gw:
            body = body_for(1)
            reserved = reservation(body, 1)
            n = 10
            for i in range(n):
                assert post(gw, body, KEYS[("team-a", "team-b")[i % 2]])[0] == 200
            expected = {"team-a": 150 * n // 2, "team-b": 150 * n // 2}

            def counted():
                per = {"team-a": 0, "team-b": 0}
                for c in svc.calls:
                    consumer = dict(c.descriptors[0].entries)["consumer"]
                    per[consumer] += c.hits_addend
                return per
            deadline = time.time() + 5
            while counted() != expected and time.time() < deadline:
                time.sleep(0.05)
            assert counted() == expected
            # A tick may fall between two requests: tell the calls apart by their hits
            # (every admission reserves `reserved`; corrections add multiples of 150 − reserved).
            assert reserved < 150 - reserved
            admissions = [c for c in svc.calls if c.hits_addend == reserved]
            corrections = [c for c in svc.calls if c.hits_addend != reserved]
            assert len(admissions) == n
            # Sequential requests take a few ms each: they fit in one or two 200 ms ticks.
            assert 2 <= len(corrections) < n, [c.hits_addend for c in corrections]
            assert all(c.hits_addend % (150 - reserved) == 0 for c in corrections)
            targets = [admissions[0].descriptors, admissions[1].descriptors]
            assert all(c.descriptors in targets for c in corrections)
            charged = gw.wait_metric("llm_gateway_consumer_tokens_total", 150 * n, type="charged")
            assert charged == 150 * n
    finally:
        svc.stop()
        over.stop()


def _b64url(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_jwt(secret: bytes, claims: dict) -> str:
    import hmac
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = _b64url(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


@pytest.mark.wasm_only("JWT identities")
def test_consumer_from_a_jwt_claim_of_envoys_jwt_authn(umock):
    """jwt_authn verifies the token and puts its payload in dynamic metadata; the gateway
    takes the consumer from the `sub` claim (no virtual keys configured)."""
    secret = b"test-secret-for-hs256-0123456789"
    jwks = {"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": _b64url(secret)}]}

    def mutate(cfg):
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"].insert(0, {
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {"test": {"issuer": "https://issuer.test", "local_jwks": {"inline_string": json.dumps(jwks)},
                                       "payload_in_metadata": "jwt_payload", "forward": True}},
                "rules": [{"match": {"prefix": "/v1/chat"}, "requires": {"provider_name": "test"}}],
            }})

    cfg = plugin_config([{"name": "per-user", "limit": 100000, "window": "day", "group_by": ["consumer"]}],
                        consumers=[{"name": "alice", "models": ["gpt-*"]}],
                        identity={"jwt": {"payload_in_metadata": "jwt_payload", "claim": "sub"}, "required": True})
    with Envoy(cfg, {"up": umock.port}, env={"OPENAI_API_KEY": PROVIDER_KEY}, mutate=mutate) as gw:
        now = int(time.time())
        token = hs256_jwt(secret, {"iss": "https://issuer.test", "sub": "alice", "iat": now, "exp": now + 600})
        s, h, b = gw.post("/v1/chat/completions", body_for(20), {"authorization": f"Bearer {token}"})
        assert s == 200, b
        usage = json.loads(b)["usage"]["total_tokens"]
        assert int(h["x-ratelimit-limit-tokens"]) == 100000
        # The caller's token never reaches the provider.
        assert umock.requests[0].headers["authorization"] == f"Bearer {PROVIDER_KEY}"
        assert gw.wait_metric("llm_gateway_consumer_tokens_total", usage, consumer="alice", type="charged") == usage
        # A different subject is identified too, but is not a configured consumer.
        other = hs256_jwt(secret, {"iss": "https://issuer.test", "sub": "mallory", "iat": now, "exp": now + 600})
        s, _, b = gw.post("/v1/chat/completions", body_for(20), {"authorization": f"Bearer {other}"})
        assert s == 200, b
        assert gw.wait_metric("llm_gateway_consumer_tokens_total", 1, consumer="unlisted", type="charged") > 0
        # A bad token is refused by jwt_authn before the gateway.
        s, _, _ = gw.post("/v1/chat/completions", body_for(20), {"authorization": "Bearer not.a.jwt"})
        assert s == 401
