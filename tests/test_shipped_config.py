"""The shipped envoy/envoy.yaml (what `make run` serves), only the ports changed: without keys
every endpoint and both client APIs are served by the demo provider; with keys it reaches
Anthropic, Azure OpenAI and OpenAI (mocks from tests/fixtures_openai_anthropic_azure.py)."""
import json

from fixtures_openai_anthropic_azure import ANTHROPIC_KEY, AZURE_KEY, OPENAI_KEY, TOKEN_TYPES, ant, oai, user
from fixtures_openai_anthropic_azure import mocks  # noqa: F401 (fixtures, found by name)
from harness import Envoy
from mock_anthropic import STREAM_PIECES
from mock_openai import PIECES


def test_shipped_config_serves_every_endpoint_from_the_demo_provider():
    """What `make run` does with no keys: the shipped config, only the ports changed."""
    with Envoy() as gw:
        status, _, body = gw.chat("gpt-4o-mini")
        assert status == 200, body
        reply = json.loads(body)
        assert reply["object"] == "chat.completion" and reply["usage"]["total_tokens"] == 30
        for path, body in [("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}),
                           ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x"}),
                           ("/v1/responses", {"model": "gpt-4o", "input": "x"})]:
            status, _, out = gw.post(path, body)
            assert status == 200, (path, out)
            assert "usage" in json.loads(out)
        assert gw.wait_metric("llm_gateway_tokens_total", 12, provider="demo", model="gpt-4o-mini", type="input") == 12
        assert gw.metric("llm_gateway_tokens_total", provider="demo", model="text-embedding-3-small",
                         type="input") == 8
        # Streams get an event stream from the demo provider, through any SDK.
        from openai import OpenAI
        client = OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model="demo-stream", stream=True,
                                                messages=[{"role": "user", "content": "hi"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.startswith("Hello from the llm-gateway demo provider")
        assert gw.wait_metric("llm_gateway_tokens_total", 18, provider="demo", model="demo-stream", type="output",
                              estimated="false") == 18


def test_shipped_config_without_keys_serves_both_client_apis_from_the_demo():
    with Envoy() as e:
        msg = ant(e).messages.create(model="claude-haiku-4-5", max_tokens=50, messages=user("hi"))
        assert msg.type == "message" and msg.content[0].text.startswith("Hello from the llm-gateway demo")
        assert (msg.usage.input_tokens, msg.usage.output_tokens) == (12, 18)
        out = oai(e).chat.completions.create(model="claude-haiku-4-5", messages=user("hi"))
        assert out.usage.total_tokens == 30
        assert e.wait_metric("llm_gateway_tokens_total", 24, provider="demo", model="claude-haiku-4-5",
                             type="input", estimated="false") == 24


def test_shipped_config_with_keys_reaches_anthropic_azure_and_openai(mocks):
    an, oa, az = mocks["anthropic"], mocks["openai"], mocks["azure"]
    for m in (an, oa, az):
        m.reset()
    env = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY, "AZURE_OPENAI_API_KEY": AZURE_KEY}
    clusters = {"openai": oa.port, "anthropic": an.port, "azure_openai": az.port}
    with Envoy(clusters=clusters, env=env) as e:
        out = oai(e).chat.completions.create(model="claude-haiku-4-5", messages=user("hi"))
        assert out.choices[0].message.content == "".join(STREAM_PIECES)
        assert an.requests[0].json["max_tokens"] == 4096  # the shipped default_max_tokens
        out = oai(e).chat.completions.create(model="sonnet", messages=user("hi"))
        assert an.requests[1].json["model"] == "claude-sonnet-4-6"
        out = oai(e).chat.completions.create(model="azure/gpt-4o-mini", messages=user("hi"))
        assert az.deployments == ["gpt-4o-mini"]
        assert az.requests[0].headers["host"] == "YOUR-RESOURCE.openai.azure.com"
        msg = ant(e).messages.create(model="gpt-4o-mini", max_tokens=20, messages=user("hi"))
        assert msg.content[0].text == "".join(PIECES)
        assert oa.requests[0].path == "/v1/chat/completions"
        for m in (an, oa, az):
            assert m.failures == []
        for provider, m in (("anthropic", an), ("openai", oa), ("azure", az)):
            want = m.expected_tokens()
            for t in TOKEN_TYPES:
                assert e.wait_metric("llm_gateway_tokens_total", want[t], provider=provider, type=t,
                                     estimated="false") == want[t], (provider, t)
