"""Shared setup of tests/test_routing.py and tests/test_usage_metrics.py: two OpenAI-type
providers, "alpha" and "beta" (the `mock` and `mock2` mock providers of conftest.py), with
their keys, the plugin configuration routing models to them, and a fresh Envoy per test (`gw`)."""
import pytest

from harness import Envoy, MockProvider

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
