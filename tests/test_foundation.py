"""Foundation: routing, rewrite, provider auth, errors, config rejection, usage metrics —
all through the real compiled filter in the real Envoy."""
import json
import time

import pytest

from harness import NATIVE, Envoy, MockProvider, Reply, chat_completion, request, shipped_config, validate_config

KEY_A = "sk-test-provider-a-0123456789"
KEY_B = "sk-test-provider-b-9876543210"


def two_provider_config(**extra):
    cfg = {
        "providers": [
            {"name": "alpha", "type": "openai", "cluster": "alpha", "host": "api.alpha.test",
             "path_prefix": "/v1", "api_key_env": "ALPHA_API_KEY"},
            {"name": "beta", "type": "openai", "cluster": "beta", "host": "beta.test",
             "path_prefix": "/openai/v1", "api_key_env": "BETA_API_KEY"},
        ],
        "models": [
            {"match": "fast", "provider": "beta", "upstream_model": "llama-3.1-8b-instant"},
            {"match": "gpt-4o-mini", "provider": "alpha"},
            {"match": "gpt-*", "provider": "alpha"},
            {"match": "llama*", "provider": "beta"},
        ],
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def gw(mock, mock2):
    env = {"ALPHA_API_KEY": KEY_A, "BETA_API_KEY": KEY_B}
    with Envoy(two_provider_config(), {"alpha": mock.port, "beta": mock2.port}, env=env) as e:
        yield e


def only(mock: MockProvider):
    assert len(mock.requests) == 1, [r.path for r in mock.requests]
    return mock.requests[0]


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


def test_answer_that_is_not_a_json_object_records_no_usage(gw, mock):
    """A 200 answer whose body is a JSON array is relayed untouched, and no usage is
    invented from it (no token counts in metrics or the access log)."""
    answer = b'[{"usage":{"prompt_tokens":7,"completion_tokens":5}}]'
    mock.handler = lambda req: Reply(200, answer, {"content-type": "application/json"})
    status, _, body = gw.chat("gpt-4o-mini")
    assert status == 200 and body == answer
    assert gw.wait_metric("llm_gateway_requests_total", 1, provider="alpha", model="gpt-4o-mini",
                          status_class="2xx") == 1
    assert gw.metric("llm_gateway_tokens_total", provider="alpha") == 0
    deadline = time.time() + 5
    while not gw.access_log_lines() and time.time() < deadline:
        time.sleep(0.1)
    assert "provider=alpha model=gpt-4o-mini input_tokens=- output_tokens=-" in gw.access_log_lines()[0]


def test_access_log_gets_only_the_configured_attributes(mock):
    """`access_log_attributes` trims the filter-state writes (one host call each) to what the
    access log reads; the others show as `-`, and metrics are unchanged."""
    cfg = two_provider_config(access_log_attributes=["provider", "total_tokens"])
    with Envoy(cfg, {"alpha": mock.port, "beta": mock.port},
               env={"ALPHA_API_KEY": KEY_A, "BETA_API_KEY": KEY_B}) as gw:
        status, _, _ = gw.chat("gpt-4o-mini")
        assert status == 200
        deadline = time.time() + 5
        while not gw.access_log_lines() and time.time() < deadline:
            time.sleep(0.1)
        line = gw.access_log_lines()[0]
        assert "provider=alpha model=- input_tokens=- output_tokens=- total_tokens=30" in line, line
        assert gw.wait_metric("llm_gateway_tokens_total", 10, provider="alpha", type="input") == 10


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


@pytest.mark.parametrize("plugin_config,path,fragment", [
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c", "colour": "red"}]},
     "providers[0].colour", "unknown field `colour`"),
    ({"providers": [{"name": "a", "type": "mystery", "cluster": "c"}]}, "providers[0].type", "unknown variant"),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}],
      "models": [{"match": "m", "provider": "zzz"}]}, "models[0].provider", 'unknown provider "zzz"'),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}], "max_request_bytes": "lots"},
     "max_request_bytes", "invalid type"),
    ({"providers": [{"name": "a", "type": "openai", "cluster": "c"}],
      "access_log_attributes": ["provider", "tokens"]}, "access_log_attributes[1]", "unknown variant `tokens`"),
])
def test_bad_plugin_config_is_rejected_at_load(plugin_config, path, fragment):
    cfg = shipped_config()
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wasm = hcm["http_filters"][0]["typed_config"]["config"]
    wasm["vm_config"]["code"]["local"]["filename"] = str(__import__("harness").WASM)
    wasm["configuration"]["value"] = json.dumps(plugin_config)
    result = validate_config(cfg)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert f"invalid llm-gateway configuration at `{path}`" in out, out
    assert fragment in out, out
    assert ("dynamic module" if NATIVE else "unable to create wasm") in out.lower(), out


def test_usage_metrics_equal_what_the_provider_reported(gw, mock, mock2):
    n = 12
    for i in range(n):
        model = "gpt-4o-mini" if i % 3 else "fast"
        status, _, _ = gw.chat(model, content=f"message {i}")
        assert status == 200
    alpha_prompt = sum(r_p for r_p in [10 + i for i in range(len(mock.requests))])
    alpha_completion = sum(20 + 2 * i for i in range(len(mock.requests)))
    beta_prompt = sum(10 + i for i in range(len(mock2.requests)))
    beta_completion = sum(20 + 2 * i for i in range(len(mock2.requests)))
    assert len(mock.requests) == 8 and len(mock2.requests) == 4
    assert (mock.issued["prompt"], mock.issued["completion"]) == (alpha_prompt, alpha_completion)

    m = "llm_gateway_tokens_total"
    assert gw.wait_metric(m, alpha_prompt, provider="alpha", model="gpt-4o-mini", type="input") == alpha_prompt
    assert gw.metric(m, provider="alpha", model="gpt-4o-mini", type="output") == alpha_completion
    assert gw.metric(m, provider="beta", model="llama-3.1-8b-instant", type="input") == beta_prompt
    assert gw.metric(m, provider="beta", model="llama-3.1-8b-instant", type="output") == beta_completion
    assert gw.metric(m, estimated="true") == 0
    assert gw.metric("llm_gateway_requests_total", provider="alpha", model="gpt-4o-mini", operation="chat",
                     status_class="2xx") == 8
    assert gw.wait_metric("gen_ai_server_request_duration_ms_count", 4, provider="beta",
                          model="llama-3.1-8b-instant") == 4

    # The same usage is in the access log through filter state.
    deadline = time.time() + 5
    while len(gw.access_log_lines()) < n and time.time() < deadline:
        time.sleep(0.1)
    lines = gw.access_log_lines()
    assert len(lines) == n
    assert "provider=alpha model=gpt-4o-mini input_tokens=10 output_tokens=20 total_tokens=30" in lines[1]
    assert "provider=beta model=llama-3.1-8b-instant input_tokens=10 output_tokens=20 total_tokens=30" in lines[0]


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


def test_shipped_config_serves_every_endpoint_from_the_demo_provider():
    """What `make run` does with no keys: the shipped config, only the ports changed."""
    with Envoy() as gw:
        status, _, body = gw.chat("gpt-4o-mini")
        assert status == 200, body
        reply = json.loads(body)
        assert reply["object"] == "chat.completion" and reply["usage"]["total_tokens"] == 30
        for path, body in [("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}),
                           ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x"}),
                           ("/v1/responses", {"model": "gpt-4o", "input": "x"})]:
            status, _, out = gw.post(path, body)
            assert status == 200, (path, out)
            assert "usage" in json.loads(out)
        assert gw.wait_metric("llm_gateway_tokens_total", 12, provider="demo", model="gpt-4o-mini", type="input") == 12
        assert gw.metric("llm_gateway_tokens_total", provider="demo", model="text-embedding-3-small",
                         type="input") == 8
        # Streams get an event stream from the demo provider, through any SDK.
        from openai import OpenAI
        client = OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model="demo-stream", stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.startswith("Hello from the llm-gateway demo provider")
        assert gw.wait_metric("llm_gateway_tokens_total", 18, provider="demo", model="demo-stream", type="output",
                              estimated="false") == 18


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
