"""AWS Bedrock (Converse, SigV4, eventstream) behind the official OpenAI SDK: requests signed
with and without a session token (the mock recomputes the signature), streams, tool calls,
HTTP errors and broken streams as OpenAI errors. One Envoy for the module
(tests/fixtures_bedrock_google.py)."""
import json

import openai
import pytest

from fixtures_bedrock_google import (AWS_SESSION, CLAUDE_PROFILE, HAIKU, TOOL_ARGS, WEATHER, _error_stream, collect,
                                     oai, user)
from fixtures_bedrock_google import br, br2, gw, mocks  # noqa: F401 (fixtures, found by name)
from harness import stream_request
from mock_bedrock import PIECES as BR_PIECES


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
