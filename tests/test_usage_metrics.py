"""Usage in metrics and the access log: token counters equal what the provider reported,
an answer that is not a JSON object records no usage, and `access_log_attributes` trims what
the access log gets. (Streams: tests/test_streaming.py; translated answers: the
tests/test_translation_*.py files, whose fixtures check every test's token counters.)

Two OpenAI-type providers, "alpha" and "beta" (tests/fixtures_two_openai_providers.py)."""
import time

from fixtures_two_openai_providers import KEY_A, KEY_B, two_provider_config
from fixtures_two_openai_providers import gw  # noqa: F401 (fixtures, found by name)
from harness import Envoy, Reply


def test_answer_that_is_not_a_json_object_records_no_usage(gw, mock):
    """A 200 answer whose body is a JSON array is relayed untouched, and no usage is
    invented from it (no token counts in metrics or the access log)."""
    answer = b'[{"usage":{"prompt_tokens":7,"completion_tokens":5}}]'
    mock.handler = lambda req: Reply(200, answer, {"content-type": "application/json"})
    status, _, body = gw.chat("gpt-4o-mini")
    assert status == 200 and body == answer
    assert gw.wait_metric("llm_gateway_requests_total", 1, provider="alpha", model="gpt-4o-mini",
                          status_class="2xx") == 1
    assert gw.metric("llm_gateway_tokens_total", provider="alpha") == 0
    deadline = time.time() + 5
    while not gw.access_log_lines() and time.time() < deadline:
        time.sleep(0.1)
    assert "provider=alpha model=gpt-4o-mini input_tokens=- output_tokens=-" in gw.access_log_lines()[0]


def test_access_log_gets_only_the_configured_attributes(mock):
    """`access_log_attributes` trims the filter-state writes (one host call each) to what the
    access log reads; the others show as `-`, and metrics are unchanged."""
    cfg = two_provider_config(access_log_attributes=["provider", "total_tokens"])
    with Envoy(cfg, {"alpha": mock.port, "beta": mock.port},
               env={"ALPHA_API_KEY": KEY_A, "BETA_API_KEY": KEY_B}) as gw:
        status, _, _ = gw.chat("gpt-4o-mini")
        assert status == 200
        deadline = time.time() + 5
        while not gw.access_log_lines() and time.time() < deadline:
            time.sleep(0.1)
        line = gw.access_log_lines()[0]
        assert "provider=alpha model=- input_tokens=- output_tokens=- total_tokens=30" in line, line
        assert gw.wait_metric("llm_gateway_tokens_total", 10, provider="alpha", type="input") == 10


def test_usage_metrics_equal_what_the_provider_reported(gw, mock, mock2):
    n = 12
    for i in range(n):
        model = "gpt-4o-mini" if i % 3 else "fast"
        status, _, _ = gw.chat(model, content=f"message {i}")
        assert status == 200
    alpha_prompt = sum(r_p for r_p in [10 + i for i in range(len(mock.requests))])
    alpha_completion = sum(20 + 2 * i for i in range(len(mock.requests)))
    beta_prompt = sum(10 + i for i in range(len(mock2.requests)))
    beta_completion = sum(20 + 2 * i for i in range(len(mock2.requests)))
    assert len(mock.requests) == 8 and len(mock2.requests) == 4
    assert (mock.issued["prompt"], mock.issued["completion"]) == (alpha_prompt, alpha_completion)

    m = "llm_gateway_tokens_total"
    assert gw.wait_metric(m, alpha_prompt, provider="alpha", model="gpt-4o-mini", type="input") == alpha_prompt
    assert gw.metric(m, provider="alpha", model="gpt-4o-mini", type="output") == alpha_completion
    assert gw.metric(m, provider="beta", model="llama-3.1-8b-instant", type="input") == beta_prompt
    assert gw.metric(m, provider="beta", model="llama-3.1-8b-instant", type="output") == beta_completion
    assert gw.metric(m, estimated="true") == 0
    assert gw.metric("llm_gateway_requests_total", provider="alpha", model="gpt-4o-mini", operation="chat",
                     status_class="2xx") == 8
    assert gw.wait_metric("gen_ai_server_request_duration_ms_count", 4, provider="beta",
                          model="llama-3.1-8b-instant") == 4

    # The same usage is in the access log through filter state.
    deadline = time.time() + 5
    while len(gw.access_log_lines()) < n and time.time() < deadline:
        time.sleep(0.1)
    lines = gw.access_log_lines()
    assert len(lines) == n
    assert "provider=alpha model=gpt-4o-mini input_tokens=10 output_tokens=20 total_tokens=30" in lines[1]
    assert "provider=beta model=llama-3.1-8b-instant input_tokens=10 output_tokens=20 total_tokens=30" in lines[0]
