"""Shared setup of the tests of the OpenAI ⇄ Anthropic translation and of the OpenAI, Anthropic
and Azure OpenAI providers (tests/test_translation_*.py, test_anthropic_passthrough.py,
test_azure.py, test_provider_apis.py, test_shipped_config.py): the official SDKs in front of
mocks that check what they receive against each provider's public API (tests/mock_anthropic.py,
tests/mock_openai.py), through the real Envoy and the compiled filter.

A test module that imports `gw` gets one Envoy for the whole module (`mocks` too); the mocks'
records are reset before every test by the `an`, `oa` and `az` fixtures, which also check after
the test that the mock saw no broken request and that the token metrics grew by exactly what
the provider reported (compared as differences, so tests do not depend on each other's order).
Import the fixtures a test module uses together with those they depend on (`gw`, `mocks`)."""
import anthropic
import openai
import pytest

from harness import Envoy
from mock_anthropic import AnthropicMock
from mock_openai import OpenAIMock

OPENAI_KEY = "sk-proj-upstream-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-api03-upstream-anthropic-0123456789"
AZURE_KEY = "0123456789abcdef0123456789abcdef"
AZURE_VERSION = "2024-10-21"
SDK_ANTHROPIC_VERSION = anthropic._constants.ANTHROPIC_API_VERSION
DEFAULT_MAX_TOKENS = 1024

CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-4.1-mini"          # OpenAI
AZ_CHAT = "gpt-4o"            # Azure, deployment prod-gpt4o
AZ_EMBED = "text-embedding-3-small"  # Azure, deployment emb-small
TOKEN_TYPES = ("input", "output", "cached_input", "cache_creation_input")

WEATHER_OPENAI = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city"]}}}
WEATHER_ANTHROPIC = {"name": "get_weather", "description": "Current weather in a city",
                     "input_schema": WEATHER_OPENAI["function"]["parameters"]}
TOOL_ARGS = {"city": "Paris", "unit": "celsius"}


def plugin_config():
    return {
        "providers": [
            {"name": "openai", "type": "openai", "cluster": "openai", "host": "api.openai.com",
             "api_key_env": "OPENAI_API_KEY"},
            {"name": "anthropic", "type": "anthropic", "cluster": "anthropic", "host": "api.anthropic.com",
             "api_key_env": "ANTHROPIC_API_KEY", "default_max_tokens": DEFAULT_MAX_TOKENS},
            {"name": "azure", "type": "azure_openai", "cluster": "azure", "host": "myres.openai.azure.com",
             "api_key_env": "AZURE_OPENAI_API_KEY", "api_version": AZURE_VERSION,
             "deployments": {AZ_CHAT: "prod-gpt4o", AZ_EMBED: "emb-small"}},
        ],
        "models": [
            {"match": "claude-*", "provider": "anthropic"},
            {"match": "sonnet", "provider": "anthropic", "upstream_model": CLAUDE},
            {"match": AZ_CHAT, "provider": "azure"},
            {"match": AZ_EMBED, "provider": "azure"},
            {"match": "gpt-4.1*", "provider": "openai"},
        ],
    }


@pytest.fixture(scope="module")
def mocks():
    ms = {"anthropic": AnthropicMock(ANTHROPIC_KEY).start(),
          "openai": OpenAIMock(OPENAI_KEY).start(),
          "azure": OpenAIMock(AZURE_KEY, "azure", AZURE_VERSION).start()}
    yield ms
    for m in ms.values():
        m.stop()


@pytest.fixture(scope="module")
def gw(mocks):
    env = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "AZURE_OPENAI_API_KEY": AZURE_KEY}
    with Envoy(plugin_config(), {name: m.port for name, m in mocks.items()}, env=env) as e:
        yield e


class Tokens:
    """Token counters of one provider, compared to their value when the test started."""

    def __init__(self, gw, provider):
        self.gw, self.provider = gw, provider
        self.before = {t: gw.metric("llm_gateway_tokens_total", provider=provider, type=t, estimated="false")
                       for t in TOKEN_TYPES}
        self.before_est = gw.metric("llm_gateway_tokens_total", provider=provider, estimated="true")

    def assert_exact(self, expected: dict, estimated_allowed: bool = False):
        got = {}
        for t in TOKEN_TYPES:
            want = self.before[t] + expected[t]
            got[t] = self.gw.wait_metric("llm_gateway_tokens_total", want, provider=self.provider, type=t,
                                         estimated="false") - self.before[t]
        assert got == {t: expected[t] for t in TOKEN_TYPES}
        if not estimated_allowed:
            assert self.gw.metric("llm_gateway_tokens_total", provider=self.provider,
                                  estimated="true") == self.before_est


@pytest.fixture
def an(gw, mocks):
    m = mocks["anthropic"]
    m.reset()
    t = Tokens(gw, "anthropic")
    yield m
    assert m.failures == [], m.failures
    t.assert_exact(m.expected_tokens(), m.expect_estimated)


@pytest.fixture
def oa(gw, mocks):
    m = mocks["openai"]
    m.reset()
    t = Tokens(gw, "openai")
    yield m
    assert m.failures == [], m.failures
    t.assert_exact(m.expected_tokens(), m.expect_estimated)


@pytest.fixture
def az(gw, mocks):
    m = mocks["azure"]
    m.reset()
    t = Tokens(gw, "azure")
    yield m
    assert m.failures == [], m.failures
    t.assert_exact(m.expected_tokens(), m.expect_estimated)


class Counter:
    """A counter's value now; `grew(n)` waits until it is exactly n more (counters are live)."""

    def __init__(self, gw, name, **labels):
        self.gw, self.name, self.labels = gw, name, labels
        self.before = gw.metric(name, **labels)

    def grew(self, n=1) -> bool:
        return self.gw.wait_metric(self.name, self.before + n, **self.labels) == self.before + n


def oai(gw):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="sk-client-virtual-key", max_retries=0)


def ant(gw):
    return anthropic.Anthropic(base_url=f"http://127.0.0.1:{gw.port}", api_key="sk-ant-client-virtual-key",
                               max_retries=0)


def user(text):
    return [{"role": "user", "content": text}]
