"""Google's Gemini API (AI Studio, API key) and Vertex AI (static bearer token, or tokens
fetched from the metadata server and refreshed) behind the official OpenAI SDK: chats,
streams, tool calls and errors. One Envoy for the module (tests/fixtures_bedrock_google.py);
the Vertex token refresh runs in its own Envoy (it depends on when the token was fetched)."""
import json
import time

import openai
import pytest

from fixtures_bedrock_google import FLASH, TOOL_ARGS, VERTEX_STATIC, WEATHER, _error_stream, collect, oai, user
from fixtures_bedrock_google import gm, gw, mocks, vx  # noqa: F401 (fixtures, found by name)
from harness import Envoy
from mock_google import PIECES as GM_PIECES, GoogleMock, MetadataMock, TokenBook


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
