"""Mock OpenAI and Azure OpenAI servers that check what the gateway sends them.

`OpenAIMock` (flavour "openai"): POST /v1/chat/completions and /v1/embeddings with
`authorization: Bearer <key>`. `OpenAIMock` (flavour "azure"): POST
/openai/deployments/{deployment}/chat/completions|embeddings?api-version=… with `api-key: <key>`
and no `authorization`. Both reject Anthropic leftovers (x-api-key, anthropic-version,
Anthropic-only body members) and answer like OpenAI: usage in JSON bodies, and in streams
only when `stream_options.include_usage` is set.

A failed check is a 4xx OpenAI-format error whose message starts with "mock openai:".

Markers in the last user/tool message choose the answer:
  [tool]       a tool call for the first tool in `tools`
  [ratelimit]  429 rate_limit_exceeded
  [midstream]  (streams) an error chunk after the first text delta, no usage, no [DONE]
otherwise a text answer; after a `tool` message, a text quoting the tool results.
"""
from __future__ import annotations

import json
import re
import threading

from harness import MockProvider, Recorded, Reply, openai_sse, split_odd
from mock_anthropic import CheckFailed

PIECES = ["Hel", "lo", " from", " the", " Open", "AI", " mock."]
DELAY = 0.05
OPENAI_CHAT_KEYS = {
    "model", "messages", "max_tokens", "max_completion_tokens", "stop", "temperature", "top_p", "n",
    "stream", "stream_options", "tools", "tool_choice", "parallel_tool_calls", "response_format", "user",
    "seed", "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias",
    "reasoning_effort", "metadata", "store", "service_tier", "modalities", "prediction", "audio",
}
AZURE_PATH = re.compile(r"^/openai/deployments/([^/?]+)/(chat/completions|embeddings)\?api-version=([^&]+)$")


def openai_error(status: int, message: str, kind: str = "invalid_request_error", code=None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})


class OpenAIMock(MockProvider):
    def __init__(self, api_key: str, flavour: str = "openai", api_version: str | None = None):
        super().__init__(flavour, self.handle)
        self.api_key = api_key
        self.flavour = flavour
        self.api_version = api_version
        self.deployments: list[str] = []
        self.reported: list[dict] = []
        self.failures: list[str] = []
        self.expect_estimated = False
        self._n = 0
        self._count_lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.requests.clear()
        self.deployments.clear()
        self.reported.clear()
        self.failures.clear()
        self.expect_estimated = False

    # ------------------------------------------------------------------ checks
    def check(self, req: Recorded) -> tuple[str, dict]:
        def need(cond, message, status=400):
            if not cond:
                raise CheckFailed(message, status)

        h = req.headers
        need(req.method == "POST", f"method {req.method}", 405)
        if self.flavour == "azure":
            m = AZURE_PATH.match(req.path)
            need(m is not None, f"path {req.path!r} is not /openai/deployments/{{deployment}}/…?api-version=…", 404)
            deployment, op, version = m.groups()
            need(version == self.api_version, f"api-version {version!r}, want {self.api_version!r}", 404)
            need(h.get("api-key") == self.api_key,
                 f"api-key is {'missing' if 'api-key' not in h else 'not the provider key'}", 401)
            need("authorization" not in h, "an authorization header reached Azure", 401)
            self.deployments.append(deployment)
        else:
            need(req.path in ("/v1/chat/completions", "/v1/embeddings"), f"path {req.path!r}", 404)
            op = req.path[len("/v1/"):]
            need(h.get("authorization") == f"Bearer {self.api_key}",
                 f"authorization is {'missing' if 'authorization' not in h else 'not the provider key'}", 401)
            need("api-key" not in h, "an api-key header reached the provider", 401)
        need("x-api-key" not in h, "an x-api-key header reached the provider", 401)
        need("anthropic-version" not in h and "anthropic-beta" not in h, "anthropic-* headers leaked")
        need(not [k for k in h if k.startswith("x-llm-gateway")], "gateway routing headers leaked")
        need(int(h.get("content-length", "-1")) == len(req.body), "content-length does not match the body")
        try:
            body = json.loads(req.body)
        except ValueError as e:
            raise CheckFailed(f"body is not JSON: {e}")
        need(isinstance(body.get("model"), str) and body["model"], "you must provide a model parameter")
        if op == "embeddings":
            need("input" in body, "input is required")
            return op, body
        unknown = set(body) - OPENAI_CHAT_KEYS
        need(not unknown, f"Unrecognized request arguments supplied: {', '.join(sorted(unknown))}")
        msgs = body.get("messages")
        need(isinstance(msgs, list) and msgs, "messages must be a non-empty array")
        call_ids: set[str] = set()
        for i, m in enumerate(msgs):
            role = m.get("role")
            need(role in ("system", "developer", "user", "assistant", "tool"), f"messages[{i}].role {role!r}")
            if role == "system":
                need(i == 0, f"messages[{i}]: the system prompt should come first")
            if role == "assistant":
                for c in m.get("tool_calls") or []:
                    need(c.get("type") == "function" and isinstance(c.get("function", {}).get("arguments"), str),
                         f"messages[{i}].tool_calls: malformed {c}")
                    json.loads(c["function"]["arguments"])
                    call_ids.add(c["id"])
                need(m.get("content") is not None or m.get("tool_calls"), f"messages[{i}]: no content")
            if role == "tool":
                need(m.get("tool_call_id") in call_ids,
                     f"messages[{i}]: tool_call_id {m.get('tool_call_id')!r} answers no tool call")
            if role == "user":
                need(m.get("content") not in (None, "", []), f"messages[{i}]: empty user content")
        for j, t in enumerate(body.get("tools") or []):
            need(t.get("type") == "function" and isinstance(t.get("function", {}).get("name"), str),
                 f"tools[{j}] must be {{type: function, function: {{name, parameters}}}}")
            need(isinstance(t["function"].get("parameters", {}), dict), f"tools[{j}].function.parameters")
        if body.get("stream_options") is not None:
            need(body.get("stream") is True, "stream_options is only allowed with stream: true")
        return op, body

    # ------------------------------------------------------------------ answers
    def handle(self, req: Recorded) -> Reply:
        try:
            op, body = self.check(req)
        except CheckFailed as e:
            self.failures.append(str(e))
            return openai_error(e.status, f"mock {self.flavour}: {e}")
        with self._count_lock:
            self._n += 1
            n = self._n
        model = body["model"]
        if op == "embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            p = 4 + n
            self.reported.append({"prompt_tokens": p, "completion_tokens": 0, "cached_tokens": 0})
            return Reply(200, {"object": "list", "model": model, "usage": {"prompt_tokens": p, "total_tokens": p},
                               "data": [{"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125]}
                                        for i in range(len(inputs))]})
        last = body["messages"][-1]
        text = last.get("content") if isinstance(last.get("content"), str) else json.dumps(last.get("content"))
        if "[ratelimit]" in (text or ""):
            return openai_error(429, "Rate limit reached for gpt-4.1 in organization org-mock on tokens per min.",
                                "tokens", "rate_limit_exceeded")
        if "[midstream]" in (text or "") and body.get("stream"):
            events = openai_sse(model, PIECES[:1], None, False)[:2] + [
                b'data: {"error":{"message":"The server had an error while processing your request.",'
                b'"type":"server_error","param":null,"code":null}}\n\n']
            return Reply(200, headers={"content-type": "text/event-stream"}, chunks=split_odd(events, DELAY))
        p, c, cached = 30 + n, 12 + n, 16
        tools = body.get("tools") or []
        last_assistant = max((i for i, m in enumerate(body["messages"]) if m.get("role") == "assistant"), default=-1)
        tool_results = [m for m in body["messages"][last_assistant + 1:] if m.get("role") == "tool"]
        call = None
        if "[tool]" in (text or "") and tools and last.get("role") == "user":
            call = {"id": f"call_Mock{n:04d}", "type": "function",
                    "function": {"name": tools[0]["function"]["name"],
                                 "arguments": json.dumps({"city": "Paris", "unit": "celsius"})}}
            content = None
        elif tool_results:
            content = "The tool said: " + "; ".join(str(m.get("content")) for m in tool_results)
        else:
            content = "".join(PIECES)
        self.reported.append({"prompt_tokens": p, "completion_tokens": c, "cached_tokens": cached})
        usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                 "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            if call is None:
                events = openai_sse(model, PIECES if content == "".join(PIECES) else [content],
                                    (p, c), include)
                if include:  # openai_sse reports only prompt/completion; use the cached split too
                    events[-2] = b"data: " + json.dumps({
                        "id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 1767225600,
                        "model": model, "system_fingerprint": "fp_mock", "choices": [], "usage": usage},
                        separators=(",", ":")).encode() + b"\n\n"
            else:
                events = self.tool_stream(model, call, usage if include else None)
            return Reply(200, headers={"content-type": "text/event-stream; charset=utf-8"},
                         chunks=split_odd(events, DELAY))
        message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        if call:
            message["tool_calls"] = [call]
        return Reply(200, {
            "id": f"chatcmpl-Mock{n}", "object": "chat.completion", "created": 1767225600, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if call else "stop"}],
            "usage": usage, "system_fingerprint": "fp_mock"})

    @staticmethod
    def tool_stream(model, call, usage) -> list[bytes]:
        base = {"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1767225600, "model": model}
        extra = {"usage": None} if usage else {}

        def ev(choices, **more):
            return b"data: " + json.dumps({**base, "choices": choices, **extra, **more},
                                          separators=(",", ":")).encode() + b"\n\n"
        args = call["function"]["arguments"]
        out = [ev([{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": call["id"], "type": "function",
             "function": {"name": call["function"]["name"], "arguments": ""}}]}, "finish_reason": None}])]
        for k in range(0, len(args), 7):
            out.append(ev([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {
                "arguments": args[k:k + 7]}}]}, "finish_reason": None}]))
        out.append(ev([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]))
        if usage:
            out.append(b"data: " + json.dumps({**base, "choices": [], "usage": usage},
                                              separators=(",", ":")).encode() + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return out

    def expected_tokens(self) -> dict[str, int]:
        out = {"input": 0, "output": 0, "cached_input": 0, "cache_creation_input": 0}
        for u in self.reported:
            out["input"] += u["prompt_tokens"]
            out["output"] += u["completion_tokens"]
            out["cached_input"] += u["cached_tokens"]
        return out
