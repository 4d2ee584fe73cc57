"""A mock Anthropic Messages API that checks every request against Anthropic's public API
(POST /v1/messages, x-api-key, anthropic-version, the request body rules) and answers like
Anthropic does: `message` objects, SSE streams in several small writes cut at odd offsets,
and errors in Anthropic's error shape.

A request that breaks a rule gets a 4xx `invalid_request_error` whose message starts with
"mock anthropic:" (so a test sees exactly which check failed).

What the mock answers is chosen by markers in the text of the last user turn:
  [tool]        a tool_use block (for the first tool in `tools`)
  [overloaded]  529 overloaded_error
  [invalid]     400 invalid_request_error
  [cut]         (streams) the stream ends before message_delta / message_stop
  [midstream]   (streams) an `error` event (overloaded_error) after the first text delta
otherwise a text answer. A user turn made of tool_result blocks gets a text answer that
quotes the results.
"""
from __future__ import annotations

import json
import threading

from harness import MockProvider, Recorded, Reply, split_odd

ANTHROPIC_REQUEST_KEYS = {
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
    "container", "mcp_servers", "context_management",
}
BLOCK_TYPES = {"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
               "search_result"}
STREAM_PIECES = ["Bonjour", ", je", " suis", " Claude", " — ravi", " de vous", " aider."]
DELAY = 0.05


class CheckFailed(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def anthropic_error(status: int, kind: str, message: str) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message},
                          "request_id": "req_011CMockErr0000000000000"},
                 headers={"request-id": "req_011CMockErr0000000000000"})


def sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class AnthropicMock(MockProvider):
    def __init__(self, api_key: str):
        super().__init__("anthropic", self.handle)
        self.api_key = api_key
        # The anthropic-version the next requests must carry (a test sets it to the SDK's).
        self.expect_version = "2023-06-01"
        self.reported: list[dict] = []  # usage of every complete answer, in Anthropic's terms
        self.partial: list[dict] = []   # usage of streams that ended before message_delta
        self.failures: list[str] = []
        self.expect_estimated = False
        self._n = 0
        self._lock = threading.Lock()

    def reset(self, expect_version: str = "2023-06-01"):
        with self.lock:
            self.requests.clear()
        self.reported.clear()
        self.partial.clear()
        self.failures.clear()
        self.expect_estimated = False
        self.expect_version = expect_version

    # ------------------------------------------------------------------ checks
    def check(self, req: Recorded) -> dict:
        def need(cond, message, status=400):
            if not cond:
                raise CheckFailed(message, status)

        need(req.method == "POST", f"method {req.method}, want POST", 405)
        need(req.path == "/v1/messages", f"path {req.path!r}, want '/v1/messages'", 404)
        h = req.headers
        need(h.get("x-api-key") == self.api_key,
             f"x-api-key is {'missing' if 'x-api-key' not in h else 'not the provider key'}", 401)
        need("authorization" not in h, "an authorization header reached the provider", 401)
        need("api-key" not in h, "an api-key header reached the provider", 401)
        need(h.get("anthropic-version") == self.expect_version,
             f"anthropic-version {h.get('anthropic-version')!r}, want {self.expect_version!r}")
        need(h.get("content-type", "").startswith("application/json"), "content-type is not JSON")
        need(int(h.get("content-length", "-1")) == len(req.body), "content-length does not match the body")
        need(not [k for k in h if k.startswith("x-llm-gateway")], "gateway routing headers leaked")
        try:
            body = json.loads(req.body)
        except ValueError as e:
            raise CheckFailed(f"body is not JSON: {e}")
        need(isinstance(body, dict), "body is not an object")
        unknown = set(body) - ANTHROPIC_REQUEST_KEYS
        need(not unknown, f"Extra inputs are not permitted: {sorted(unknown)}")
        need(isinstance(body.get("model"), str) and body["model"], "model: Field required")
        mt = body.get("max_tokens")
        need(isinstance(mt, int) and not isinstance(mt, bool) and mt >= 1, "max_tokens: Field required (int >= 1)")
        msgs = body.get("messages")
        need(isinstance(msgs, list) and msgs, "messages: at least one message is required")
        need(msgs[0].get("role") == "user", "messages: first message must use the \"user\" role")
        tool_ids: set[str] = set()
        for i, m in enumerate(msgs):
            need(set(m) <= {"role", "content"}, f"messages.{i}: Extra inputs are not permitted")
            need(m.get("role") in ("user", "assistant"), f"messages.{i}.role: {m.get('role')!r} not allowed")
            if i:
                need(m["role"] != msgs[i - 1]["role"], f"messages: roles must alternate (messages.{i})")
            c = m.get("content")
            if isinstance(c, str):
                need(c != "" or (i == len(msgs) - 1 and m["role"] == "assistant"),
                     f"messages.{i}: text content blocks must be non-empty")
                continue
            need(isinstance(c, list) and c, f"messages.{i}.content: must be a string or non-empty list")
            seen_other = False
            for j, b in enumerate(c):
                t = b.get("type")
                need(t in BLOCK_TYPES, f"messages.{i}.content.{j}.type: {t!r} is not a valid block type")
                if t == "text":
                    need(isinstance(b.get("text"), str) and b["text"], f"messages.{i}.content.{j}: empty text")
                if t == "tool_use":
                    need(m["role"] == "assistant", f"messages.{i}.content.{j}: tool_use in a user turn")
                    need(isinstance(b.get("id"), str) and b["id"], f"messages.{i}.content.{j}.id required")
                    need(isinstance(b.get("input"), dict), f"messages.{i}.content.{j}.input must be an object")
                    tool_ids.add(b["id"])
                if t == "tool_result":
                    need(m["role"] == "user", f"messages.{i}.content.{j}: tool_result in an assistant turn")
                    need(b.get("tool_use_id") in tool_ids,
                         f"messages.{i}.content.{j}: unexpected `tool_use_id` {b.get('tool_use_id')!r}")
                    need(not seen_other, f"messages.{i}: tool_result blocks must come first")
                else:
                    seen_other = True
        system = body.get("system")
        if system is not None:
            ok = isinstance(system, str) or (isinstance(system, list) and all(
                isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system))
            need(ok, "system: must be a string or a list of text blocks")
        for j, t in enumerate(body.get("tools") or []):
            need(isinstance(t.get("name"), str) and t["name"], f"tools.{j}.name: Field required")
            need(isinstance(t.get("input_schema"), dict) and t["input_schema"].get("type") == "object",
                 f"tools.{j}.input_schema: Field required (a JSON schema of type object)")
            need("function" not in t and t.get("type") in (None, "custom"),
                 f"tools.{j}: OpenAI-shaped tool")
        tc = body.get("tool_choice")
        if tc is not None:
            need(isinstance(tc, dict) and tc.get("type") in ("auto", "any", "tool", "none"),
                 f"tool_choice: invalid {tc!r}")
        if "stream" in body:
            need(isinstance(body["stream"], bool), "stream: must be a boolean")
        return body

    # ------------------------------------------------------------------ answers
    def handle(self, req: Recorded) -> Reply:
        try:
            body = self.check(req)
        except CheckFailed as e:
            self.failures.append(str(e))
            kind = {401: "authentication_error", 404: "not_found_error"}.get(e.status, "invalid_request_error")
            return anthropic_error(e.status, kind, f"mock anthropic: {e}")
        with self._lock:
            self._n += 1
            n = self._n
        last = body["messages"][-1]
        content = last["content"]
        text = content if isinstance(content, str) else " ".join(
            b.get("text", "") for b in content if b.get("type") == "text")
        results = [] if isinstance(content, str) else [b for b in content if b.get("type") == "tool_result"]
        if "[overloaded]" in text:
            return anthropic_error(529, "overloaded_error", "Overloaded")
        if "[invalid]" in text:
            return anthropic_error(400, "invalid_request_error", "messages.0.content: mock rejects this prompt")
        if "[silent]" in text and body.get("stream"):
            # A stream that ends before message_start: no usage at all.
            return Reply(200, headers={"content-type": "text/event-stream; charset=utf-8"},
                         chunks=[(0.0, sse("ping", {"type": "ping"}))])
        usage = {"input_tokens": 20 + n, "output_tokens": 10 + 2 * n,
                 "cache_read_input_tokens": 100 + n, "cache_creation_input_tokens": 3 + n}
        tools = body.get("tools") or []
        if "[tool]" in text and tools:
            tool = tools[0]
            blocks = [{"type": "text", "text": "Let me look that up."},
                      {"type": "tool_use", "id": f"toolu_01Mock{n:04d}", "name": tool["name"],
                       "input": {"city": "Paris", "unit": "celsius"}}]
            stop = "tool_use"
        elif results:
            quoted = "; ".join(str(r.get("content")) for r in results)
            blocks = [{"type": "text", "text": f"The tool said: {quoted}"}]
            stop = "end_turn"
        else:
            blocks = [{"type": "text", "text": "".join(STREAM_PIECES)}]
            stop = "end_turn"
        cut = "[cut]" in text and bool(body.get("stream"))
        midstream = "[midstream]" in text and bool(body.get("stream"))
        # A stream that ends early never reports its final usage (message_delta): only
        # message_start's, whose output_tokens is a placeholder.
        (self.partial if cut or midstream else self.reported).append(usage)
        msg_id = f"msg_01Mock{n:016d}"
        if body.get("stream"):
            return Reply(200, headers={"content-type": "text/event-stream; charset=utf-8",
                                       "request-id": f"req_{n}"},
                         chunks=split_odd(self.stream_events(msg_id, body["model"], blocks, stop, usage,
                                                             cut=cut, midstream=midstream), DELAY))
        return Reply(200, {
            "id": msg_id, "type": "message", "role": "assistant", "model": body["model"],
            "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {**usage, "cache_creation": {"ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
                                                  "ephemeral_1h_input_tokens": 0},
                      "service_tier": "standard"},
        }, headers={"request-id": f"req_{n}"})

    def stream_events(self, msg_id, model, blocks, stop, usage, cut=False, midstream=False) -> list[bytes]:
        start_usage = {"input_tokens": usage["input_tokens"], "output_tokens": 1,
                       "cache_read_input_tokens": usage["cache_read_input_tokens"],
                       "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                       "service_tier": "standard"}
        ev = [sse("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}}),
              sse("ping", {"type": "ping"})]
        for i, b in enumerate(blocks):
            if b["type"] == "text":
                ev.append(sse("content_block_start", {"type": "content_block_start", "index": i,
                                                      "content_block": {"type": "text", "text": ""}}))
                text = b["text"]
                pieces = STREAM_PIECES if text == "".join(STREAM_PIECES) else [text[:5], text[5:]]
                for p in pieces:
                    if p:
                        ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": i,
                                                              "delta": {"type": "text_delta", "text": p}}))
                    if midstream:
                        ev.append(sse("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                           "message": "Overloaded"}}))
                        return ev
            else:
                ev.append(sse("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                    "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}))
                args = json.dumps(b["input"])
                for k in range(0, len(args), 9):
                    ev.append(sse("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                        "type": "input_json_delta", "partial_json": args[k:k + 9]}}))
            ev.append(sse("content_block_stop", {"type": "content_block_stop", "index": i}))
            if i == 0:
                ev.append(sse("ping", {"type": "ping"}))
        if cut:
            return ev
        # The API's message_delta usage is cumulative; newer versions repeat the input and
        # cache counts there too. Both forms occur (alternating by message number).
        delta_usage = {"output_tokens": usage["output_tokens"]}
        if int(msg_id[-4:]) % 2 == 0:
            delta_usage = {"input_tokens": usage["input_tokens"],
                           "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                           "cache_read_input_tokens": usage["cache_read_input_tokens"], **delta_usage}
        ev.append(sse("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": stop, "stop_sequence": None},
                                        "usage": delta_usage}))
        ev.append(sse("message_stop", {"type": "message_stop"}))
        return ev

    # ------------------------------------------------------------------ expectations
    def expected_tokens(self) -> dict[str, int]:
        """What the gateway must count for every answer so far (provider-neutral terms)."""
        out = {"input": 0, "output": 0, "cached_input": 0, "cache_creation_input": 0}
        for u in self.reported:
            out["input"] += u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
            out["output"] += u["output_tokens"]
            out["cached_input"] += u["cache_read_input_tokens"]
            out["cache_creation_input"] += u["cache_creation_input_tokens"]
        return out
