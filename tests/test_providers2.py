"""Provider translation II end to end: the official OpenAI SDK in front of AWS Bedrock (Converse,
SigV4, eventstream), the Gemini API (AI Studio) and Vertex AI (static and fetched bearer
tokens), and model discovery — through the real Envoy and the compiled filter.

The mocks (tests/mock_bedrock.py, tests/mock_google.py) check what they receive against each
provider's public API — the Bedrock mock recomputes the SigV4 signature in Python — and answer
like the providers do. One Envoy serves most of the module; the mocks are reset before every
test and token metrics are compared as differences. The Vertex token refresh runs in its own
Envoy (it depends on when the token was fetched)."""
import json
import socket
import time

import openai
import pytest

from harness import NATIVE, Envoy, request, stream_request
from mock_bedrock import PIECES as BR_PIECES, BedrockMock
from mock_google import PIECES as GM_PIECES, GoogleMock, MetadataMock, TokenBook

AWS_KEY_ID, AWS_SECRET, AWS_SESSION = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", \
    "IQoJb3JpZ2luX2VjEHMaCXVzLWVhc3QtMSJHMEUCIQD+session/token=="
AWS2_KEY_ID, AWS2_SECRET = "AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
GEMINI_KEY = "AIzaSyD-mock-gemini-key-0123456789abcdef"
VERTEX_STATIC = "ya29.a0AfB_static-vertex-token"

CLAUDE_PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
FLASH = "gemini-2.5-flash"
TOKEN_TYPES = ("input", "output", "cached_input", "cache_creation_input", "reasoning")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city"]}}}
TOOL_ARGS = {"city": "Paris", "unit": "celsius"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def plugin_config():
    return {
        "providers": [
            {"name": "bedrock", "type": "bedrock", "cluster": "bedrock", "region": "us-east-1"},
            {"name": "bedrock2", "type": "bedrock", "cluster": "bedrock2", "region": "eu-west-3",
             "aws_credentials_env": {"access_key_id": "BR2_KEY_ID", "secret_access_key": "BR2_SECRET",
                                     "session_token": "BR2_SESSION"}},
            {"name": "bedrock_bad", "type": "bedrock", "cluster": "bedrock", "region": "us-east-1",
             "aws_credentials_env": {"access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "BAD_SECRET",
                                     "session_token": "AWS_SESSION_TOKEN"}},
            {"name": "gemini", "type": "gemini", "cluster": "gemini", "host": "generativelanguage.googleapis.com",
             "api_key_env": "GEMINI_API_KEY"},
            {"name": "vertex", "type": "vertex", "cluster": "vertex", "project": "my-proj-123",
             "region": "us-central1", "api_key_env": "VERTEX_ACCESS_TOKEN"},
        ] + ([] if NATIVE else [  # the native module has no metadata-server tokens yet
            {"name": "vertex_down", "type": "vertex", "cluster": "vertex", "project": "my-proj-123",
             "region": "us-central1", "token_endpoint": {"cluster": "metadata_down"}}]),
        "models": [
            {"match": "claude-bedrock", "provider": "bedrock", "upstream_model": CLAUDE_PROFILE},
            {"match": HAIKU, "provider": "bedrock"},
            {"match": "nova", "provider": "bedrock2", "upstream_model": NOVA},
            {"match": "claude-bad-sig", "provider": "bedrock_bad", "upstream_model": HAIKU},
            {"match": FLASH, "provider": "gemini"},
            {"match": "gemini-*", "provider": "gemini"},
            {"match": "vertex-flash", "provider": "vertex", "upstream_model": FLASH},
        ] + ([] if NATIVE else [
            {"match": "vertex-down", "provider": "vertex_down", "upstream_model": "gemini-2.5-pro"}]),
    }


LISTED = sorted(["claude-bedrock", HAIKU, "nova", "claude-bad-sig", FLASH, "vertex-flash"]
                + ([] if NATIVE else ["vertex-down"]))


@pytest.fixture(scope="module")
def mocks():
    ms = {"bedrock": BedrockMock(AWS_KEY_ID, AWS_SECRET, "us-east-1", AWS_SESSION).start(),
          "bedrock2": BedrockMock(AWS2_KEY_ID, AWS2_SECRET, "eu-west-3").start(),
          "gemini": GoogleMock("gemini", GEMINI_KEY).start(),
          "vertex": GoogleMock("vertex", VERTEX_STATIC, "my-proj-123", "us-central1").start()}
    yield ms
    for m in ms.values():
        m.stop()


@pytest.fixture(scope="module")
def gw(mocks):
    env = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_SESSION_TOKEN": AWS_SESSION,
           "BR2_KEY_ID": AWS2_KEY_ID, "BR2_SECRET": AWS2_SECRET, "BAD_SECRET": "not-the-secret",
           "GEMINI_API_KEY": GEMINI_KEY, "VERTEX_ACCESS_TOKEN": VERTEX_STATIC}
    clusters = {name: m.port for name, m in mocks.items()}
    clusters["metadata_down"] = closed_port()
    with Envoy(plugin_config(), clusters, env=env) as e:
        yield e
        assert "panicked" not in e.log()


class Tokens:
    def __init__(self, gw, provider):
        self.gw, self.provider = gw, provider
        self.before = {t: gw.metric("llm_gateway_tokens_total", provider=provider, type=t, estimated="false")
                       for t in TOKEN_TYPES}
        self.before_est = gw.metric("llm_gateway_tokens_total", provider=provider, estimated="true")

    def assert_exact(self, expected: dict, estimated_allowed: bool = False):
        got = {}
        for t in TOKEN_TYPES:
            want = self.before[t] + expected.get(t, 0)
            got[t] = self.gw.wait_metric("llm_gateway_tokens_total", want, provider=self.provider, type=t,
                                         estimated="false") - self.before[t]
        assert got == {t: expected.get(t, 0) for t in TOKEN_TYPES}
        if not estimated_allowed:
            assert self.gw.metric("llm_gateway_tokens_total", provider=self.provider,
                                  estimated="true") == self.before_est


def _checked(gw, mocks, name):
    m = mocks[name]
    m.reset()
    t = Tokens(gw, name)
    yield m
    assert m.failures == [], m.failures
    t.assert_exact(m.expected_tokens(), m.expect_estimated)


@pytest.fixture
def br(gw, mocks):
    yield from _checked(gw, mocks, "bedrock")


@pytest.fixture
def br2(gw, mocks):
    yield from _checked(gw, mocks, "bedrock2")


@pytest.fixture
def gm(gw, mocks):
    yield from _checked(gw, mocks, "gemini")


@pytest.fixture
def vx(gw, mocks):
    yield from _checked(gw, mocks, "vertex")


def oai(gw):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="sk-client-virtual-key", max_retries=0)


def user(text):
    return [{"role": "user", "content": text}]


def collect(stream):
    """(text, {index: call}, finish_reason, usage chunks, ids) of an SDK chat stream."""
    text, calls, finish, usages, ids = "", {}, None, [], set()
    for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usages.append(chunk.usage)
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        text += d.content or ""
        for tc in d.tool_calls or []:
            c = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
            c["id"] = tc.id or c["id"]
            if tc.function:
                c["name"] = tc.function.name or c["name"]
                c["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    return text, calls, finish, usages, ids


# =========================================================== model discovery

def test_models_list_and_retrieve(gw):
    client = oai(gw)
    models = client.models.list()
    assert sorted(m.id for m in models.data) == LISTED
    owners = {m.id: m.owned_by for m in models.data}
    assert owners["claude-bedrock"] == "bedrock" and owners[FLASH] == "gemini" and owners["vertex-flash"] == "vertex"
    assert all(m.object == "model" for m in models.data)
    m = client.models.retrieve("claude-bedrock")
    assert (m.id, m.owned_by, m.object) == ("claude-bedrock", "bedrock", "model")
    assert client.models.retrieve(HAIKU).id == HAIKU
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("no-such-model")
    assert exc.value.status_code == 404
    assert "no-such-model" in exc.value.message


# =========================================================== Bedrock

def test_bedrock_chat_signed_with_session_token(gw, br):
    out = oai(gw).chat.completions.create(model="claude-bedrock", temperature=0.3, max_tokens=200, stop=["END"],
                                          messages=[{"role": "system", "content": "You are terse."},
                                                    {"role": "user", "content": "Say hello"}])
    assert out.choices[0].message.content == "".join(BR_PIECES)
    assert out.choices[0].finish_reason == "stop"
    assert out.model == CLAUDE_PROFILE and out.object == "chat.completion"  # the upstream model, as for every provider
    u = br.reported[0]
    assert out.usage.prompt_tokens == u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"]
    assert out.usage.completion_tokens == u["outputTokens"]
    assert out.usage.prompt_tokens_details.cached_tokens == u["cacheReadInputTokens"]
    req = br.requests[0]
    assert req.path == "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    assert br.models == [CLAUDE_PROFILE]
    body = req.json
    assert body["system"] == [{"text": "You are terse."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Say hello"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.3, "stopSequences": ["END"]}
    assert "authorization" in req.headers and req.headers["x-amz-security-token"] == AWS_SESSION
    assert "sk-client-virtual-key" not in json.dumps(req.headers)


def test_bedrock_custom_credential_variables_without_session_token(gw, br2):
    out = oai(gw).chat.completions.create(model="nova", messages=user("hi"))
    assert out.choices[0].message.content == "".join(BR_PIECES)
    assert br2.requests[0].path == "/model/amazon.nova-lite-v1%3A0/converse"
    assert "x-amz-security-token" not in br2.requests[0].headers


def test_bedrock_wrong_secret_is_refused_by_the_signature_check(gw, br):
    with pytest.raises(openai.PermissionDeniedError) as exc:
        oai(gw).chat.completions.create(model="claude-bad-sig", messages=user("hi"))
    assert exc.value.status_code == 403
    assert "signature" in exc.value.message.lower()
    assert len(br.failures) == 1 and "does not match" in br.failures[0]
    br.failures.clear()


@pytest.mark.parametrize("include_usage", [False, True])
def test_bedrock_stream(gw, br, include_usage):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    text, calls, finish, usages, ids = collect(oai(gw).chat.completions.create(
        model=HAIKU, messages=user("Stream please"), stream=True, **extra))
    assert text == "".join(BR_PIECES) and finish == "stop" and not calls
    assert len(ids) == 1
    assert br.requests[0].path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    u = br.reported[0]
    if include_usage:
        assert len(usages) == 1
        assert usages[0].prompt_tokens == u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"]
        assert usages[0].completion_tokens == u["outputTokens"]
    else:
        assert usages == []


def test_bedrock_raw_stream_is_openai_sse(gw, br):
    status, headers, got = stream_request(gw.port, {"model": HAIKU, "stream": True, "messages": user("x")})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    data = b"".join(d for _, d in got).decode()
    events = [e for e in data.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert len(got) > 1  # delivered incrementally


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_tool_call_round_trip(gw, br, stream):
    client = oai(gw)
    messages = [{"role": "user", "content": "Weather in Paris? [tool]"}]
    if stream:
        text, calls, finish, _, _ = collect(client.chat.completions.create(
            model="claude-bedrock", messages=messages, tools=[WEATHER], stream=True))
        call = calls[0]
        assert list(calls) == [0]
    else:
        out = client.chat.completions.create(model="claude-bedrock", messages=messages, tools=[WEATHER],
                                             tool_choice="required")
        msg = out.choices[0].message
        finish, text = out.choices[0].finish_reason, msg.content
        call = {"id": msg.tool_calls[0].id, "name": msg.tool_calls[0].function.name,
                "arguments": msg.tool_calls[0].function.arguments}
    assert finish == "tool_calls" and text == "Let me check."
    assert call["id"] == "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q" and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == TOOL_ARGS
    first = br.requests[0].json
    assert first["toolConfig"]["tools"] == [{"toolSpec": {
        "name": "get_weather", "description": "Current weather in a city",
        "inputSchema": {"json": WEATHER["function"]["parameters"]}}}]
    if not stream:
        assert first["toolConfig"]["toolChoice"] == {"any": {}}
    messages += [{"role": "assistant", "content": text, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18°C and sunny"}]
    out = client.chat.completions.create(model="claude-bedrock", messages=messages, tools=[WEATHER])
    assert "18°C and sunny" in out.choices[0].message.content
    second = br.requests[1].json["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"][1] == {"toolUse": {"toolUseId": call["id"], "name": "get_weather",
                                                   "input": TOOL_ARGS}}
    tr = second[2]["content"][0]["toolResult"]
    assert tr["toolUseId"] == call["id"] and tr["content"] == [{"text": "18°C and sunny"}]


@pytest.mark.parametrize("stream", [False, True])
def test_bedrock_http_errors_become_openai_errors(gw, br, stream):
    client = oai(gw)
    with pytest.raises(openai.RateLimitError) as exc:
        r = client.chat.completions.create(model=HAIKU, messages=user("[throttle]"), stream=stream)
        list(r) if stream else None
    assert exc.value.status_code == 429
    assert "Too many requests" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        r = client.chat.completions.create(model=HAIKU, messages=user("[invalid]"), stream=stream)
        list(r) if stream else None
    assert exc.value.status_code == 400 and "model identifier is invalid" in exc.value.message
    body = exc.value.body
    assert isinstance(body, dict) and "message" in body


def _error_stream(gw, model, marker):
    status, _, got = stream_request(gw.port, {"model": model, "stream": True, "messages": user(marker)})
    data = b"".join(d for _, d in got).decode()
    events = [json.loads(e[6:]) for e in data.split("\n\n") if e.startswith("data: {")]
    errors = [e for e in events if "error" in e]
    return status, events, errors


@pytest.mark.parametrize("marker", ["[midstream]", "[badcrc]", "[truncate]"])
def test_bedrock_broken_streams_end_with_an_openai_error_chunk_and_the_vm_survives(gw, br, marker):
    br.expect_estimated = True
    status, events, errors = _error_stream(gw, HAIKU, marker)
    assert status == 200
    assert len(errors) == 1, events
    err = errors[0]["error"]
    assert set(err) >= {"message", "type"} and err["message"]
    if marker == "[midstream]":
        assert err["type"] == "rate_limit_error" and "Too many tokens" in err["message"]
    text = "".join(c["delta"].get("content") or "" for e in events for c in e.get("choices", []))
    assert text.startswith(BR_PIECES[0])
    assert "Y" not in text  # nothing after a corrupt frame
    # The SDK raises on the error chunk.
    with pytest.raises(openai.APIError):
        collect(oai(gw).chat.completions.create(model=HAIKU, messages=user(marker), stream=True))
    # The VM survived: the next request is served.
    out = oai(gw).chat.completions.create(model=HAIKU, messages=user("again"))
    assert out.choices[0].message.content == "".join(BR_PIECES)


# =========================================================== Gemini (AI Studio)

def test_gemini_chat(gw, gm):
    out = oai(gw).chat.completions.create(model=FLASH, temperature=0.5, max_completion_tokens=300, top_p=0.9,
                                          messages=[{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": "Salut"},
                                                    {"role": "assistant", "content": "Salut !"},
                                                    {"role": "user", "content": "Ça va ?"}])
    assert out.choices[0].message.content == "".join(GM_PIECES)
    assert out.choices[0].finish_reason == "stop" and out.model == FLASH
    u = gm.reported[0]
    assert out.usage.prompt_tokens == u["promptTokenCount"]
    assert out.usage.completion_tokens == u["candidatesTokenCount"] + u["thoughtsTokenCount"]
    assert out.usage.prompt_tokens_details.cached_tokens == u["cachedContentTokenCount"]
    assert out.usage.completion_tokens_details.reasoning_tokens == u["thoughtsTokenCount"]
    req = gm.requests[0]
    assert req.path == f"/v1beta/models/{FLASH}:generateContent"
    assert req.headers["host"] == "generativelanguage.googleapis.com"
    body = req.json
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 300, "topP": 0.9}


def test_gemini_wildcard_model(gw, gm):
    out = oai(gw).chat.completions.create(model="gemini-2.0-flash-lite", messages=user("hi"))
    assert out.model == "gemini-2.0-flash-lite"
    assert gm.requests[0].path == "/v1beta/models/gemini-2.0-flash-lite:generateContent"


@pytest.mark.parametrize("include_usage", [False, True])
def test_gemini_stream(gw, gm, include_usage):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    text, calls, finish, usages, ids = collect(oai(gw).chat.completions.create(
        model=FLASH, messages=user("stream"), stream=True, **extra))
    assert text == "".join(GM_PIECES) and finish == "stop" and len(ids) == 1
    assert gm.requests[0].path == f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse"
    u = gm.reported[0]
    if include_usage:
        assert len(usages) == 1
        assert usages[0].prompt_tokens == u["promptTokenCount"]
        assert usages[0].completion_tokens == u["candidatesTokenCount"] + u["thoughtsTokenCount"]
        assert usages[0].total_tokens == u["totalTokenCount"]
    else:
        assert usages == []


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_tool_call_round_trip(gw, gm, stream):
    client = oai(gw)
    messages = [{"role": "user", "content": "Weather in Paris? [tool]"}]
    if stream:
        text, calls, finish, _, _ = collect(client.chat.completions.create(
            model=FLASH, messages=messages, tools=[WEATHER], stream=True))
        call = calls[0]
    else:
        out = client.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER])
        msg = out.choices[0].message
        finish, text = out.choices[0].finish_reason, msg.content
        call = {"id": msg.tool_calls[0].id, "name": msg.tool_calls[0].function.name,
                "arguments": msg.tool_calls[0].function.arguments}
    assert finish == "tool_calls"
    assert call["name"] == "get_weather" and call["id"]
    assert json.loads(call["arguments"]) == TOOL_ARGS
    decl = gm.requests[0].json["tools"][0]["functionDeclarations"][0]
    assert decl["name"] == "get_weather" and decl["description"] == "Current weather in a city"
    messages += [{"role": "assistant", "content": text or None, "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18°C and sunny"}]
    out = client.chat.completions.create(model=FLASH, messages=messages, tools=[WEATHER])
    assert "18°C and sunny" in out.choices[0].message.content
    second = gm.requests[1].json["contents"]
    assert [c["role"] for c in second] == ["user", "model", "user"]
    assert second[1]["parts"][-1]["functionCall"] == {"name": "get_weather", "args": TOOL_ARGS}
    fr = second[2]["parts"][0]["functionResponse"]
    assert fr["name"] == "get_weather" and "18°C and sunny" in json.dumps(fr["response"], ensure_ascii=False)


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_429_is_an_openai_rate_limit_error(gw, gm, stream):
    with pytest.raises(openai.RateLimitError) as exc:
        r = oai(gw).chat.completions.create(model=FLASH, messages=user("[quota]"), stream=stream)
        list(r) if stream else None
    assert exc.value.status_code == 429
    assert "Resource has been exhausted" in exc.value.message


def test_gemini_stream_cut_ends_with_an_error_chunk(gw, gm):
    gm.expect_estimated = True
    status, events, errors = _error_stream(gw, FLASH, "[cut]")
    assert status == 200 and len(errors) == 1, events
    out = oai(gw).chat.completions.create(model=FLASH, messages=user("again"))
    assert out.choices[0].message.content == "".join(GM_PIECES)


# =========================================================== Vertex AI

def test_vertex_chat_with_static_token(gw, vx):
    out = oai(gw).chat.completions.create(model="vertex-flash", messages=user("hi"))
    assert out.choices[0].message.content == "".join(GM_PIECES) and out.model == FLASH
    req = vx.requests[0]
    assert req.path == f"/v1/projects/my-proj-123/locations/us-central1/publishers/google/models/{FLASH}:generateContent"
    assert req.headers["host"] == "us-central1-aiplatform.googleapis.com"
    assert vx.bearers == [VERTEX_STATIC]


@pytest.mark.parametrize("include_usage", [False, True])
def test_vertex_stream(gw, vx, include_usage):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    text, _, finish, usages, _ = collect(oai(gw).chat.completions.create(
        model="vertex-flash", messages=user("stream"), stream=True, **extra))
    assert text == "".join(GM_PIECES) and finish == "stop"
    assert vx.requests[0].path.endswith(f"/models/{FLASH}:streamGenerateContent?alt=sse")
    assert len(usages) == (1 if include_usage else 0)


def test_vertex_tool_call(gw, vx):
    out = oai(gw).chat.completions.create(model="vertex-flash", messages=user("Weather? [tool]"), tools=[WEATHER])
    assert out.choices[0].finish_reason == "tool_calls"
    assert json.loads(out.choices[0].message.tool_calls[0].function.arguments) == TOOL_ARGS


@pytest.mark.wasm_only("Vertex AI metadata-server tokens")
def test_vertex_token_endpoint_down_is_503(gw):
    with pytest.raises(openai.InternalServerError) as exc:
        oai(gw).chat.completions.create(model="vertex-down", messages=user("hi"))
    assert exc.value.status_code == 503
    assert "token" in exc.value.message.lower()


@pytest.mark.wasm_only("Vertex AI metadata-server tokens")
def test_vertex_token_from_metadata_server_is_refreshed_without_failing_requests():
    """Tokens fetched at startup live 8 s: the refresh starts half-way (the margin is capped at
    half the lifetime), so a refreshed token is used from about 4 s on, while requests never
    wait or fail. (Each Envoy thread's VM fetches its own token: with --concurrency 1 the main
    thread and the worker both fetch at startup.)"""
    book = TokenBook()
    meta = MetadataMock(book, early_s=2.5, early_life=8, late_life=3599, host="metadata.test.internal").start()
    vx = GoogleMock("vertex", None, "proj-tok", "global", tokens=book).start()
    cfg = {"providers": [{"name": "vertex", "type": "vertex", "cluster": "vertex", "project": "proj-tok",
                          "region": "global", "token_endpoint": {"cluster": "metadata",
                                                                 "host": "metadata.test.internal"}}],
           "models": [{"match": "vf", "provider": "vertex", "upstream_model": FLASH}]}
    try:
        with Envoy(cfg, {"vertex": vx.port, "metadata": meta.port}) as gw:
            deadline = time.time() + 5
            while not meta.served and time.time() < deadline:
                time.sleep(0.05)
            assert meta.served, "the token endpoint was never called"
            client = oai(gw)
            latencies = []
            deadline = time.time() + 15
            while time.time() < deadline and (not vx.bearers or meta.lives[vx.bearers[-1]] == 8):
                t = time.time()
                out = client.chat.completions.create(model="vf", messages=user("hi"))
                latencies.append(time.time() - t)
                assert out.choices[0].message.content == "".join(GM_PIECES)
                time.sleep(0.1)
            startup = {t for t, life in meta.lives.items() if life == 8}
            assert vx.failures == [] and meta.failures == []
            assert vx.bearers[0] in startup and vx.bearers[0].startswith("tok-")
            refreshed = vx.bearers[-1]
            assert refreshed not in startup, vx.bearers
            assert sum(b in startup for b in vx.bearers) > 5  # the first token served a while
            assert max(latencies) < 1.5
            assert vx.requests[0].headers["host"] == "aiplatform.googleapis.com"
            # The refreshed tokens live long: no further fetch, and they keep being used.
            # (Every VM refreshes on its own tick: let the other VM's refresh land first.)
            time.sleep(1)
            n = len(meta.served)
            time.sleep(1)
            assert len(meta.served) == n
            client.chat.completions.create(model="vf", messages=user("hi"))
            assert vx.bearers[-1] == refreshed
            assert "panicked" not in gw.log()
    finally:
        meta.stop()
        vx.stop()
