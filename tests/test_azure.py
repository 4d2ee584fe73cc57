"""OpenAI clients (the official OpenAI SDK) in front of Azure OpenAI: the model's deployment in
the path, api-version, the api-key header, streams, tool calls and embeddings. (Anthropic
clients in front of Azure: tests/test_translation_anthropic_to_openai.py.) One Envoy for the
module (tests/fixtures_openai_anthropic_azure.py)."""
import json

import pytest

from fixtures_openai_anthropic_azure import (AZ_CHAT, AZ_EMBED, AZURE_VERSION, TOOL_ARGS, WEATHER_OPENAI, Counter, oai,
                                             user)
from fixtures_openai_anthropic_azure import az, gw, mocks  # noqa: F401 (fixtures, found by name)
from harness import openai_sse, stream_request
from mock_openai import PIECES


def test_openai_sdk_chat_to_azure_uses_the_deployment(gw, az):
    out = oai(gw).chat.completions.create(model=AZ_CHAT, messages=user("hello azure"))
    assert out.choices[0].message.content == "".join(PIECES)
    assert out.usage.prompt_tokens == az.reported[0]["prompt_tokens"]
    rec = az.requests[0]
    assert az.deployments == ["prod-gpt4o"]
    assert rec.path == f"/openai/deployments/prod-gpt4o/chat/completions?api-version={AZURE_VERSION}"
    assert rec.headers["host"] == "myres.openai.azure.com"
    assert rec.json["messages"] == user("hello azure")


def test_azure_model_without_mapping_is_its_own_deployment(gw, az):
    out = oai(gw).chat.completions.create(model="azure/my-gpt-35", messages=user("x"))
    assert out.choices[0].message.content
    assert az.deployments == ["my-gpt-35"]
    assert az.requests[0].json["model"] == "my-gpt-35"


@pytest.mark.parametrize("include_usage", [None, True])
def test_openai_sdk_stream_from_azure(gw, az, include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    deltas, usage = [], None
    for chunk in oai(gw).chat.completions.create(model=AZ_CHAT, stream=True, messages=user("s"), **kwargs):
        if chunk.choices and chunk.choices[0].delta.content:
            deltas.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert deltas == PIECES
    # The gateway always asks Azure for usage ...
    assert az.requests[0].json["stream_options"] == {"include_usage": True}
    # ... and the client sees it only when it asked.
    if include_usage:
        r = az.reported[0]
        assert (usage.prompt_tokens, usage.completion_tokens) == (r["prompt_tokens"], r["completion_tokens"])
        assert usage.prompt_tokens_details.cached_tokens == r["cached_tokens"]
    else:
        assert usage is None


def test_azure_stream_without_include_usage_is_byte_identical(gw, az):
    status, _, got = stream_request(gw.port, {"model": AZ_CHAT, "stream": True, "messages": user("s")})
    assert status == 200
    assert b"".join(d for _, d in got) == b"".join(openai_sse(AZ_CHAT, PIECES, None, include_usage=False))


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_tool_call_round_trip_with_azure(gw, az, stream):
    client = oai(gw)
    messages = user("Weather? [tool]")
    if stream:
        args, call_id, name = "", None, None
        for chunk in client.chat.completions.create(model=AZ_CHAT, messages=messages, tools=[WEATHER_OPENAI],
                                                    stream=True):
            for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                call_id = tc.id or call_id
                name = (tc.function.name if tc.function else None) or name
                args += (tc.function.arguments or "") if tc.function else ""
    else:
        msg = client.chat.completions.create(model=AZ_CHAT, messages=messages, tools=[WEATHER_OPENAI]).choices[0].message
        call_id, name, args = msg.tool_calls[0].id, msg.tool_calls[0].function.name, msg.tool_calls[0].function.arguments
    assert name == "get_weather" and json.loads(args) == TOOL_ARGS
    messages += [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}]},
                 {"role": "tool", "tool_call_id": call_id, "content": "rain"}]
    out = client.chat.completions.create(model=AZ_CHAT, messages=messages, tools=[WEATHER_OPENAI])
    assert out.choices[0].message.content == "The tool said: rain"
    assert az.deployments == ["prod-gpt4o", "prod-gpt4o"]


def test_openai_sdk_embeddings_via_azure(gw, az):
    ok = Counter(gw, "llm_gateway_requests_total", provider="azure", model=AZ_EMBED, operation="embeddings",
                 status_class="2xx")
    emb = oai(gw).embeddings.create(model=AZ_EMBED, input=["a", "b"])
    assert [d.embedding for d in emb.data] == [[0.25, -0.5, 0.125]] * 2
    assert emb.usage.prompt_tokens == az.reported[0]["prompt_tokens"]
    assert az.requests[0].path == f"/openai/deployments/emb-small/embeddings?api-version={AZURE_VERSION}"
    assert ok.grew()


def test_responses_api_against_azure_is_unsupported(gw, az):
    status, _, body = gw.post("/v1/responses", {"model": AZ_CHAT, "input": "x"})
    assert status == 400
    assert json.loads(body)["error"]["code"] == "unsupported_endpoint"
    assert az.requests == []
