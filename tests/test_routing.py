"""Routing through the real compiled filter in the real Envoy: each model form (exact,
wildcard, alias, provider/model) reaches the right provider with the upstream model, host,
path and the provider's own key; the model rewrite of large bodies is byte-exact; client
errors, size limits, a missing provider key and upstream errors answer in OpenAI's format.

Two OpenAI-type providers, "alpha" and "beta" (tests/fixtures_two_openai_providers.py)."""
import json

import pytest

from fixtures_two_openai_providers import KEY_A, KEY_B, only, two_provider_config
from fixtures_two_openai_providers import gw  # noqa: F401 (fixtures, found by name)
from harness import Envoy, MockProvider, Reply, chat_completion, request


# =========================================================== routing and rewrite

@pytest.mark.parametrize("model,provider,upstream_model,path", [
    ("gpt-4o-mini", "alpha", "gpt-4o-mini", "/v1/chat/completions"),          # exact
    ("gpt-4.1-nano", "alpha", "gpt-4.1-nano", "/v1/chat/completions"),        # prefix wildcard
    ("fast", "beta", "llama-3.1-8b-instant", "/openai/v1/chat/completions"),  # alias
    ("beta/mixtral-8x7b", "beta", "mixtral-8x7b", "/openai/v1/chat/completions"),  # provider/model
    ("llama-3.3-70b", "beta", "llama-3.3-70b", "/openai/v1/chat/completions"),
])
def test_each_model_form_reaches_the_right_provider(gw, mock, mock2, model, provider, upstream_model, path):
    status, headers, body = gw.chat(model, headers={"authorization": "Bearer client-key", "x-api-key": "client-key-2",
                                                     "api-key": "client-key-3"})
    assert status == 200, body
    target, other = (mock, mock2) if provider == "alpha" else (mock2, mock)
    assert other.requests == []
    rec = only(target)
    assert rec.path == path
    assert rec.json["model"] == upstream_model
    assert rec.json["messages"] == [{"role": "user", "content": "hi"}]
    assert rec.headers["host"] == ("api.alpha.test" if provider == "alpha" else "beta.test")
    assert rec.headers["authorization"] == f"Bearer {KEY_A if provider == 'alpha' else KEY_B}"
    assert "x-api-key" not in rec.headers and "api-key" not in rec.headers
    assert int(rec.headers["content-length"]) == len(rec.body)
    assert not [h for h in rec.headers if h.startswith("x-llm-gateway")]
    assert json.loads(body)["choices"][0]["message"]["content"] == f"reply from {target.name}"


def test_client_cannot_pick_the_cluster(gw, mock, mock2):
    status, _, _ = gw.chat("gpt-4o-mini", headers={"x-llm-gateway-cluster": "beta", "x-llm-gateway-provider": "beta"})
    assert status == 200
    assert len(mock.requests) == 1 and mock2.requests == []


def test_query_string_and_other_endpoints(gw, mock):
    status, _, body = gw.post("/v1/embeddings?trace=1", {"model": "gpt-embed", "input": "hello"})
    assert status == 200, body
    status, _, body = gw.post("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x"})
    assert status == 200, body
    status, _, body = gw.post("/v1/responses", {"model": "gpt-4o", "input": "x"})
    assert status == 200, body
    assert [r.path for r in mock.requests] == ["/v1/embeddings?trace=1", "/v1/completions", "/v1/responses"]


def test_header_values_that_are_not_utf8_do_not_break_the_filter(gw, mock):
    """Header values may carry any byte (HTTP obs-text). The filter reads them without
    failing (a panic would take down every request on the worker): the request is routed
    with the bytes intact, and an upstream answer with such a header is relayed."""
    import socket

    mock.handler = lambda req: Reply(200, chat_completion("gpt-4o-mini", 3, 2),
                                     {"content-type": "application/json; x=caf\xe9", "x-upstream": "\xff"})
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    raw = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
           b"x-note: caf\xe9\r\nanthropic-version: \xff\xfe\r\nauthorization: Bearer \xe9\r\n"
           + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(raw)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"x-upstream: \xff" in answer
    rec = only(mock)
    assert rec.headers["x-note"].encode("latin-1") == b"caf\xe9"
    assert rec.headers["authorization"] == f"Bearer {KEY_A}"
    assert "anthropic-version" not in rec.headers
    # The worker's VM is alive: the next request is served and counted.
    status, _, _ = gw.chat("gpt-4o-mini")
    assert status == 200 and len(mock.requests) == 2


@pytest.mark.parametrize("layout", ["model_last", "model_first", "model_middle"])
def test_large_body_model_rewrite_is_byte_exact(gw, mock2, layout):
    """The filter hands Envoy only the changed end of a large body (Envoy replaces the
    body's head or appends to it); the provider must still get exactly the spliced body."""
    filler = "x" * (1024 * 1024)
    messages = '"messages":[{"role":"user","content":"' + filler + '"}]'
    raw = {
        "model_last": '{' + messages + ',"model":"fast","temperature":0.5}',
        "model_first": '{"model":"fast",' + messages + ',"temperature":0.5}',
        "model_middle": '{' + messages + ',"model":"fast",' + messages.replace('"messages"', '"extra"') + '}',
    }[layout].encode()
    status, _, body = gw.post("/v1/chat/completions", raw)
    assert status == 200, body[:300]
    rec = only(mock2)
    assert rec.body == raw.replace(b'"fast"', b'"llama-3.1-8b-instant"')
    assert int(rec.headers["content-length"]) == len(rec.body)


def test_large_streaming_body_gets_include_usage_and_model_exactly(gw, mock2):
    """Two edits far apart (stream_options after `{`, model at the end) in a large body."""
    filler = "y" * (512 * 1024)
    raw = ('{"stream":true,"messages":[{"role":"user","content":"' + filler + '"}],"model":"fast"}').encode()
    status, _, _ = gw.post("/v1/chat/completions", raw)
    assert status == 200
    rec = only(mock2)
    want = raw.replace(b'"fast"', b'"llama-3.1-8b-instant"').replace(
        b'{"stream"', b'{"stream_options":{"include_usage":true},"stream"', 1)
    assert rec.body == want
    assert int(rec.headers["content-length"]) == len(rec.body)


def test_unchanged_model_keeps_body_identical(gw, mock):
    raw = b'{ "model" : "gpt-4o-mini" , "messages" : [ ] , "x" : {"y":[1,2,3]} }'
    status, _, _ = gw.post("/v1/chat/completions", raw)
    assert status == 200
    assert only(mock).body == raw


def test_openai_sdk_chat_and_embeddings(gw, mock):
    from openai import OpenAI
    client = OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="sk-client-virtual", max_retries=0)
    out = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}])
    assert out.choices[0].message.content == "reply from mock"
    assert out.usage.prompt_tokens == 10 and out.usage.completion_tokens == 20
    emb = client.embeddings.create(model="gpt-embed", input="hello")
    assert emb.data[0].embedding == [0.1, 0.2]
    assert [r.headers["authorization"] for r in mock.requests] == [f"Bearer {KEY_A}"] * 2
    with pytest.raises(Exception) as exc:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert getattr(exc.value, "status_code", None) == 404


# =========================================================== errors

def error_of(status, headers, body):
    assert headers.get("content-type") == "application/json", headers
    err = json.loads(body)["error"]
    assert set(err) >= {"message", "type", "code"}
    return status, err


def test_client_errors_are_openai_format_and_never_reach_a_provider(gw, mock, mock2):
    cases = [
        (b'{"model":', 400, "invalid_json"),
        (b'not json at all', 400, "invalid_json"),
        (b'[1,2]', 400, "invalid_json"),
        (b'{"messages":[]}', 400, "missing_model"),
        (b'{"model":42}', 400, "missing_model"),
        (b'{"model":"gpt-4o","stream":"yes"}', 400, "invalid_json"),
        (b'{"model":"gpt-4o","model":"gpt-4o-mini"}', 400, "invalid_json"),               # duplicate member
        (b'{"model":"gpt-4o","x":' + b"[" * 200 + b"]" * 200 + b"}", 400, "invalid_json"),  # nested > 127
        (b'{"model":"gpt-4o","messages":[{"content":"a\x01b"}]}', 400, "invalid_json"),  # raw control char
        (b'{"model":"gpt-4o","max_tokens":01}', 400, "invalid_json"),                      # leading zero
        (b'{"model":"unknown-model","messages":[]}', 404, "model_not_found"),
    ]
    for raw, want_status, code in cases:
        status, err = error_of(*gw.post("/v1/chat/completions", raw))
        assert (status, err["code"]) == (want_status, code), raw
    status, err = error_of(*request("POST", gw.port, "/v1/chat/completions", b"", {"content-length": "0"}))
    assert (status, err["code"]) == (400, "invalid_json")
    status, headers, body = request("GET", gw.port, "/v1/chat/completions")
    status, err = error_of(status, headers, body)
    assert (status, err["code"]) == (405, "method_not_allowed")
    assert headers["allow"] == "POST"
    assert mock.requests == [] and mock2.requests == []
    # The VM survived all of it.
    assert gw.chat("gpt-4o-mini")[0] == 200
    assert gw.wait_metric("llm_gateway_rejected_total", 2, reason="missing_model") == 2
    assert gw.metric("llm_gateway_rejected_total", reason="model_not_found") == 1


def test_long_strings_are_validated_at_every_offset(gw, mock):
    """The request body is validated by the filter's own scanner, which reads long strings
    128 and 16 bytes at a time with Wasm SIMD (only in Envoy: native unit tests take the
    SSE2 and eight-byte versions). An escape, a control character or a quote is found
    wherever it sits relative to those blocks, and no other byte stops a string (the
    printable run holds 0x21 and 0x23, the neighbours of the quote that the per-byte test
    must not take for it); the verdict matches Python's strict JSON parser and valid bodies
    reach the provider byte for byte."""
    head = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'
    tail = b'"}]}'
    printable = bytes(b for b in range(0x20, 0x7f) if b not in b'"\\') + b'\x7f\xc2\xa2'
    pieces = [b'\\"', b'\\n', b'\\u00e9', b'\xc3\xa9', b'\t', b'\x01', b'\\x', b'"', printable]
    sent = 0
    for offset in range(0, 400, 3):  # every residue modulo the 128-byte block
        for piece in pieces:
            raw = head + b"a" * offset + piece + b"b" * 70 + tail
            try:
                json.loads(raw)
                valid = True
            except ValueError:
                valid = False
            status, _, body = gw.post("/v1/chat/completions", raw)
            if valid:
                assert status == 200, (offset, piece, body)
                sent += 1
                assert mock.requests[-1].body == raw
            else:
                assert status == 400, (offset, piece)
                assert json.loads(body)["error"]["code"] == "invalid_json", (offset, piece, body)
    assert sent == len(mock.requests) and sent > 0


def test_body_over_limit_is_413(mock):
    with Envoy(two_provider_config(max_request_bytes=1000), {"alpha": mock.port, "beta": mock.port},
               env={"ALPHA_API_KEY": KEY_A, "BETA_API_KEY": KEY_B}) as gw:
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "y" * 2000}]}
        status, err = error_of(*gw.post("/v1/chat/completions", big))
        assert (status, err["code"]) == (413, "request_too_large")
        # Without content-length (chunked upload) the limit holds while buffering.
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        data = json.dumps(big).encode()
        conn.putrequest("POST", "/v1/chat/completions")
        conn.putheader("transfer-encoding", "chunked")
        conn.endheaders()
        for i in range(0, len(data), 500):
            part = data[i:i + 500]
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        status, err = error_of(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        assert (status, err["code"]) == (413, "request_too_large")
        assert mock.requests == []
        assert gw.chat("gpt-4o")[0] == 200


def test_missing_provider_key_is_503_naming_the_variable(mock):
    with Envoy(two_provider_config(), {"alpha": mock.port, "beta": mock.port}, env={"BETA_API_KEY": KEY_B}) as gw:
        status, err = error_of(*gw.chat("gpt-4o-mini", headers={"authorization": "Bearer sk-client-secret"}))
        assert status == 503 and err["code"] == "provider_not_configured"
        assert "ALPHA_API_KEY" in err["message"]
        assert "sk-" not in err["message"]
        assert mock.requests == []
        # beta still works
        assert gw.chat("fast")[0] == 200
    assert KEY_B not in gw.log()
    assert "needs ALPHA_API_KEY" in gw.log()


def test_unknown_paths_pass_through_the_filter(gw, mock):
    status, headers, body = request("GET", gw.port, "/healthz")
    assert status == 404 and json.loads(body)["error"]["code"] == "unknown_url"
    assert mock.requests == []


def test_upstream_errors_are_passed_through_and_counted(mock):
    def handler(req):
        return Reply(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
    bad = MockProvider("bad", handler).start()
    try:
        with Envoy(two_provider_config(), {"alpha": bad.port, "beta": mock.port},
                   env={"ALPHA_API_KEY": KEY_A, "BETA_API_KEY": KEY_B}) as gw:
            status, _, body = gw.chat("gpt-4o")
            assert status == 429
            assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
            assert gw.wait_metric("llm_gateway_requests_total", 1, provider="alpha", status_class="4xx") == 1
            assert gw.metric("llm_gateway_tokens_total", provider="alpha") == 0
    finally:
        bad.stop()
