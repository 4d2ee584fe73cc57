"""Provider translation end to end: OpenAI and Anthropic clients (the official SDKs) in front of
OpenAI, Anthropic and Azure OpenAI providers (mocks that check what they receive against each
provider's public API), through the real Envoy and the compiled filter.

One Envoy serves the whole module; the mocks' records are reset before every test and token
metrics are compared as differences, so tests do not depend on each other's order."""
import json
import re
import time

import anthropic
import openai
import pytest

from harness import Envoy, MockProvider, Reply, openai_sse, request, stream_request
from mock_anthropic import STREAM_PIECES, AnthropicMock
from mock_openai import PIECES, OpenAIMock

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


# =========================================================== OpenAI clients -> Anthropic

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


# Long enough (≥ 128 bytes) for the translators' SIMD escaping of text members, with every
# kind of character JSON escapes or passes through, at varied offsets.
LONG_TEXT = "".join(f"line {i}: quote \" backslash \\ tab \t cr \r nl \n bell \x07 nul-ish \x1f del \x7f "
                    f"é 漢字 🦀 </script> end.\n" for i in range(12))


def text_of(content) -> str:
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def test_long_text_with_escapes_is_translated_intact_both_ways(gw, an, oa):
    oai(gw).chat.completions.create(model=CLAUDE, messages=[{"role": "system", "content": LONG_TEXT},
                                                            {"role": "user", "content": LONG_TEXT}])
    sent = an.requests[-1].json
    assert text_of(sent["system"]) == LONG_TEXT
    assert text_of(sent["messages"][-1]["content"]) == LONG_TEXT
    ant(gw).messages.create(model=GPT, max_tokens=10, system=LONG_TEXT, messages=user(LONG_TEXT))
    sent = oa.requests[-1].json
    assert [text_of(m["content"]) for m in sent["messages"]] == [LONG_TEXT, LONG_TEXT]


def sent_as_read_and_escaped(gw, mock, path, body, key, headers) -> bytes:
    """What `mock` receives for `body(key)` and for `body` with the first letter of `key` escaped
    (a key only serde reads); both must be the same bytes, which are returned."""
    sent = []
    for k in (key, "\\u%04x%s" % (ord(key[0]), key[1:])):
        status, _, answer = request("POST", gw.port, path, body(k), {"content-type": "application/json", **headers})
        assert status == 200, answer
        sent.append(mock.requests[-1].body)
    assert sent[0] == sent[1]
    return sent[0]


def test_usual_chat_request_reaches_anthropic_as_when_serde_translates_it(gw, an):
    """An OpenAI request of text messages is translated without serde (`translate::chat_request`);
    the same request with one key escaped (which only serde reads) must reach Anthropic as the
    same bytes: system and developer texts gathered, turns of one role merged, empty texts
    dropped, escapes serde_json writes differently written again, OpenAI-only members dropped."""
    def body(user_key: str) -> bytes:
        return (
            '{"model":"%s","messages":[{"role":"developer","content":"Be brief \\/ \\u00e9"},'
            '{"role":"user","content":[{"type":"text","text":"first\\n"},{"type":"text","text":""}]},'
            '{"role":"user","content":"second \\"q\\" \\u001F","name":"ann"},'
            '{"role":"system","content":[{"type":"text","text":"s2"}]},'
            '{"role":"assistant","content":""},{"role":"user","content":%s}],'
            '"max_completion_tokens":77,"stop":"END","temperature":1,"top_k":5,"seed":7,"n":1,'
            '"stream_options":null,"%s":"u-7","stream":false}' % (CLAUDE, json.dumps(LONG_TEXT), user_key)).encode()
    sent = sent_as_read_and_escaped(gw, an, "/v1/chat/completions", body, "user",
                                    {"authorization": "Bearer sk-client"})
    got = json.loads(sent)
    assert got["system"] == [{"type": "text", "text": "Be brief / \u00e9"}, {"type": "text", "text": "s2"}]
    assert got["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "first\n"}, {"type": "text", "text": 'second "q" \x1f'},
        {"type": "text", "text": LONG_TEXT}]}]
    assert {k: v for k, v in got.items() if k not in ("system", "messages")} == {
        "model": CLAUDE, "max_tokens": 77, "stop_sequences": ["END"], "temperature": 1.0, "top_k": 5,
        "stream": False, "metadata": {"user_id": "u-7"}}
    assert b'"temperature":1.0' in sent


def answer_provider(name: str, answer: dict, escaped: tuple[str, str], broken: tuple[str, str]) -> MockProvider:
    """A started provider answering `answer` as JSON, its " and / more" written " and \\/ more"
    (an escape serde_json does not write, so the fast paths must write the text again). For
    model `escaped` the answer has `escaped[0]` replaced by `escaped[1]` (a key only serde reads),
    for model `broken` `broken[0]` by `broken[1]` (an answer neither reader takes)."""
    def handle(req):
        text = json.dumps(answer, ensure_ascii=False).replace(" and / more", " and \\/ more")
        swap = {"escaped": escaped, "broken": broken}.get(req.json["model"])
        if swap:
            text = text.replace(*swap)
        return Reply(200, text.encode(), headers={"content-type": "application/json"})

    return MockProvider(name, handle).start()


def test_usual_anthropic_answer_reaches_openai_client_as_when_serde_translates_it():
    """An Anthropic answer of text blocks is translated without serde (`translate::messages_response`);
    the same answer with its `stop_reason` key escaped (which only serde reads) must reach the
    OpenAI client as the same bytes, with the same usage recorded."""
    answer = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
              "content": [{"type": "text", "text": LONG_TEXT},
                          {"type": "text", "text": " and / more", "citations": None}],
              "stop_reason": "max_tokens", "stop_sequence": None,
              "usage": {"input_tokens": 11, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 5,
                        "output_tokens": 9, "cache_creation": {"ephemeral_5m_input_tokens": 2},
                        "service_tier": "standard"}}

    m = answer_provider("anthropic-answer", answer, escaped=('"stop_reason"', '"st\\u006fp_reason"'),
                        broken=('"content": [', '"content": null, "x": ['))
    cfg = {"providers": [{"name": "claude", "type": "anthropic", "cluster": "up", "api_key_env": "ANTHROPIC_API_KEY"}],
           "models": [{"match": "*", "provider": "claude"}]}
    try:
        with Envoy(cfg, {"up": m.port}, env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}) as gw:
            answers = {}
            for model in ("plain", "escaped"):
                body = json.dumps({"model": model, "messages": user("hi")}).encode()
                status, _, raw = request("POST", gw.port, "/v1/chat/completions", body,
                                         {"content-type": "application/json"})
                assert status == 200, raw
                # The same answer, but for the model each names and the second it was made in.
                answers[model] = re.sub(rb'"created":\d+', b'"created":0',
                                        raw.replace(b'"model":"%s"' % model.encode(), b'"model":"m"'))
                for kind, want in (("input", 18), ("output", 9), ("cached_input", 5), ("cache_creation_input", 2)):
                    assert gw.wait_metric("llm_gateway_tokens_total", want, model=model, type=kind,
                                          estimated="false") == want
            assert answers["plain"] == answers["escaped"]
            # An answer neither reader takes (content null) is a 502 in OpenAI's format.
            body = json.dumps({"model": "broken", "messages": user("hi")}).encode()
            status, _, raw = request("POST", gw.port, "/v1/chat/completions", body, {"content-type": "application/json"})
            err = json.loads(raw)
            assert status == 502 and err["error"]["message"], raw
            got = json.loads(answers["plain"])
            assert got["choices"] == [{"index": 0, "message": {"role": "assistant", "content": LONG_TEXT + " and / more"},
                                       "logprobs": None, "finish_reason": "length"}]
            assert got["usage"] == {"prompt_tokens": 18, "completion_tokens": 9, "total_tokens": 27,
                                    "prompt_tokens_details": {"cached_tokens": 5}}
    finally:
        m.stop()


def test_bad_requests_on_the_fast_translation_paths_get_the_serde_errors(gw, an, oa):
    """Requests the fast translators start reading but must leave to serde (a role neither API has,
    a value of the wrong type, a repeated key, a lone surrogate, no turn to send) get a 400 in the
    client's own format, naming the member where serde does, and reach no provider."""
    def post(path, body, headers):
        status, _, raw = request("POST", gw.port, path, body.encode(), {"content-type": "application/json", **headers})
        return status, json.loads(raw)

    openai_cases = [
        ('{"model":"%s","messages":[{"role":"bot","content":"x"}]}' % CLAUDE, "messages[0].role"),
        ('{"model":"%s","messages":[{"role":"user","content":"x"}],"temperature":"hot"}' % CLAUDE, "temperature"),
        ('{"model":"%s","messages":[{"role":"system","content":"only a system prompt"}]}' % CLAUDE, "messages"),
        ('{"model":"%s","messages":[{"role":"user","content":"\\ud800"}]}' % CLAUDE, None),
        ('{"model":"%s","messages":[{"role":"user","content":"x","role":"user"}]}' % CLAUDE, None),
    ]
    for body, param in openai_cases:
        status, err = post("/v1/chat/completions", body, {"authorization": "Bearer sk-client"})
        assert status == 400, (body, err)
        assert err["error"]["type"] == "invalid_request_error" and err["error"]["message"], (body, err)
        if param:
            assert err["error"]["param"] == param, (body, err)
    anthropic_cases = [
        '{"model":"%s","max_tokens":5,"messages":[{"role":"system","content":"x"}]}' % GPT,
        '{"model":"%s","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}' % GPT,
        '{"model":"%s","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}]}],"stream":"yes"}' % GPT,
        '{"model":"%s","max_tokens":5,"messages":[{"role":"user","content":"x"}],"top_p":1e400}' % GPT,
    ]
    for body in anthropic_cases:
        status, err = post("/v1/messages", body, {"x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"})
        assert status == 400, (body, err)
        assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error", (body, err)
        assert err["error"]["message"], (body, err)
    assert an.requests == [] and oa.requests == []


def test_large_bodies_are_translated_intact_both_ways(gw, an, oa):
    """A translated request replaces the whole body: at ~0.5 MB a large fresh buffer, which the
    native module hands to Envoy through a copy placed off the page when its own place would put
    Envoy's copy on glibc's slow path (`copy_placement`). Either way the provider gets all of it."""
    big = LONG_TEXT * 400
    oai(gw).chat.completions.create(model=CLAUDE, messages=[{"role": "system", "content": "s"},
                                                            {"role": "user", "content": big}])
    rec = an.requests[-1]
    assert text_of(rec.json["messages"][-1]["content"]) == big
    assert int(rec.headers["content-length"]) == len(rec.body) > len(big.encode())
    ant(gw).messages.create(model=GPT, max_tokens=10, system="s", messages=user(big))
    rec = oa.requests[-1]
    assert text_of(rec.json["messages"][-1]["content"]) == big
    assert int(rec.headers["content-length"]) == len(rec.body) > len(big.encode())


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


TOOL_ARGS = {"city": "Paris", "unit": "celsius"}


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


# =========================================================== OpenAI clients -> Azure OpenAI

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


# =========================================================== Anthropic clients -> OpenAI

def test_usual_openai_answer_reaches_anthropic_client_as_when_serde_translates_it():
    """An OpenAI chat completion of text is translated without serde (`translate::chat_response`);
    the same answer with its `finish_reason` key escaped (which only serde reads) must reach the
    Anthropic client as the same bytes, with the same usage recorded."""
    answer = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "gpt-x",
              "system_fingerprint": "fp_1", "service_tier": "default",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": LONG_TEXT + " and / more",
                                                   "reasoning_content": "mull \"it\" over", "refusal": None,
                                                   "annotations": []},
                           "logprobs": None, "finish_reason": "length"}],
              "usage": {"prompt_tokens": 18, "completion_tokens": 9, "total_tokens": 27,
                        "prompt_tokens_details": {"cached_tokens": 5, "audio_tokens": 0},
                        "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 0,
                                                      "accepted_prediction_tokens": 0,
                                                      "rejected_prediction_tokens": 0}}}

    m = answer_provider("openai-answer", answer, escaped=('"finish_reason"', '"fin\\u0069sh_reason"'),
                        broken=('"choices": [', '"choices": [], "x": ['))
    cfg = {"providers": [{"name": "gpt", "type": "openai", "cluster": "up", "api_key_env": "OPENAI_API_KEY"}],
           "models": [{"match": "*", "provider": "gpt"}]}
    headers = {"content-type": "application/json", "x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"}
    try:
        with Envoy(cfg, {"up": m.port}, env={"OPENAI_API_KEY": OPENAI_KEY}) as gw:
            answers = {}
            for model in ("plain", "escaped"):
                body = json.dumps({"model": model, "max_tokens": 50, "messages": user("hi")}).encode()
                status, _, raw = request("POST", gw.port, "/v1/messages", body, headers)
                assert status == 200, raw
                # The same answer, but for the model each names.
                answers[model] = raw.replace(b'"model":"%s"' % model.encode(), b'"model":"m"')
                for kind, want in (("input", 18), ("output", 9), ("cached_input", 5)):
                    assert gw.wait_metric("llm_gateway_tokens_total", want, model=model, type=kind,
                                          estimated="false") == want
            assert answers["plain"] == answers["escaped"]
            # An answer neither reader takes (no choice) is a 502 in Anthropic's format.
            body = json.dumps({"model": "broken", "max_tokens": 50, "messages": user("hi")}).encode()
            status, _, raw = request("POST", gw.port, "/v1/messages", body, headers)
            err = json.loads(raw)
            assert status == 502 and err["type"] == "error" and err["error"]["message"], raw
            got = json.loads(answers["plain"])
            assert got["content"] == [{"type": "thinking", "thinking": 'mull "it" over', "signature": ""},
                                      {"type": "text", "text": LONG_TEXT + " and / more"}]
            assert (got["id"], got["stop_reason"], got["stop_sequence"]) == ("chatcmpl-1", "max_tokens", None)
            assert got["usage"] == {"input_tokens": 13, "cache_creation_input_tokens": 0,
                                    "cache_read_input_tokens": 5, "output_tokens": 9}
    finally:
        m.stop()


def test_usual_messages_request_reaches_openai_as_when_serde_translates_it(gw, oa):
    """An Anthropic request of text turns is translated without serde (`translate::messages_request`);
    the same request with one key escaped (which only serde reads) must reach the provider as the
    same bytes: text blocks joined or kept as parts, escapes serde_json writes differently written
    again, numbers as serde writes them, members without an OpenAI equivalent dropped."""
    def body(metadata_key: str) -> bytes:
        return (
            '{"model":"%s","max_tokens":77,"system":[{"type":"text","text":"Be brief \\/ \\u00e9",'
            '"cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text",'
            '"text":"first\\n"},{"type":"text","text":"second \\"q\\" \\u001F"}]},{"role":"assistant",'
            '"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"user","content":%s}],'
            '"stop_sequences":["END"],"temperature":1,"top_k":5,"thinking":{"type":"disabled"},'
            '"%s":{"user_id":"u-7"},"stream":false}' % (GPT, json.dumps(LONG_TEXT), metadata_key)).encode()
    sent = sent_as_read_and_escaped(gw, oa, "/v1/messages", body, "metadata",
                                    {"x-api-key": "sk-ant-client", "anthropic-version": "2023-06-01"})
    got = json.loads(sent)
    assert got["messages"] == [
        {"role": "system", "content": "Be brief / \u00e9"},
        {"role": "user", "content": [{"type": "text", "text": "first\n"}, {"type": "text", "text": 'second "q" \x1f'}]},
        {"role": "assistant", "content": "ab"},
        {"role": "user", "content": LONG_TEXT}]
    assert {k: v for k, v in got.items() if k != "messages"} == {
        "model": GPT, "max_completion_tokens": 77, "stop": ["END"], "temperature": 1.0, "stream": False,
        "user": "u-7"}
    assert b'"temperature":1.0' in sent


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


# =========================================================== Anthropic clients -> Anthropic

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


def test_client_credentials_never_reach_a_provider(gw, an, oa, az):
    """Every request the mocks saw carried only the provider's own key (the mocks check it);
    here every client credential header is sent at once."""
    h = {"authorization": "Bearer sk-client", "x-api-key": "sk-client-2", "api-key": "sk-client-3"}
    for model in (CLAUDE, GPT, AZ_CHAT):
        status, _, body = gw.chat(model, headers=h)
        assert status == 200, body
    status, _, body = gw.post("/v1/messages", {"model": GPT, "max_tokens": 5, "messages": user("x")}, headers=h)
    assert status == 200, body
    assert (len(an.requests), len(oa.requests), len(az.requests)) == (1, 2, 1)


# =========================================================== the shipped envoy/envoy.yaml

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


def test_the_mocks_reject_what_the_real_apis_reject(mocks):
    """The mocks are only worth something if their checks bite: requests that skip the
    gateway and break the providers' rules get a 4xx naming the rule."""
    from harness import request
    an, az = mocks["anthropic"], mocks["azure"]
    good = {"model": CLAUDE, "max_tokens": 5, "messages": user("x")}
    h = {"content-type": "application/json", "x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
    cases = [
        (h | {"authorization": "Bearer x"}, good, 401, "authorization"),
        ({k: v for k, v in h.items() if k != "x-api-key"}, good, 401, "x-api-key is missing"),
        ({k: v for k, v in h.items() if k != "anthropic-version"}, good, 400, "anthropic-version"),
        (h, {**good, "max_tokens": None}, 400, "max_tokens"),
        (h, {**good, "messages": user("a") + user("b")}, 400, "alternate"),
        (h, {**good, "messages": [{"role": "system", "content": "s"}] + user("a")}, 400, "first message"),
        (h, {**good, "stream_options": {"include_usage": True}}, 400, "Extra inputs"),
        (h, {**good, "tools": [WEATHER_OPENAI]}, 400, "tools.0"),
    ]
    try:
        for headers, body, status, fragment in cases:
            body = {k: v for k, v in body.items() if v is not None}
            st, _, out = request("POST", an.port, "/v1/messages", json.dumps(body).encode(), headers)
            err = json.loads(out)
            assert (st, err["type"]) == (status, "error"), (fragment, out)
            assert fragment in err["error"]["message"], (fragment, out)
        ah = {"content-type": "application/json", "api-key": AZURE_KEY}
        chat = json.dumps({"model": AZ_CHAT, "messages": user("x")}).encode()
        path = f"/openai/deployments/d/chat/completions?api-version={AZURE_VERSION}"
        for headers, p, status, fragment in [
            (ah | {"authorization": "Bearer x"}, path, 401, "authorization"),
            (ah, path.replace(AZURE_VERSION, "2020-01-01"), 404, "api-version"),
            (ah, "/v1/chat/completions", 404, "deployments"),
        ]:
            st, _, out = request("POST", az.port, p, chat, headers)
            assert st == status and fragment in json.loads(out)["error"]["message"], (fragment, out)
    finally:
        an.reset()
        az.reset()
