"""Shared setup of tests/test_bedrock.py, test_google.py and test_models_endpoint.py: the
official OpenAI SDK in front of AWS Bedrock (Converse, SigV4, eventstream), the Gemini API
(AI Studio) and Vertex AI (static and fetched bearer tokens), through the real Envoy and the
compiled filter.

The mocks (tests/mock_bedrock.py, tests/mock_google.py) check what they receive against each
provider's public API — the Bedrock mock recomputes the SigV4 signature in Python — and answer
like the providers do. A test module that imports `gw` gets one Envoy for the whole module
(`mocks` too); the `br`, `br2`, `gm` and `vx` fixtures reset their mock before every test and
check after it that the token metrics grew by exactly what the provider reported (compared as
differences). Import the fixtures a test module uses together with those they depend on
(`gw`, `mocks`)."""
import json
import socket

import openai
import pytest

from harness import NATIVE, Envoy, stream_request
from mock_bedrock import BedrockMock
from mock_google import GoogleMock

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


def _error_stream(gw, model, marker):
    status, _, got = stream_request(gw.port, {"model": model, "stream": True, "messages": user(marker)})
    data = b"".join(d for _, d in got).decode()
    events = [json.loads(e[6:]) for e in data.split("\n\n") if e.startswith("data: {")]
    errors = [e for e in events if "error" in e]
    return status, events, errors
