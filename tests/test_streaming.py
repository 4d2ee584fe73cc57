"""Streaming through the real filter: pass-through without buffering, exact usage with and
without include_usage, estimates when usage never arrives, latency metrics, errors."""
import json
import re
import threading
import time

import pytest

from harness import Envoy, MockProvider, Reply, openai_sse, split_odd, stream_request

KEY = "sk-stream-test-key"
PIECES = ["Hel", "lo", ", wor", "ld", "! How", " can I", " help?"]
USAGE = (17, 9)
DELAY = 0.12


class StreamingMock(MockProvider):
    """Streams like OpenAI: the usage chunk only when the request asks for it."""

    def __init__(self, send_usage: bool = True, tail: list[bytes] | None = None, status: int = 200):
        super().__init__("stream", self.handle)
        self.send_usage = send_usage
        self.tail = tail
        self.status = status
        self.finished_at: list[float] = []

    def render(self, model: str, include_usage: bool) -> bytes:
        return b"".join(self.events(model, include_usage))

    def events(self, model, include_usage):
        ev = openai_sse(model, PIECES, USAGE if self.send_usage else None, include_usage)
        if self.tail is not None:  # replace the ending ([DONE] and maybe usage) with `tail`
            ev = ev[:1 + len(PIECES)] + self.tail
        return ev

    def handle(self, req):
        body = req.json
        if not body.get("stream"):
            return Reply(400, {"error": {"message": "mock expects stream", "type": "invalid_request_error"}})
        if self.status != 200:
            return Reply(self.status, {"error": {"message": "Rate limit reached for requests",
                                                 "type": "requests", "code": "rate_limit_exceeded"}})
        include = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = split_odd(self.events(body["model"], include), DELAY)
        chunks.append((0.0, b""))
        mock = self

        class Timed(list):
            def __iter__(self):
                yield from list.__iter__(self)
                mock.finished_at.append(time.time())
        return Reply(200, headers={"content-type": "text/event-stream"}, chunks=Timed(chunks))


def gateway(mock):
    cfg = {"providers": [{"name": "openai", "type": "openai", "cluster": "up", "api_key_env": "OPENAI_API_KEY"}],
           "models": [{"match": "*", "provider": "openai"}]}
    return Envoy(cfg, {"up": mock.port}, env={"OPENAI_API_KEY": KEY})


def chat(include_usage=None, model="gpt-4o-mini"):
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Say hello to the world"}]}
    if include_usage is not None:
        body["stream_options"] = {"include_usage": include_usage}
    return body


@pytest.fixture
def smock():
    m = StreamingMock().start()
    yield m
    m.stop()


def test_stream_without_include_usage_is_byte_identical_and_counted_exactly(smock):
    with gateway(smock) as gw:
        status, headers, got = stream_request(gw.port, chat())
        assert status == 200
        received = b"".join(d for _, d in got)
        # The provider was asked for usage on the client's behalf ...
        assert smock.requests[0].json["stream_options"] == {"include_usage": True}
        # ... and the client sees exactly the stream it would have had without it.
        assert received == smock.render("gpt-4o-mini", include_usage=False)
        assert b'"usage"' not in received
        # First chunk reached the client before the provider had finished.
        assert got[0][0] < smock.finished_at[0] - DELAY
        assert len(got) > 3
        assert gw.wait_metric("llm_gateway_tokens_total", USAGE[0], provider="openai", type="input",
                              estimated="false") == USAGE[0]
        assert gw.metric("llm_gateway_tokens_total", type="output", estimated="false") == USAGE[1]
        assert gw.metric("llm_gateway_tokens_total", estimated="true") == 0


@pytest.mark.parametrize("include_usage", [True, False])
def test_client_stream_options_are_respected(smock, include_usage):
    with gateway(smock) as gw:
        status, _, got = stream_request(gw.port, chat(include_usage=include_usage))
        assert status == 200
        received = b"".join(d for _, d in got)
        assert received == smock.render("gpt-4o-mini", include_usage=include_usage)
        assert smock.requests[0].json["stream_options"]["include_usage"] is True
        assert gw.wait_metric("llm_gateway_tokens_total", USAGE[1], type="output", estimated="false") == USAGE[1]


def test_latency_histograms(smock):
    with gateway(smock) as gw:
        for _ in range(2):
            assert stream_request(gw.port, chat())[0] == 200
        labels = dict(provider="openai", model="gpt-4o-mini")
        assert gw.wait_metric("gen_ai_server_time_to_first_token_ms_count", 2, **labels) == 2
        assert gw.wait_metric("gen_ai_server_time_per_output_token_us_count", 2, **labels) == 2
        assert gw.wait_metric("gen_ai_server_request_duration_ms_count", 2, **labels) == 2
        # TTFT is at least one provider delay (the first content chunk comes after it);
        # the whole stream takes several.
        ttft_sum = gw.metric("gen_ai_server_time_to_first_token_ms_sum", **labels)
        dur_sum = gw.metric("gen_ai_server_request_duration_ms_sum", **labels)
        assert ttft_sum >= 2 * DELAY * 1000 * 0.9
        assert dur_sum > ttft_sum
        assert gw.wait_metric("gen_ai_client_token_usage_count", 2, token_type="input", **labels) == 2


def test_usage_never_sent_is_estimated(tmp_path):
    m = StreamingMock(send_usage=False).start()
    try:
        with gateway(m) as gw:
            status, _, got = stream_request(gw.port, chat())
            assert status == 200
            assert b"".join(d for _, d in got) == m.render("gpt-4o-mini", include_usage=False)
            est_out = gw.wait_metric("llm_gateway_tokens_total", 1, type="output", estimated="true")
            deadline = time.time() + 5
            while est_out == 0 and time.time() < deadline:
                time.sleep(0.2)
                est_out = gw.metric("llm_gateway_tokens_total", type="output", estimated="true")
            est_in = gw.metric("llm_gateway_tokens_total", type="input", estimated="true")
            text = "".join(PIECES)
            assert len(text) / 4 <= est_out <= len(text)
            assert est_in >= len("Say hello to the world") / 4
            assert gw.metric("llm_gateway_tokens_total", estimated="false") == 0
    finally:
        m.stop()


# Chunks of the shapes the gateway reads itself (src/stream_chunk.rs) and, for comparison,
# the same chunks with the `choices` key escaped, which only its serde reader takes: both
# readers must find the same text (the output estimate) and the same first content.
VARIED_DELTAS = [
    {"role": "assistant", "content": ""},
    {"reasoning_content": "Let me think: \"quoted\"\n"},
    {"reasoning_content": "then", "content": "Caf\u00e9 \u4e16\u754c"},
    {"content": " a longer answer with several words in it", "refusal": None},
    {"content": "\ttabbed\\ and slashes /"},
    {"reasoning": " weighing it up once more, at some length and with care,", "content": " so"},
    {},
]


def varied_text() -> str:
    """All the text of VARIED_DELTAS the usage estimate counts (choice 0)."""
    return "".join(d.get("reasoning_content", "") + d.get("reasoning", "") + (d.get("content") or "")
                   for d in VARIED_DELTAS)


class ScriptedStreamMock(MockProvider):
    """Streams `events(model)` (model as the request names it) in small writes cut at odd
    offsets."""

    def __init__(self, name: str):
        super().__init__(name, self.handle)

    def events(self, model: str) -> list[bytes]:
        raise NotImplementedError

    def handle(self, req):
        chunks = split_odd(self.events(req.json["model"]), 0.01)
        chunks.append((0.0, b""))
        return Reply(200, headers={"content-type": "text/event-stream"}, chunks=chunks)


class VariedChunksMock(ScriptedStreamMock):
    """Streams VARIED_DELTAS (two choices in one chunk among them) without usage; with
    model "escaped", every `choices` key is written `"\u0063hoices"`."""

    def __init__(self):
        super().__init__("varied")

    def events(self, model: str) -> list[bytes]:
        base = {"id": "chatcmpl-v", "object": "chat.completion.chunk", "created": 1767225600,
                "model": model, "system_fingerprint": None}
        chunks = [{**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
                  for d in VARIED_DELTAS]
        chunks.insert(3, {**base, "choices": [{"index": 0, "delta": {"content": "first"}},
                                              {"index": 1, "delta": {"content": "second"}}]})
        out = []
        for c in chunks:
            text = json.dumps(c, separators=(",", ":"))
            # json.dumps escapes non-ASCII; keep the literal characters in one variant of it.
            text = text.replace("\\u00e9", "é")
            if model == "escaped":
                text = text.replace('"choices"', '"\\u0063hoices"')
            out.append(b"data: " + text.encode() + b"\n\n")
        return out + [b"data: [DONE]\n\n"]


def output_estimate(gw, model: str) -> float:
    """The estimated output tokens recorded for `model` once the stream has ended."""
    deadline = time.time() + 10
    value = gw.metric("llm_gateway_tokens_total", model=model, type="output", estimated="true")
    while value == 0 and time.time() < deadline:
        time.sleep(0.1)
        value = gw.metric("llm_gateway_tokens_total", model=model, type="output", estimated="true")
    return value


def test_fast_and_serde_chunk_readers_find_the_same_text():
    m = VariedChunksMock().start()
    try:
        with gateway(m) as gw:
            estimates = {}
            for model in ("plain", "escaped"):
                status, _, got = stream_request(gw.port, chat(model=model))
                assert status == 200
                assert b"".join(d for _, d in got) == b"".join(m.events(model))
                estimates[model] = output_estimate(gw, model)
                assert gw.wait_metric("gen_ai_server_time_to_first_token_ms_count", 1, model=model) == 1
            text = varied_text()
            assert estimates["plain"] == estimates["escaped"]
            assert len(text) / 6 <= estimates["plain"] <= len(text)
    finally:
        m.stop()


def anthropic_stream(gw, model: str, content: str = "Say hello to the world") -> str:
    """An Anthropic client's streamed request through the gateway: the body it receives."""
    body = {"model": model, "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": content}]}
    status, _, got = stream_request(gw.port, body, {"anthropic-version": "2023-06-01"}, path="/v1/messages")
    assert status == 200
    return b"".join(d for _, d in got).decode()


def sse_data(text: str) -> list[dict]:
    """The JSON data of each event of an SSE body."""
    return [json.loads(block.split("data: ", 1)[1]) for block in text.split("\n\n") if "data: " in block]


def test_fast_and_serde_chunk_readers_translate_to_anthropic_the_same():
    """An Anthropic client streaming from an OpenAI provider: the translator reads the usual
    content chunk without serde and writes its `text_delta` event itself
    (`stream_chunk::text_chunk`), and the usage observer takes the translator's read instead
    of walking the chunk again; with model "escaped" every chunk goes through serde. The
    Anthropic events must be the same, with all the text of choice 0 in order, and so must
    the output estimate (which counts the `reasoning` text the translator does not send)."""
    m = VariedChunksMock().start()
    try:
        with gateway(m) as gw:
            answers, estimates = {}, {}
            for model in ("plain", "escaped"):
                answers[model] = anthropic_stream(gw, model).replace(f'"model":"{model}"', '"model":"m"')
                assert gw.wait_metric("gen_ai_server_time_to_first_token_ms_count", 1, model=model) == 1
                estimates[model] = output_estimate(gw, model)
            assert answers["plain"] == answers["escaped"]
            assert estimates["plain"] == estimates["escaped"]
            assert len(varied_text()) / 6 <= estimates["plain"] <= len(varied_text())
            events = sse_data(answers["plain"])
            deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
            contents = [d.get("content") or "" for d in VARIED_DELTAS]
            assert "".join(d.get("text", "") for d in deltas) == "".join(contents[:3]) + "first" + "".join(contents[3:])
            assert "".join(d.get("thinking", "") for d in deltas) == "".join(
                d.get("reasoning_content", "") for d in VARIED_DELTAS)
            assert events[0]["message"]["id"] == "chatcmpl-v" and events[-1]["type"] == "message_stop"
    finally:
        m.stop()


# What the chunk carrying "B" holds besides its text, by the request's model (`<variant>-<i>`):
# members serde refuses in the chunk types the translator reads (`ChatCompletionChunk`,
# `ChunkChoice`, `ChunkDelta`), and so drops the chunk.
ODD_CHUNKS = [
    # (after the chunk's choices, in its delta)
    (',"model":"other"', ""),         # a member repeated after `choices`
    (',"x":1e400', ""),               # an unknown member kept as a `Value`: out of range
    (',"x":{"y":[-1e400]}', ""),
    ("", ',"x":"\\ud800"'),           # a lone surrogate in the delta's `rest`
    ("", ',"role":"\\udc00"'),        # and in a `String`
]


class OddMiddleChunkMock(ScriptedStreamMock):
    """Streams three content chunks with the same members before `choices` (so that the
    translator's fast reader takes the later ones up at `choices`); the second holds
    `ODD_CHUNKS[i]` for model `<variant>-<i>`. With variant "escaped" every `choices` key is
    escaped, so that every chunk goes to serde."""

    def __init__(self):
        super().__init__("odd-middle")

    def events(self, model: str) -> list[bytes]:
        variant, i = model.rsplit("-", 1)
        tail, delta_extra = ODD_CHUNKS[int(i)]
        head = f'{{"id":"chatcmpl-r","object":"chat.completion.chunk","created":1767225600,"model":"{model}",'
        key = '"\\u0063hoices"' if variant == "escaped" else '"choices"'
        out = []
        for text, odd in (("A", False), ("B", True), ("C", False)):
            extra = delta_extra if odd else ""
            choices = f'[{{"index":0,"delta":{{"content":"{text}"{extra}}},"finish_reason":null}}]'
            out.append(f"data: {head}{key}:{choices}{tail if odd else ''}}}\n\n".encode())
        return out + [b"data: [DONE]\n\n"]


def test_chunks_serde_refuses_are_refused_by_the_fast_reader_too():
    """The translator's fast reader refuses what serde refuses in a chunk, so the chunk carrying
    "B" is dropped either way: a member repeated after `choices` (a chunk taken up at
    `choices` remembers which members its skipped start held), and unknown members that the
    chunk types keep as `Value`s (a number out of range, a lone surrogate), or a `String`
    with a lone surrogate."""
    m = OddMiddleChunkMock().start()
    try:
        with gateway(m) as gw:
            for i in range(len(ODD_CHUNKS)):
                texts = {}
                for variant in ("plain", "escaped"):
                    events = sse_data(anthropic_stream(gw, f"{variant}-{i}", "Say hello"))
                    texts[variant] = "".join(e["delta"].get("text", "") for e in events
                                             if e["type"] == "content_block_delta")
                    assert events[-1]["type"] == "message_stop"
                assert texts == {"plain": "AC", "escaped": "AC"}, ODD_CHUNKS[i]
    finally:
        m.stop()


class FinishAndUsageMock(ScriptedStreamMock):
    """Streams as OpenAI does with include_usage, the answer cut by `max_tokens` (finish
    reason "length") and its usage (with cached tokens) in a last chunk with empty choices;
    with model "escaped", every `choices` key is escaped, so that every chunk goes to serde."""

    CACHED = 5

    def __init__(self):
        super().__init__("finish-usage")

    def events(self, model: str) -> list[bytes]:
        out = openai_sse(model, PIECES, USAGE, True, finish_reason="length")
        out = [e.replace(b'"cached_tokens":0', b'"cached_tokens":%d' % self.CACHED) for e in out]
        if model == "escaped":
            out = [e.replace(b'"choices"', b'"\\u0063hoices"') for e in out]
        return out


def test_finish_and_usage_chunks_translate_to_anthropic_as_with_serde():
    """The finish chunk and the usage chunk are read without serde, by the translator (stop
    reason, usage of `message_delta`) and by the usage observer (the gateway's token metrics);
    with every chunk read by serde ("escaped") the client gets the same events and the metrics
    the same counts."""
    m = FinishAndUsageMock().start()
    try:
        with gateway(m) as gw:
            answers = {}
            for model in ("plain", "escaped"):
                answers[model] = anthropic_stream(gw, model).replace(f'"model":"{model}"', '"model":"m"')
                for kind, want in (("input", USAGE[0]), ("output", USAGE[1]), ("cached_input", m.CACHED)):
                    assert gw.wait_metric("llm_gateway_tokens_total", want, model=model, type=kind,
                                          estimated="false") == want, (model, kind)
                assert gw.metric("llm_gateway_tokens_total", model=model, estimated="true") == 0
            assert answers["plain"] == answers["escaped"]
            events = sse_data(answers["plain"])
            end = [e for e in events if e["type"] == "message_delta"]
            assert len(end) == 1 and end[0]["delta"]["stop_reason"] == "max_tokens"
            assert end[0]["usage"]["output_tokens"] == USAGE[1]
            assert end[0]["usage"]["cache_read_input_tokens"] == m.CACHED
            assert end[0]["usage"]["input_tokens"] == USAGE[0] - m.CACHED
            text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
            assert text == "".join(PIECES) and events[-1]["type"] == "message_stop"
    finally:
        m.stop()


def test_an_openai_answer_is_translated_for_an_anthropic_client_whatever_its_unread_members():
    """The translation reads only id, the first choice's message and finish reason, and usage:
    other members of unexpected types no longer fail it; a member it reads with the wrong type
    still gets a 502 naming where it is."""
    answers = {
        "lenient": {"id": "chatcmpl-l", "object": "chat.completion", "created": "2026-11-24T06:00:00Z",
                    "model": {"name": "gpt"}, "service_tier": "default",
                    "choices": [{"index": "0", "message": {"role": "assistant", "content": "Hi there",
                                                           "annotations": []},
                                 "logprobs": {"content": []}, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}},
        "broken": {"id": "chatcmpl-b", "choices": [{"message": {"content": 5}, "finish_reason": "stop"}]},
    }
    m = MockProvider("answers", lambda req: Reply(200, answers[req.json["model"]])).start()
    try:
        with gateway(m) as gw:
            headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
            body = {"model": "lenient", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
            status, _, raw = gw.post("/v1/messages", body, headers=headers)
            assert status == 200, raw
            msg = json.loads(raw)
            assert (msg["id"], msg["content"], msg["stop_reason"]) == (
                "chatcmpl-l", [{"type": "text", "text": "Hi there"}], "max_tokens")
            assert (msg["usage"]["input_tokens"], msg["usage"]["output_tokens"]) == (12, 3)

            status, _, raw = gw.post("/v1/messages", {**body, "model": "broken"}, headers=headers)
            assert status == 502, raw
            err = json.loads(raw)
            assert err["type"] == "error" and err["error"]["type"] == "api_error", err
            assert "choices[0].message.content" in err["error"]["message"], err
    finally:
        m.stop()


ANTHROPIC_DELTAS = [
    ("thinking_delta", "thinking", "Let me think: \"quoted\"\n"),
    ("text_delta", "text", "Caf\u00e9 \u4e16\u754c"),
    ("text_delta", "text", "\ttabbed\\ and slashes /"),
    ("text_delta", "text", " a longer answer with several words in it"),
]


class AnthropicDeltasMock(ScriptedStreamMock):
    """Streams an Anthropic answer of ANTHROPIC_DELTAS with no output count (so the gateway
    estimates it); with model "escaped", every event's `type` key is written `"\u0074ype"`,
    which only the serde reader takes."""

    def __init__(self):
        super().__init__("anthropic-deltas")

    def events(self, model: str) -> list[bytes]:
        def ev(name: str, data: dict) -> bytes:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            if model == "escaped":
                text = text.replace('{"type":', '{"\\u0074ype":', 1)
            return f"event: {name}\ndata: {text}\n\n".encode()

        out = [ev("message_start", {"type": "message_start", "message": {
            "id": "msg_deltas", "type": "message", "role": "assistant", "model": "claude-x", "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}})]
        for kind, field, text in ANTHROPIC_DELTAS:
            out.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": kind, field: text}}))
        out.append(ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}}))
        out.append(ev("message_stop", {"type": "message_stop"}))
        return out


def test_fast_and_serde_anthropic_delta_readers_translate_the_same():
    m = AnthropicDeltasMock().start()
    cfg = {"providers": [{"name": "claude", "type": "anthropic", "cluster": "up", "api_key_env": "ANTHROPIC_API_KEY"}],
           "models": [{"match": "*", "provider": "claude"}]}
    try:
        with Envoy(cfg, {"up": m.port}, env={"ANTHROPIC_API_KEY": KEY}) as gw:
            answers, estimates = {}, {}
            for model in ("plain", "escaped"):
                status, _, got = stream_request(gw.port, chat(model=model))
                assert status == 200
                text = b"".join(d for _, d in got).decode()
                # The same chunks, but for the model each names and the second it was made in.
                answers[model] = re.sub(r'"created":\d+', '"created":0', text.replace(f'"model":"{model}"', '"model":"m"'))
                estimates[model] = gw.wait_metric("llm_gateway_tokens_total", 1, model=model,
                                                  type="output", estimated="true")
                assert gw.wait_metric("gen_ai_server_time_to_first_token_ms_count", 1, model=model) == 1
            assert answers["plain"] == answers["escaped"]
            deltas = [json.loads(line[len("data: "):])["choices"][0]["delta"]
                      for line in answers["plain"].split("\n\n") if line.startswith("data: {")]
            assert "".join(d.get("reasoning_content", "") for d in deltas) == ANTHROPIC_DELTAS[0][2]
            assert "".join(d.get("content") or "" for d in deltas) == "".join(t for _, _, t in ANTHROPIC_DELTAS[1:])
            assert estimates["plain"] == estimates["escaped"] > 0
    finally:
        m.stop()


# What the delta event carrying "B" holds besides its text, by the request's model
# (`<variant>-<i>`): unknown members that the translator's `StreamEvent` and `StreamDelta`
# keep as `Value`s and serde refuses, so that it drops the event.
ODD_DELTAS = [
    # (in the event, in its delta)
    (',"x":1e400', ""),
    ("", ',"x":[1,"\\ud800"]'),
]


class OddMiddleDeltaMock(ScriptedStreamMock):
    """Streams an Anthropic answer of three text deltas; the second holds `ODD_DELTAS[i]` for
    model `<variant>-<i>`. With variant "escaped" every event's `type` key is escaped, so
    that every event goes to serde."""

    def __init__(self):
        super().__init__("odd-delta")

    def events(self, model: str) -> list[bytes]:
        variant, i = model.rsplit("-", 1)
        event_extra, delta_extra = ODD_DELTAS[int(i)]
        kind = '"\\u0074ype"' if variant == "escaped" else '"type"'

        def ev(name: str, rest: str) -> bytes:
            return f'event: {name}\ndata: {{{kind}:"{name}"{rest}}}\n\n'.encode()

        out = [ev("message_start", ',"message":{"id":"msg_odd","type":"message","role":"assistant",'
                                   '"model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,'
                                   '"usage":{"input_tokens":5,"output_tokens":1}}')]
        for text, odd in (("A", False), ("B", True), ("C", False)):
            delta = f'{{"type":"text_delta","text":"{text}"{delta_extra if odd else ""}}}'
            out.append(ev("content_block_delta", f',"index":0,"delta":{delta}{event_extra if odd else ""}'))
        out.append(ev("message_delta", ',"delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}'))
        return out + [ev("message_stop", "")]


def test_anthropic_deltas_serde_refuses_are_refused_by_the_fast_reader_too():
    """The fast delta reader refuses the unknown members serde refuses in the translator's
    event types (a number out of range, a lone surrogate), so the event carrying "B" is
    dropped whether the fast reader or serde reads the stream."""
    m = OddMiddleDeltaMock().start()
    cfg = {"providers": [{"name": "claude", "type": "anthropic", "cluster": "up", "api_key_env": "ANTHROPIC_API_KEY"}],
           "models": [{"match": "*", "provider": "claude"}]}
    try:
        with Envoy(cfg, {"up": m.port}, env={"ANTHROPIC_API_KEY": KEY}) as gw:
            for i in range(len(ODD_DELTAS)):
                texts = {}
                for variant in ("plain", "escaped"):
                    status, _, got = stream_request(gw.port, chat(model=f"{variant}-{i}"))
                    assert status == 200
                    body = b"".join(d for _, d in got).decode()
                    chunks = [json.loads(line[len("data: "):]) for line in body.split("\n\n")
                              if line.startswith("data: {")]
                    texts[variant] = "".join(c["choices"][0]["delta"].get("content") or ""
                                             for c in chunks if c.get("choices"))
                    assert body.rstrip().endswith("data: [DONE]"), body
                assert texts == {"plain": "AC", "escaped": "AC"}, ODD_DELTAS[i]
    finally:
        m.stop()


def test_client_disconnect_mid_stream_still_records_estimated_usage(smock):
    with gateway(smock) as gw:
        status, _, got = stream_request(gw.port, chat(), read_chunks=1)
        assert status == 200
        deadline = time.time() + 10
        value = 0
        while value == 0 and time.time() < deadline:
            time.sleep(0.2)
            value = gw.metric("llm_gateway_tokens_total", type="input", estimated="true")
        assert value > 0
        assert gw.metric("llm_gateway_requests_total", provider="openai") == 1


def test_mid_stream_error_event_is_passed_through_and_counted():
    err = b'data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}\n\n'
    m = StreamingMock(tail=[err]).start()
    try:
        with gateway(m) as gw:
            status, _, got = stream_request(gw.port, chat())
            received = b"".join(d for _, d in got)
            assert status == 200
            assert received.endswith(err)
            assert gw.wait_metric("llm_gateway_upstream_errors_total", 1, provider="openai",
                                  type="server_error") == 1
    finally:
        m.stop()


def test_non_200_before_streaming_is_passed_through_and_counted():
    m = StreamingMock(status=429).start()
    try:
        with gateway(m) as gw:
            status, _, got = stream_request(gw.port, chat())
            assert status == 429
            assert json.loads(b"".join(d for _, d in got))["error"]["code"] == "rate_limit_exceeded"
            assert gw.wait_metric("llm_gateway_upstream_errors_total", 1, provider="openai",
                                  type="rate_limit_exceeded") == 1
            assert gw.metric("llm_gateway_requests_total", status_class="4xx") == 1
    finally:
        m.stop()


@pytest.mark.parametrize("include_usage", [None, True])
def test_openai_sdk_streams_every_delta(smock, include_usage):
    from openai import OpenAI
    with gateway(smock) as gw:
        client = OpenAI(base_url=f"http://127.0.0.1:{gw.port}/v1", api_key="sk-client", max_retries=0)
        kwargs = {"stream_options": {"include_usage": True}} if include_usage else {}
        stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                messages=[{"role": "user", "content": "hi"}], **kwargs)
        deltas, usage = [], None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
        assert deltas == PIECES
        if include_usage:
            assert (usage.prompt_tokens, usage.completion_tokens) == USAGE
        else:
            assert usage is None
        assert gw.wait_metric("llm_gateway_tokens_total", USAGE[0], type="input", estimated="false") == USAGE[0]
