"""Mock Google generative APIs: the Gemini API (AI Studio) and Vertex AI, which share the
GenerateContent wire format, plus a mock GCE metadata server handing out access tokens.

* Gemini: `POST /v1beta/models/{model}:generateContent` and
  `:streamGenerateContent?alt=sse`, `x-goog-api-key` = the provider key, no `authorization`.
* Vertex: `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`
  (and `:streamGenerateContent?alt=sse`), `authorization: Bearer <token>` with a token the
  mock accepts (the static one, or one the metadata mock issued and that has not expired).
* Bodies are checked against the public GenerateContentRequest reference (contents/parts/
  roles, systemInstruction, generationConfig, tools.functionDeclarations, functionCall /
  functionResponse parts); a violation answers 400 INVALID_ARGUMENT "mock google: ...".
* Answers are GenerateContentResponse JSON, or SSE (`data: ...\\r\\n\\r\\n`) with cumulative
  usageMetadata (cachedContentTokenCount, thoughtsTokenCount) in several odd-offset writes.

Markers in the last user turn: [tool] functionCall of the first declared function,
[quota] 429 RESOURCE_EXHAUSTED, [cut] (streams) the stream ends without a finishReason.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse

from harness import MockProvider, Recorded, Reply

PIECES = ["Bonjour", " depuis", " Gemini", ", avec", " plaisir", " !"]
DELAY = 0.03

REQUEST_KEYS = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings",
                "cachedContent", "labels"}
GEN_KEYS = {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences",
            "presencePenalty", "frequencyPenalty", "seed", "responseMimeType", "responseSchema",
            "responseJsonSchema", "thinkingConfig", "responseLogprobs", "logprobs", "responseModalities"}
PART_KEYS = {"text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature",
             "executableCode", "codeExecutionResult"}


class CheckFailed(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.status, self.kind = status, kind


def google_error(status: int, kind: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": status, "message": message, "status": kind}})


def split_bytes(data: bytes, delay: float) -> list[tuple[float, bytes]]:
    sizes = [13, 57, 5, 101, 29]
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append((delay if i else 0.0, data[pos:pos + n]))
        pos += n
        i += 1
    return out


class GoogleMock(MockProvider):
    """`kind` is "gemini" or "vertex". For Vertex, `tokens` is the set of accepted tokens
    (shared with a MetadataMock when tokens are fetched)."""

    def __init__(self, kind: str, api_key: str | None = None, project: str = "", location: str = "",
                 tokens: "TokenBook | None" = None):
        super().__init__(kind, self.handle)
        self.kind, self.api_key, self.project, self.location = kind, api_key, project, location
        self.tokens = tokens
        self.reported: list[dict] = []
        self.failures: list[str] = []
        self.bearers: list[str] = []
        self.models: list[str] = []
        self.expect_estimated = False
        self._n = 0
        self._lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.requests.clear()
        self.reported.clear()
        self.failures.clear()
        self.bearers.clear()
        self.models.clear()
        self.expect_estimated = False

    def expected_tokens(self) -> dict:
        t = {"input": 0, "output": 0, "cached_input": 0, "cache_creation_input": 0, "reasoning": 0}
        for u in self.reported:
            t["input"] += u["promptTokenCount"]
            t["output"] += u["candidatesTokenCount"] + u.get("thoughtsTokenCount", 0)
            t["cached_input"] += u.get("cachedContentTokenCount", 0)
            t["reasoning"] += u.get("thoughtsTokenCount", 0)
        return t

    # ------------------------------------------------------------------ checks
    def check_auth(self, req: Recorded):
        if self.kind == "gemini":
            if req.headers.get("x-goog-api-key") != self.api_key:
                raise CheckFailed("mock google: API key not valid. Please pass a valid API key.", 400)
            if "authorization" in req.headers:
                raise CheckFailed("mock google: unexpected authorization header", 400)
            return
        auth = req.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        ok = token == self.api_key if self.tokens is None else self.tokens.valid(token)
        if not auth.startswith("Bearer ") or not ok:
            raise CheckFailed(f"mock google: Request had invalid authentication credentials ({token[:8]!r}).",
                              401, "UNAUTHENTICATED")
        if "x-goog-api-key" in req.headers:
            raise CheckFailed("mock google: unexpected x-goog-api-key", 400)
        self.bearers.append(token)

    def check_body(self, body: dict):
        def need(cond, message):
            if not cond:
                raise CheckFailed("mock google: " + message)

        need(isinstance(body, dict) and set(body) <= REQUEST_KEYS,
             f"Invalid JSON payload received. Unknown name(s) {sorted(set(body) - REQUEST_KEYS)}")
        contents = body.get("contents")
        need(isinstance(contents, list) and contents, "contents is not specified")
        declared = set()
        for t in body.get("tools", []):
            need(set(t) <= {"functionDeclarations", "googleSearch", "codeExecution"}, f"tool {sorted(t)}")
            for fd in t.get("functionDeclarations", []):
                need(set(fd) <= {"name", "description", "parameters", "parametersJsonSchema", "response"}
                     and "name" in fd, f"functionDeclaration {sorted(fd)}")
                need(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}", fd["name"]), f"function name {fd['name']}")
                if "parameters" in fd:
                    need(isinstance(fd["parameters"], dict) and "type" in fd["parameters"],
                         f"parameters {fd['parameters']}")
                declared.add(fd["name"])
        if "toolConfig" in body:
            fcc = body["toolConfig"].get("functionCallingConfig", {})
            need(fcc.get("mode", "AUTO") in ("AUTO", "ANY", "NONE", "VALIDATED"), f"mode {fcc}")
        for i, c in enumerate(contents):
            need(set(c) <= {"role", "parts"} and c.get("role") in ("user", "model"),
                 f"contents[{i}].role {c.get('role')!r}")
            parts = c.get("parts")
            need(isinstance(parts, list) and parts, f"contents[{i}].parts must not be empty")
            for p in parts:
                need(isinstance(p, dict) and set(p) <= PART_KEYS, f"part members {sorted(p)}")
                if "functionCall" in p:
                    need(c["role"] == "model", "functionCall in a user turn")
                    fc = p["functionCall"]
                    need(isinstance(fc.get("args", {}), dict) and fc.get("name") in declared,
                         f"functionCall {fc}")
                if "functionResponse" in p:
                    need(c["role"] == "user", "functionResponse in a model turn")
                    fr = p["functionResponse"]
                    need(set(fr) <= {"id", "name", "response"} and isinstance(fr.get("response"), dict)
                         and fr.get("name") in declared, f"functionResponse {fr}")
                if "text" in p:
                    need(isinstance(p["text"], str), "text")
        if "systemInstruction" in body:
            si = body["systemInstruction"]
            need(isinstance(si.get("parts"), list) and all("text" in p for p in si["parts"]),
                 f"systemInstruction {si}")
        gc = body.get("generationConfig", {})
        need(set(gc) <= GEN_KEYS, f"generationConfig unknown {sorted(set(gc) - GEN_KEYS)}")
        if "maxOutputTokens" in gc:
            need(isinstance(gc["maxOutputTokens"], int) and gc["maxOutputTokens"] > 0, "maxOutputTokens")

    # ------------------------------------------------------------------ answers
    def usage(self, candidates: int, thoughts: bool = True) -> dict:
        with self._lock:
            self._n += 1
            i = self._n
        u = {"promptTokenCount": 40 + i, "candidatesTokenCount": candidates,
             "cachedContentTokenCount": 16 + i, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40 + i}]}
        if thoughts:
            u["thoughtsTokenCount"] = 5 + i
        u["totalTokenCount"] = u["promptTokenCount"] + candidates + u.get("thoughtsTokenCount", 0)
        return u

    def handle(self, req: Recorded) -> Reply:
        path, _, query = req.path.partition("?")
        try:
            if self.kind == "gemini":
                m = re.fullmatch(r"/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)", path)
            else:
                m = re.fullmatch(rf"/v1/projects/{self.project}/locations/{self.location}/publishers/google/"
                                 r"models/([^/:]+):(generateContent|streamGenerateContent)", path)
            if not m or req.method != "POST":
                raise CheckFailed(f"mock google: {req.method} {req.path} not found", 404, "NOT_FOUND")
            stream = m.group(2) == "streamGenerateContent"
            if stream != (query == "alt=sse"):
                raise CheckFailed(f"mock google: query {query!r} for {m.group(2)}")
            self.check_auth(req)
            try:
                body = json.loads(req.body)
            except ValueError:
                raise CheckFailed("mock google: Invalid JSON payload received.")
            self.check_body(body)
        except CheckFailed as e:
            self.failures.append(str(e))
            return google_error(e.status, e.kind, str(e))
        model = urllib.parse.unquote(m.group(1))
        self.models.append(model)
        last = body["contents"][-1]
        text = " ".join(p.get("text", "") for p in last["parts"])
        responses = [p["functionResponse"] for p in last["parts"] if "functionResponse" in p]
        if "[quota]" in text:
            return google_error(429, "RESOURCE_EXHAUSTED",
                                "Resource has been exhausted (e.g. check quota).")
        tool = None
        if "[tool]" in text and body.get("tools"):
            tool = body["tools"][0]["functionDeclarations"][0]["name"]
        pieces = PIECES if not responses else ["Results: ", json.dumps([r["response"] for r in responses], ensure_ascii=False)]
        if not stream:
            parts = [{"text": "".join(pieces)}]
            if tool:
                parts = [{"functionCall": {"name": tool, "args": {"city": "Paris", "unit": "celsius"}}}]
            u = self.usage(9 + len(parts))
            self.reported.append(u)
            return Reply(200, {"candidates": [{"content": {"parts": parts, "role": "model"},
                                               "finishReason": "STOP", "index": 0}],
                               "usageMetadata": u, "modelVersion": model,
                               "responseId": "Zm9vYmFyX2dlbWluaV9yZXNwb25zZQ"})
        # Streams: usageMetadata is cumulative, the last one is the total.
        final = self.usage(len(pieces) * 3 if not tool else 7)
        events = []
        cut = "[cut]" in text
        chunks = [[{"functionCall": {"name": tool, "args": {"city": "Paris", "unit": "celsius"}}}]] if tool else \
            [[{"text": p}] for p in pieces]
        for k, parts in enumerate(chunks):
            last_one = k == len(chunks) - 1
            cand = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if last_one and not cut:
                cand["finishReason"] = "STOP"
            u = dict(final)
            if not last_one or cut:
                u["candidatesTokenCount"] = 3 * (k + 1) if not tool else 1
                u["totalTokenCount"] = u["promptTokenCount"] + u["candidatesTokenCount"] + u.get("thoughtsTokenCount", 0)
            events.append(b"data: " + json.dumps({"candidates": [cand], "usageMetadata": u, "modelVersion": model,
                                                  "responseId": "c3RyZWFtX3Jlc3BvbnNl"}).encode() + b"\r\n\r\n")
            if cut and k == 1:
                break
        if not cut:
            self.reported.append(final)
        return Reply(200, chunks=split_bytes(b"".join(events), DELAY), headers={"content-type": "text/event-stream"})


class TokenBook:
    """Tokens issued by the metadata mock, with their expiry (wall clock)."""

    def __init__(self):
        self.issued: dict[str, float] = {}
        self.lock = threading.Lock()

    def add(self, token: str, expires_in: float):
        with self.lock:
            self.issued[token] = time.time() + expires_in

    def valid(self, token: str) -> bool:
        with self.lock:
            exp = self.issued.get(token)
        return exp is not None and time.time() < exp


class MetadataMock(MockProvider):
    """The GCE metadata server's token endpoint: `GET /computeMetadata/v1/instance/
    service-accounts/default/token` with `Metadata-Flavor: Google`, Host `host`.
    Tokens issued in the first `early_s` seconds after the first fetch live `early_life`
    seconds (every Envoy thread's VM fetches its own at startup), later ones `late_life`."""

    PATH = "/computeMetadata/v1/instance/service-accounts/default/token"

    def __init__(self, book: TokenBook, early_s: float, early_life: int, late_life: int,
                 host: str = "metadata.google.internal"):
        super().__init__("metadata", self.handle)
        self.book, self.host = book, host
        self.early_s, self.early_life, self.late_life = early_s, early_life, late_life
        self.early_until: float | None = None
        self.lives: dict[str, int] = {}
        self.failures: list[str] = []
        self.served: list[tuple[float, str]] = []

    def handle(self, req: Recorded) -> Reply:
        if req.headers.get("metadata-flavor") != "Google":
            self.failures.append(f"metadata-flavor {req.headers.get('metadata-flavor')!r}")
            return Reply(403, b"Missing Metadata-Flavor:Google header.", {"content-type": "text/html"})
        if req.method != "GET" or req.path != self.PATH or req.headers.get("host") != self.host:
            self.failures.append(f"{req.method} {req.path} host={req.headers.get('host')}")
            return Reply(404, b"not found", {"content-type": "text/html"})
        n = len(self.served) + 1
        if self.early_until is None:
            self.early_until = time.time() + self.early_s
        life = self.early_life if time.time() < self.early_until else self.late_life
        self.lives[f"tok-{n}"] = life
        token = f"tok-{n}"
        self.book.add(token, life)
        self.served.append((time.time(), token))
        return Reply(200, {"access_token": token, "expires_in": life, "token_type": "Bearer"},
                     {"metadata-flavor": "Google"})
