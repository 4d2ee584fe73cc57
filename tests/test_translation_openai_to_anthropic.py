"""OpenAI clients (Chat Completions, the official OpenAI SDK) in front of an Anthropic provider:
requests, answers, streams, tool calls and errors translated both ways, and the usage of
streams that end early. One Envoy for the module (tests/fixtures_openai_anthropic_azure.py)."""
import json
import time

import openai
import pytest

from fixtures_openai_anthropic_azure import (CLAUDE, DEFAULT_MAX_TOKENS, GPT, TOOL_ARGS, WEATHER_ANTHROPIC,
                                             WEATHER_OPENAI, Counter, ant, oai, user)
from fixtures_openai_anthropic_azure import an, gw, mocks, oa  # noqa: F401 (fixtures, found by name)
from harness import stream_request
from mock_anthropic import STREAM_PIECES


def test_openai_sdk_chat_to_anthropic(gw, an):
    out = oai(gw).chat.completions.create(model=CLAUDE, temperature=0.2, messages=[
        {"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello"}])
    assert out.choices[0].message.content == "".join(STREAM_PIECES)
    assert out.choices[0].finish_reason == "stop"
    assert out.model == CLAUDE and out.object == "chat.completion" and out.id.startswith("msg_")
    u = an.reported[0]
    assert out.usage.prompt_tokens == u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
    assert out.usage.completion_tokens == u["output_tokens"]
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert out.usage.prompt_tokens_details.cached_tokens == u["cache_read_input_tokens"]
    rec = an.requests[0]
    body = rec.json
    assert body["system"] == "You are terse."
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert body["model"] == CLAUDE and body["max_tokens"] == DEFAULT_MAX_TOKENS and body["temperature"] == 0.2
    assert rec.headers["host"] == "api.anthropic.com"


def test_openai_client_max_tokens_alias_and_multi_turn(gw, an):
    ok = Counter(gw, "llm_gateway_requests_total", provider="anthropic", model=CLAUDE, operation="chat",
                 status_class="2xx")
    out = oai(gw).chat.completions.create(model="sonnet", max_tokens=77, messages=[
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"}, {"role": "user", "content": "four"}])
    assert out.choices[0].message.content
    body = an.requests[0].json
    assert body["model"] == CLAUDE and body["max_tokens"] == 77
    # Consecutive user messages are merged so roles alternate as Anthropic requires.
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert ok.grew()


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_sdk_stream_from_anthropic(gw, an, include_usage):
    kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = oai(gw).chat.completions.create(model=CLAUDE, stream=True, messages=user("Stream please"), **kwargs)
    deltas, usage, finish, ids, models = [], None, None, set(), set()
    for chunk in stream:
        ids.add(chunk.id)
        models.add(chunk.model)
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            if chunk.choices[0].delta.content:
                deltas.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert deltas == STREAM_PIECES
    assert finish == "stop"
    assert len(ids) == 1 and next(iter(ids)).startswith("msg_") and models == {CLAUDE}
    u = an.reported[0]
    if include_usage:
        assert usage.prompt_tokens == u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
        assert usage.completion_tokens == u["output_tokens"]
        assert usage.prompt_tokens_details.cached_tokens == u["cache_read_input_tokens"]
    else:
        assert usage is None
    body = an.requests[0].json
    assert body["stream"] is True and "stream_options" not in body


def test_openai_sse_stream_from_anthropic_is_well_formed_and_incremental(gw, an):
    status, headers, got = stream_request(gw.port, {"model": CLAUDE, "stream": True, "messages": user("hi")})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    raw = b"".join(d for _, d in got)
    events = [e for e in raw.split(b"\n\n") if e]
    assert all(e.startswith(b"data: ") for e in events), raw[:500]
    assert events[-1] == b"data: [DONE]"
    assert b"event:" not in raw and b'"usage"' not in raw
    assert len(got) > 3  # delivered in pieces, not buffered whole


def estimated_tokens(gw, provider, before=None, timeout=5.0):
    """{type: value} of the estimated token counters, waiting until they differ from `before`.

    The counters are read one by one while the worker may be updating them, so a read can catch
    one counter of a request updated and the next not yet: after a change, read again until two
    reads agree."""
    def read():
        return {t: gw.metric("llm_gateway_tokens_total", provider=provider, type=t, estimated="true")
                for t in ("input", "output")}
    value = read()
    deadline = time.time() + timeout
    while before is not None and value == before and time.time() < deadline:
        time.sleep(0.1)
        value = read()
    if before is not None and value != before:
        while True:
            time.sleep(0.1)
            again = read()
            if again == value or time.time() >= deadline:
                return again
            value = again
    return value


def test_openai_stream_cut_by_anthropic_ends_with_an_error_chunk(gw, an):
    an.expect_estimated = True
    before = estimated_tokens(gw, "anthropic")
    texts = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in oai(gw).chat.completions.create(model=CLAUDE, stream=True, messages=user("[cut] go")):
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
    assert texts == STREAM_PIECES
    assert "before the response was complete" in str(exc.value)
    # message_delta never came: input as message_start reported it, output estimated from
    # the streamed text (not message_start's placeholder output_tokens 1).
    after = estimated_tokens(gw, "anthropic", before)
    u = an.partial[0]
    assert after["input"] - before["input"] == (u["input_tokens"] + u["cache_read_input_tokens"]
                                                + u["cache_creation_input_tokens"])
    assert len("".join(STREAM_PIECES)) / 6 <= after["output"] - before["output"] <= len("".join(STREAM_PIECES))


def test_anthropic_stream_ending_before_message_start_estimates_the_prompt(gw, an):
    """The gateway keeps the request body until the stream reports usage; a stream that
    never does is charged the prompt estimate (and the client gets an error chunk)."""
    an.expect_estimated = True
    before = estimated_tokens(gw, "anthropic")
    prompt = "[silent] " + "please count the words of this prompt carefully " * 20
    with pytest.raises(openai.APIError):
        for _ in oai(gw).chat.completions.create(model=CLAUDE, stream=True, messages=user(prompt)):
            pass
    after = estimated_tokens(gw, "anthropic", before)
    assert len(prompt) // 4 <= after["input"] - before["input"] <= len(prompt) // 2
    assert after["output"] == before["output"]


def test_client_leaving_an_anthropic_stream_records_usage_as_estimated(gw, an):
    an.expect_estimated = True
    before = estimated_tokens(gw, "anthropic")
    status, _, got = stream_request(gw.port, {"model": CLAUDE, "stream": True, "messages": user("bye")},
                                    read_chunks=1)
    assert status == 200
    after = estimated_tokens(gw, "anthropic", before, timeout=10)
    # The mock sent the whole stream, but the gateway saw only its start.
    an.partial.extend(an.reported)
    an.reported.clear()
    u = an.partial[0]
    assert after["input"] - before["input"] == (u["input_tokens"] + u["cache_read_input_tokens"]
                                                + u["cache_creation_input_tokens"])
    assert after["output"] - before["output"] >= 0


def test_anthropic_mid_stream_error_reaches_openai_client_as_error_chunk(gw, an):
    an.expect_estimated = True
    before = gw.metric("llm_gateway_upstream_errors_total", provider="anthropic", type="overloaded_error")
    texts = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in oai(gw).chat.completions.create(model=CLAUDE, stream=True, messages=user("[midstream] go")):
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
    assert texts == STREAM_PIECES[:1]
    assert exc.value.body == {"message": "Overloaded", "type": "server_error", "param": None,
                              "code": "overloaded_error"}
    assert gw.wait_metric("llm_gateway_upstream_errors_total", before + 1, provider="anthropic",
                          type="overloaded_error") == before + 1


def test_translated_streams_record_time_to_first_token(gw, an, oa):
    labels = [dict(provider="anthropic", model=CLAUDE), dict(provider="openai", model=GPT)]
    time.sleep(1.2)  # histograms are published on Envoy's stats flush (0.5 s): let earlier samples land
    before = [gw.metric("gen_ai_server_time_to_first_token_ms_count", **l) for l in labels]
    for _ in oai(gw).chat.completions.create(model=CLAUDE, stream=True, messages=user("ttft")):
        pass
    with ant(gw).messages.stream(model=GPT, max_tokens=10, messages=user("ttft")) as s:
        s.get_final_message()
    for l, b in zip(labels, before):
        assert gw.wait_metric("gen_ai_server_time_to_first_token_ms_count", b + 1, **l) == b + 1


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_tool_call_round_trip_with_anthropic(gw, an, stream):
    client = oai(gw)
    messages = [{"role": "system", "content": "Use tools."},
                {"role": "user", "content": "Weather in Paris? [tool]"}]
    if stream:
        calls, text = {}, ""
        finish = None
        for chunk in client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER_OPENAI],
                                                    stream=True):
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
        assert list(calls) == [0]
        call = calls[0]
        assistant = {"role": "assistant", "content": text or None, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": call["arguments"]}}]}
    else:
        out = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER_OPENAI],
                                             tool_choice="auto")
        finish = out.choices[0].finish_reason
        msg = out.choices[0].message
        assert len(msg.tool_calls) == 1
        call = {"id": msg.tool_calls[0].id, "name": msg.tool_calls[0].function.name,
                "arguments": msg.tool_calls[0].function.arguments}
        text = msg.content
        assistant = msg.model_dump(exclude_none=True)
    assert finish == "tool_calls"
    assert text == "Let me look that up."
    assert call["id"].startswith("toolu_") and call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == TOOL_ARGS
    first = an.requests[0].json
    assert first["tools"] == [WEATHER_ANTHROPIC]
    assert first["system"] == "Use tools."

    messages += [assistant, {"role": "tool", "tool_call_id": call["id"], "content": "18°C and sunny"}]
    out = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER_OPENAI])
    assert out.choices[0].message.content == "The tool said: 18°C and sunny"
    second = an.requests[1].json["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert [b["type"] for b in second[1]["content"]] == ["text", "tool_use"]
    assert second[1]["content"][1] == {"type": "tool_use", "id": call["id"], "name": "get_weather",
                                       "input": TOOL_ARGS}
    assert second[2]["content"][0]["type"] == "tool_result"
    assert second[2]["content"][0]["tool_use_id"] == call["id"]


def test_openai_sdk_embeddings_against_anthropic_is_unsupported(gw, an):
    rejected = Counter(gw, "llm_gateway_rejected_total", reason="unsupported_endpoint")
    with pytest.raises(openai.BadRequestError) as exc:
        oai(gw).embeddings.create(model=CLAUDE, input="hello")
    assert exc.value.status_code == 400
    err = exc.value.response.json()["error"]
    assert err["code"] == "unsupported_endpoint" and err["type"] == "invalid_request_error"
    assert err["param"] == "model" and "/embeddings" in err["message"]
    assert an.requests == []
    assert rejected.grew()


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_529_reaches_openai_client_as_openai_error(gw, an, stream):
    before = gw.metric("llm_gateway_upstream_errors_total", provider="anthropic", type="overloaded_error")
    with pytest.raises(openai.InternalServerError) as exc:
        r = oai(gw).chat.completions.create(model=CLAUDE, messages=user("[overloaded] hi"), stream=stream)
        if stream:
            list(r)
    assert exc.value.status_code == 529
    assert exc.value.response.headers["content-type"] == "application/json"
    body = exc.value.response.json()
    assert set(body) == {"error"}
    assert body["error"] == {"message": "Overloaded", "type": "server_error", "param": None,
                             "code": "overloaded_error"}
    assert gw.wait_metric("llm_gateway_upstream_errors_total", before + 1, provider="anthropic",
                          type="overloaded_error") == before + 1


def test_anthropic_400_reaches_openai_client_as_openai_error(gw, an):
    with pytest.raises(openai.BadRequestError) as exc:
        oai(gw).chat.completions.create(model=CLAUDE, messages=user("[invalid]"))
    err = exc.value.response.json()["error"]
    assert exc.value.status_code == 400
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_request_error"
    assert "mock rejects this prompt" in err["message"]


def test_untranslatable_openai_request_is_400_before_reaching_anthropic(gw, an):
    with pytest.raises(openai.BadRequestError) as exc:
        oai(gw).chat.completions.create(model=CLAUDE, messages=user("x"), n=2)
    assert exc.value.response.json()["error"]["param"] == "n"
    assert an.requests == []
