"""Anthropic clients (Messages API, the official Anthropic SDK) in front of OpenAI and Azure
OpenAI providers: requests, answers, streams, tool calls and errors translated both ways, and
the gateway's own errors in Anthropic's format. One Envoy for the module
(tests/fixtures_openai_anthropic_azure.py)."""
import json
import time

import anthropic
import pytest

from fixtures_openai_anthropic_azure import AZ_CHAT, GPT, TOOL_ARGS, WEATHER_ANTHROPIC, Counter, ant, user
from fixtures_openai_anthropic_azure import az, gw, mocks, oa  # noqa: F401 (fixtures, found by name)
from mock_openai import PIECES


def test_anthropic_sdk_messages_to_openai(gw, oa):
    ok = Counter(gw, "llm_gateway_requests_total", provider="openai", model=GPT, operation="messages",
                 status_class="2xx")
    msg = ant(gw).messages.create(model=GPT, max_tokens=300, system="Be brief.", stop_sequences=["END"],
                                  messages=user("Hello there"), extra_body={"temperature": 0.5})
    assert msg.type == "message" and msg.role == "assistant" and msg.model == GPT
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == "".join(PIECES)
    assert msg.stop_reason == "end_turn"
    r = oa.reported[0]
    assert msg.usage.input_tokens == r["prompt_tokens"] - r["cached_tokens"]
    assert msg.usage.cache_read_input_tokens == r["cached_tokens"]
    assert msg.usage.output_tokens == r["completion_tokens"]
    rec = oa.requests[0]
    assert rec.path == "/v1/chat/completions"
    body = rec.json
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    assert body["max_completion_tokens"] == 300 and body["stop"] == ["END"] and body["temperature"] == 0.5
    assert "stream" not in body or body["stream"] is False
    assert ok.grew()


def test_anthropic_sdk_stream_from_openai(gw, oa):
    texts, events = [], []
    with ant(gw).messages.stream(model=GPT, max_tokens=100, messages=user("Stream it")) as stream:
        for ev in stream:
            events.append(ev.type)
            if ev.type == "text":
                texts.append(ev.text)
        final = stream.get_final_message()
    assert texts == PIECES
    assert final.content[0].text == "".join(PIECES) and final.stop_reason == "end_turn"
    assert events[0] == "message_start" and events[-1] == "message_stop"
    r = oa.reported[0]
    assert final.usage.output_tokens == r["completion_tokens"]
    assert final.usage.input_tokens == r["prompt_tokens"] - r["cached_tokens"]
    assert final.usage.cache_read_input_tokens == r["cached_tokens"]
    body = oa.requests[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_anthropic_raw_stream_from_openai_is_anthropic_sse(gw, oa):
    status, headers, got = _post_stream(gw, "/v1/messages", {"model": GPT, "max_tokens": 50, "stream": True,
                                                             "messages": user("raw")})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    raw = b"".join(got)
    names = [e.split(b"\n")[0] for e in raw.split(b"\n\n") if e]
    assert names[0] == b"event: message_start" and names[-1] == b"event: message_stop"
    assert b"event: message_delta" in names and b"[DONE]" not in raw
    assert len(got) > 3  # delivered in pieces, not buffered whole


def _post_stream(gw, path, body):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=30)
    conn.request("POST", path, body=json.dumps(body).encode(), headers={"content-type": "application/json"})
    resp = conn.getresponse()
    got = []
    while True:
        data = resp.read1(65536)
        if not data:
            break
        got.append(data)
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, headers, got


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_tools_round_trip_with_openai(gw, oa, stream):
    client = ant(gw)
    messages = user("Weather in Paris? [tool]")
    if stream:
        with client.messages.stream(model=GPT, max_tokens=200, tools=[WEATHER_ANTHROPIC], messages=messages,
                                    tool_choice={"type": "auto", "disable_parallel_tool_use": True}) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(model=GPT, max_tokens=200, tools=[WEATHER_ANTHROPIC], messages=messages,
                                     tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    assert msg.stop_reason == "tool_use"
    tool_uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(tool_uses) == 1
    tu = tool_uses[0]
    assert tu.name == "get_weather" and tu.input == TOOL_ARGS and tu.id.startswith("call_")
    first = oa.requests[0].json
    assert first["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER_ANTHROPIC["description"],
        "parameters": WEATHER_ANTHROPIC["input_schema"]}}]
    assert first["tool_choice"] == "auto" and first["parallel_tool_calls"] is False

    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "22°C"},
                                              {"type": "text", "text": "Thanks"}]}]
    out = client.messages.create(model=GPT, max_tokens=200, tools=[WEATHER_ANTHROPIC], messages=messages)
    assert out.content[0].text == "The tool said: 22°C"
    second = oa.requests[1].json["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "tool", "user"]
    assert second[1]["tool_calls"][0]["id"] == tu.id
    assert json.loads(second[1]["tool_calls"][0]["function"]["arguments"]) == TOOL_ARGS
    assert second[2] == {"role": "tool", "tool_call_id": tu.id, "content": "22°C"}


@pytest.mark.parametrize("stream", [False, True])
def test_openai_429_reaches_anthropic_client_as_anthropic_error(gw, oa, stream):
    errors = Counter(gw, "llm_gateway_upstream_errors_total", provider="openai", type="rate_limit_exceeded")
    failed = Counter(gw, "llm_gateway_requests_total", provider="openai", operation="messages", status_class="4xx")
    with pytest.raises(anthropic.RateLimitError) as exc:
        if stream:
            with ant(gw).messages.stream(model=GPT, max_tokens=10, messages=user("[ratelimit]")) as s:
                s.get_final_message()
        else:
            ant(gw).messages.create(model=GPT, max_tokens=10, messages=user("[ratelimit]"))
    assert exc.value.status_code == 429
    body = exc.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"].startswith("Rate limit reached for gpt-4.1")
    assert errors.grew() and failed.grew()


def test_openai_mid_stream_error_reaches_anthropic_client_as_error_event(gw, oa):
    # No usage ever arrives from this stream: the gateway estimates it (estimated="true").
    oa.expect_estimated = True
    before = gw.metric("llm_gateway_tokens_total", provider="openai", type="input", estimated="true")
    errors = Counter(gw, "llm_gateway_upstream_errors_total", provider="openai", type="server_error")
    texts = []
    with pytest.raises(anthropic.APIStatusError) as exc:
        with ant(gw).messages.stream(model=GPT, max_tokens=10, messages=user("[midstream]")) as s:
            for ev in s:
                if ev.type == "text":
                    texts.append(ev.text)
    assert texts == PIECES[:1]
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == "api_error"
    assert "server had an error" in exc.value.body["error"]["message"]
    assert errors.grew()
    deadline = time.time() + 5
    while gw.metric("llm_gateway_tokens_total", provider="openai", type="input", estimated="true") == before \
            and time.time() < deadline:
        time.sleep(0.1)
    assert gw.metric("llm_gateway_tokens_total", provider="openai", type="input", estimated="true") > before


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_against_azure(gw, az, stream):
    client = ant(gw)
    if stream:
        with client.messages.stream(model=AZ_CHAT, max_tokens=20, messages=user("hi azure")) as s:
            texts = list(s.text_stream)
            msg = s.get_final_message()
        assert texts == PIECES
    else:
        msg = client.messages.create(model=AZ_CHAT, max_tokens=20, system="sys", messages=user("hi azure"))
    assert msg.content[0].text == "".join(PIECES)
    r = az.reported[0]
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (r["prompt_tokens"] - r["cached_tokens"],
                                                                 r["completion_tokens"])
    assert az.deployments == ["prod-gpt4o"]
    assert az.requests[0].json["max_completion_tokens"] == 20


def test_gateway_errors_reach_anthropic_clients_in_anthropic_format(gw, oa):
    with pytest.raises(anthropic.NotFoundError) as exc:
        ant(gw).messages.create(model="no-such-model", max_tokens=10, messages=user("x"))
    body = exc.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as exc:
        ant(gw).messages.create(model=GPT, max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "document", "source": {
                "type": "text", "media_type": "text/plain", "data": "x"}}]}])
    assert exc.value.response.json()["error"]["type"] == "invalid_request_error"
    assert oa.requests == []
