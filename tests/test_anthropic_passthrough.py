"""Anthropic clients (the official Anthropic SDK) in front of an Anthropic provider: messages,
streams, tool use and errors pass through untranslated (model aliases resolved, the
provider's key and anthropic-version sent). One Envoy for the module
(tests/fixtures_openai_anthropic_azure.py)."""
import anthropic
import pytest

from fixtures_openai_anthropic_azure import CLAUDE, SDK_ANTHROPIC_VERSION, TOOL_ARGS, WEATHER_ANTHROPIC, ant, user
from fixtures_openai_anthropic_azure import an, gw, mocks  # noqa: F401 (fixtures, found by name)
from mock_anthropic import STREAM_PIECES


def test_anthropic_sdk_native_messages(gw, an):
    an.reset(expect_version=SDK_ANTHROPIC_VERSION)
    msg = ant(gw).messages.create(model=CLAUDE, max_tokens=64, system=[{"type": "text", "text": "Sys"}],
                                  messages=user("native"))
    assert msg.id.startswith("msg_01Mock") and msg.content[0].text == "".join(STREAM_PIECES)
    u = an.reported[0]
    assert msg.usage.cache_read_input_tokens == u["cache_read_input_tokens"]
    assert msg.usage.cache_creation_input_tokens == u["cache_creation_input_tokens"]
    rec = an.requests[0]
    assert rec.json["system"] == [{"type": "text", "text": "Sys"}] and rec.json["max_tokens"] == 64
    assert rec.headers["anthropic-version"] == SDK_ANTHROPIC_VERSION


def test_anthropic_sdk_native_stream_and_tools(gw, an):
    an.reset(expect_version=SDK_ANTHROPIC_VERSION)
    client = ant(gw)
    with client.messages.stream(model=CLAUDE, max_tokens=64, messages=user("stream")) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert texts == STREAM_PIECES
    u = an.reported[0]
    assert final.usage.output_tokens == u["output_tokens"]
    assert final.usage.input_tokens == u["input_tokens"]
    messages = user("Weather? [tool]")
    raw = client.messages.create(model=CLAUDE, max_tokens=64, tools=[WEATHER_ANTHROPIC], messages=messages,
                                 stream=True)
    kinds = [ev.type for ev in raw]
    assert kinds[0] == "message_start" and "content_block_delta" in kinds and kinds[-1] == "message_stop"
    msg = client.messages.create(model=CLAUDE, max_tokens=64, tools=[WEATHER_ANTHROPIC], messages=messages)
    tu = [b for b in msg.content if b.type == "tool_use"][0]
    assert tu.input == TOOL_ARGS
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "sun"}]}]
    out = client.messages.create(model=CLAUDE, max_tokens=64, tools=[WEATHER_ANTHROPIC], messages=messages)
    assert out.content[0].text == "The tool said: sun"


def test_anthropic_mid_stream_error_reaches_anthropic_client_unchanged(gw, an):
    an.reset(expect_version=SDK_ANTHROPIC_VERSION)
    an.expect_estimated = True
    with pytest.raises(anthropic.APIStatusError) as exc:
        with ant(gw).messages.stream(model="sonnet", max_tokens=10, messages=user("[midstream]")) as s:
            s.get_final_message()
    assert exc.value.body["error"]["type"] == "overloaded_error"
    assert an.requests[0].json["model"] == CLAUDE  # the alias was resolved


def test_anthropic_529_reaches_anthropic_client_unchanged(gw, an):
    an.reset(expect_version=SDK_ANTHROPIC_VERSION)
    with pytest.raises(anthropic.APIStatusError) as exc:
        ant(gw).messages.create(model=CLAUDE, max_tokens=10, messages=user("[overloaded]"))
    assert exc.value.status_code == 529
    assert exc.value.response.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
