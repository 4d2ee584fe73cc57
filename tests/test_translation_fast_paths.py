"""The usual requests and answers (text turns) are translated without serde, in one walk
(src/translate/chat_request.rs, messages_request.rs, messages_response.rs, chat_response.rs):
the same request or answer with one key escaped, which only serde reads, must give the same
bytes; requests the fast translators must leave to serde get serde's errors; long texts with
every kind of escape and large bodies are translated intact, both ways. OpenAI ⇄ Anthropic,
through the real Envoy (tests/fixtures_openai_anthropic_azure.py)."""
import json
import re

from fixtures_openai_anthropic_azure import ANTHROPIC_KEY, CLAUDE, GPT, OPENAI_KEY, ant, oai, user
from fixtures_openai_anthropic_azure import an, gw, mocks, oa  # noqa: F401 (fixtures, found by name)
from harness import Envoy, MockProvider, Reply, request

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


# =========================================================== OpenAI clients -> Anthropic

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
