"""Client-sent internal headers: the routing headers the gateway sets for Envoy are its own.

A client that sends `x-llm-gateway-cluster` (or the provider or stream header, or the names the
configuration gives them) must never choose a provider cluster: not on the gateway's
endpoints, not on any other path or method. Envoy may pick the route before the filter runs,
on the client's copy; the filter removes the copy and has Envoy route again. Run against
both builds (the native module once let these through: Envoy's dynamic-module host does not
clear the route cache on a header removal, the Wasm host does).
"""
import hashlib
import socket

import pytest

from harness import Envoy, MockProvider, Reply

PROVIDER_KEY = "sk-provider-secret-0123456789"
VIRTUAL_KEY = "vk-team-a-0123456789"


def sha(k: str) -> str:
    return hashlib.sha256(k.encode()).hexdigest()


def config(**extra):
    cfg = {
        "providers": [
            {"name": "alpha", "type": "openai", "cluster": "alpha", "host": "api.alpha.test",
             "path_prefix": "/v1", "api_key_env": "ALPHA_API_KEY"},
            {"name": "azure", "type": "azure_openai", "cluster": "azure_openai", "host": "res.openai.azure.com",
             "api_key_env": "ALPHA_API_KEY", "api_version": "2024-10-21"},
        ],
        "models": [{"match": "gpt-*", "provider": "alpha"}],
        "consumers": [{"name": "team-a", "key_sha256": sha(VIRTUAL_KEY)}],
    }
    cfg.update(extra)
    return cfg


def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Sends the request bytes as given (repeated headers, header case kept)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer


@pytest.fixture(scope="module")
def providers():
    alpha, azure = MockProvider("alpha").start(), MockProvider("azure").start()
    yield alpha, azure
    alpha.stop()
    azure.stop()


@pytest.fixture(scope="module")
def gw(providers):
    alpha, azure = providers
    with Envoy(config(), {"alpha": alpha.port, "azure_openai": azure.port},
               env={"ALPHA_API_KEY": PROVIDER_KEY}) as e:
        yield e


@pytest.fixture(autouse=True)
def clean(providers):
    for p in providers:
        p.requests.clear()
        p.handler = p.default_handler
    yield


ROUTING = [
    ("x-llm-gateway-cluster", "azure_openai"),
    ("x-llm-gateway-cluster", "demo"),
    ("x-llm-gateway-provider", "demo"),
    ("x-llm-gateway-stream", "true"),
]


@pytest.mark.parametrize("method,path", [
    ("POST", "/v2/whatever"),
    ("GET", "/v2/whatever"),
    ("PUT", "/v1/files/f1"),
    ("DELETE", "/v1/files/f1"),
    ("POST", "/v1/whatever?api-version=2024-10-21"),
    ("GET", "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"),
    ("POST", "/v1/chat/completions/"),
    ("PATCH", "/"),
])
@pytest.mark.parametrize("name,value", ROUTING)
def test_client_routing_headers_never_pick_a_cluster(gw, providers, method, path, name, value):
    alpha, azure = providers
    body = b'{"x":1}' if method in ("POST", "PUT", "PATCH") else b""
    head = (f"{method} {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {VIRTUAL_KEY}\r\n{name}: {value}\r\n").encode()
    status, answer = raw_request(gw.port, head, body)
    if path.startswith("/v1/chat/completions"):
        # A gateway endpoint: the filter's own answer to a body without a model.
        assert status == 400 and b'"param":"model"' in answer, answer[:400]
    else:
        # The route table's own 404 (no route matches without a routing header).
        assert status == 404, answer[:400]
        assert b"unknown_url" in answer
    assert alpha.requests == [] and azure.requests == []
    assert b"demo provider" not in answer


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_client_routing_headers_on_the_gateways_own_paths(gw, providers, method):
    """`/v1/models` and a gateway endpoint with the wrong method are answered by the filter,
    never by a provider."""
    alpha, azure = providers
    for path in ("/v1/models", "/v1/models/gpt-4o", "/v1/models?limit=1"):
        head = (f"{method} {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {VIRTUAL_KEY}\r\n"
                f"x-llm-gateway-cluster: azure_openai\r\nx-llm-gateway-provider: alpha\r\n").encode()
        status, answer = raw_request(gw.port, head)
        assert status in (200, 404, 405), answer[:400]
        assert b"reply from" not in answer
    head = (f"{'GET' if method != 'GET' else 'PUT'} /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
            f"authorization: Bearer {VIRTUAL_KEY}\r\nx-llm-gateway-cluster: azure_openai\r\n").encode()
    status, answer = raw_request(gw.port, head)
    assert status == 405, answer[:400]
    assert alpha.requests == [] and azure.requests == []


def test_mixed_case_and_repeated_routing_headers(gw, providers):
    alpha, azure = providers
    head = (b"POST /v2/anything HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"Authorization: Bearer " + VIRTUAL_KEY.encode() + b"\r\n"
            b"X-LLM-Gateway-Cluster: azure_openai\r\nx-llm-gateway-cluster: alpha\r\n"
            b"X-Llm-Gateway-Provider: demo\r\nx-llm-gateway-provider: demo\r\n")
    status, answer = raw_request(gw.port, head, b'{"x":1}')
    assert status == 404, answer[:400]
    assert alpha.requests == [] and azure.requests == []


def test_routed_request_goes_where_the_model_says_and_carries_no_client_credentials(gw, providers):
    """On a gateway endpoint the model decides, whatever routing headers the client sent, and
    the provider sees the provider key, not the client's virtual key."""
    alpha, azure = providers
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + VIRTUAL_KEY.encode() + b"\r\napi-key: client-azure-key\r\n"
            b"x-api-key: client-key\r\nx-llm-gateway-cluster: azure_openai\r\nX-LLM-Gateway-Cluster: demo\r\n"
            b"x-llm-gateway-provider: azure\r\nx-llm-gateway-stream: true\r\n")
    status, answer = raw_request(gw.port, head, body)
    assert status == 200, answer[:400]
    assert azure.requests == [] and len(alpha.requests) == 1
    rec = alpha.requests[0]
    assert rec.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert "api-key" not in rec.headers and "x-api-key" not in rec.headers
    assert not [h for h in rec.headers if h.startswith("x-llm-gateway")]
    assert VIRTUAL_KEY.encode() not in b"".join(f"{k}: {v}".encode() for k, v in rec.headers.items())


def test_configured_routing_header_names_are_stripped_too(providers):
    """Renamed routing headers (`cluster_header`, `provider_header`) are the ones stripped, and
    the route table routes on the renamed one."""
    alpha, azure = providers

    def route_on(cfg):
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        for r in routes:
            for h in r.get("match", {}).get("headers", []):
                if h["name"] == "x-llm-gateway-cluster":
                    h["name"] = "x-route-to"
            if r.get("route", {}).get("cluster_header") == "x-llm-gateway-cluster":
                r["route"]["cluster_header"] = "x-route-to"
            renamed = {"x-llm-gateway-cluster": "x-route-to", "x-llm-gateway-provider": "x-route-provider"}
            if "request_headers_to_remove" in r:
                r["request_headers_to_remove"] = [renamed.get(h, h) for h in r["request_headers_to_remove"]]

    cfg = config(cluster_header="x-route-to", provider_header="x-route-provider")
    with Envoy(cfg, {"alpha": alpha.port, "azure_openai": azure.port}, env={"ALPHA_API_KEY": PROVIDER_KEY},
               mutate=route_on) as gw:
        for method in ("GET", "POST"):
            head = (f"{method} /v2/x HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {VIRTUAL_KEY}\r\n"
                    f"x-route-to: azure_openai\r\nx-route-provider: azure\r\n").encode()
            status, answer = raw_request(gw.port, head, b"{}" if method == "POST" else b"")
            assert status == 404, answer[:400]
        assert alpha.requests == [] and azure.requests == []
        status, _, body = gw.chat("gpt-4o-mini", headers={"authorization": f"Bearer {VIRTUAL_KEY}",
                                                          "x-route-to": "azure_openai"})
        assert status == 200, body
        assert azure.requests == [] and len(alpha.requests) == 1
        assert "x-route-to" not in alpha.requests[0].headers


def test_provider_answers_never_reach_a_client_through_a_forged_header(gw, providers):
    """The provider would answer anything: the point is that it is never asked."""
    alpha, azure = providers
    for p in providers:
        p.handler = lambda req: Reply(200, {"leaked": True})
    for name, value in ROUTING:
        head = (f"GET /v1/files HTTP/1.1\r\nhost: gw\r\n{name}: {value}\r\n"
                f"x-api-key: client\r\n").encode()
        status, answer = raw_request(gw.port, head)
        assert status == 404 and b"leaked" not in answer, answer[:400]
    assert alpha.requests == [] and azure.requests == []
