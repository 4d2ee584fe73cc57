"""A mock AWS Bedrock Runtime (Converse API) that checks every request the way AWS does and
answers like AWS does.

* Paths `POST /model/{modelId}/converse` and `/model/{modelId}/converse-stream`; the model id
  arrives percent-encoded on the wire (`us.anthropic.claude-3-5-sonnet-20241022-v2%3A0`).
* The SigV4 signature is recomputed here, independently of the gateway's Rust code
  (hashlib/hmac only): canonical request with the canonical URI (each path segment
  URI-encoded once more, so `%3A` becomes `%253A`), the headers named in `SignedHeaders`,
  the payload hash, `x-amz-date`, the credential scope (date/region/bedrock/aws4_request)
  and `x-amz-security-token` when a session token is configured. A mismatch answers 403
  `InvalidSignatureException` like AWS, with the canonical request in the message.
* The Converse body shape (messages/system/inferenceConfig/toolConfig) is checked against
  the public API reference; a violation answers 400 ValidationException "mock bedrock: ...".
* converse-stream answers real `application/vnd.amazon.eventstream` frames (prelude, typed
  headers, payload, both CRC32s) cut at odd byte offsets over several writes.

Markers in the text of the last user turn choose the answer:
  [tool]       a toolUse block for the first tool of toolConfig
  [throttle]   HTTP 429 with x-amzn-ErrorType ThrottlingException
  [invalid]    HTTP 400 with x-amzn-ErrorType ValidationException
  [midstream]  (stream) a throttlingException exception frame after the first text delta
  [badcrc]     (stream) a frame whose message CRC is wrong, after the first text delta
  [truncate]   (stream) the body ends in the middle of a frame
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import struct
import threading
import urllib.parse
import zlib

from harness import MockProvider, Recorded, Reply

PIECES = ["Hola", ", soy", " Claude", " en", " Bedrock", " — ¿en qué", " puedo ayudar?"]
DELAY = 0.03

CONVERSE_KEYS = {"messages", "system", "inferenceConfig", "toolConfig", "guardrailConfig",
                 "additionalModelRequestFields", "promptVariables", "additionalModelResponseFieldPaths",
                 "requestMetadata", "performanceConfig"}
INFERENCE_KEYS = {"maxTokens", "temperature", "topP", "stopSequences"}
BLOCK_KEYS = {"text", "image", "document", "video", "toolUse", "toolResult", "guardContent", "cachePoint",
              "reasoningContent", "citationsContent"}


class CheckFailed(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "ValidationException"):
        super().__init__(message)
        self.status, self.kind = status, kind


def aws_error(status: int, kind: str, message: str) -> Reply:
    return Reply(status, {"message": message}, headers={
        "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": "a1b2c3d4-0000-4000-8000-000000000000"})


# ------------------------------------------------------------------ SigV4 (independent)

def _uri_encode(s: str, encode_slash: bool = True) -> str:
    safe = "-_.~" if encode_slash else "-_.~/"
    return urllib.parse.quote(s, safe=safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def expected_signature(method: str, raw_path: str, headers: dict[str, str], body: bytes, secret: str,
                       amz_date: str, scope: str, signed: list[str]) -> tuple[str, str]:
    path, _, query = raw_path.partition("?")
    canonical_uri = "/".join(_uri_encode(seg) for seg in path.split("/"))
    pairs = sorted((_uri_encode(urllib.parse.unquote(k)), _uri_encode(urllib.parse.unquote(v)))
                   for k, _, v in (p.partition("=") for p in query.split("&") if p))
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    creq = "\n".join([method, canonical_uri, canonical_query, canonical_headers, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    k = _hmac(k, "aws4_request")
    return hmac.new(k, sts.encode(), hashlib.sha256).hexdigest(), creq


# ------------------------------------------------------------------ eventstream (independent)

def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v


def frame(headers: dict[str, str], payload: bytes, corrupt_crc: bool = False) -> bytes:
    hb = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(hb) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hb))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + hb + payload
    crc = zlib.crc32(msg) ^ (0xFFFFFFFF if corrupt_crc else 0)
    return msg + struct.pack(">I", crc)


def event(kind: str, data: dict, corrupt_crc: bool = False) -> bytes:
    # AWS pads every event with a random-length "p" member (against length side channels).
    payload = json.dumps({**data, "p": "abcdefghijklmnopqrstuvwxyzABCDEF"[: 5 + len(kind) % 20]},
                         separators=(",", ":")).encode()
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                 payload, corrupt_crc)


def exception(kind: str, message: str) -> bytes:
    return frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                 json.dumps({"message": message}).encode())


def split_bytes(data: bytes, delay: float) -> list[tuple[float, bytes]]:
    """Writes cut at odd offsets (never on frame boundaries on purpose)."""
    sizes = [7, 33, 11, 61, 3, 97]
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append((delay if i else 0.0, data[pos:pos + n]))
        pos += n
        i += 1
    return out


class BedrockMock(MockProvider):
    def __init__(self, access_key: str, secret: str, region: str, session_token: str | None = None,
                 host: str | None = None):
        super().__init__("bedrock", self.handle)
        self.access_key, self.secret, self.region = access_key, secret, region
        self.session_token = session_token
        self.host = host or f"bedrock-runtime.{region}.amazonaws.com"
        self.reported: list[dict] = []   # usage of every answer carrying usage, Bedrock terms
        self.failures: list[str] = []
        self.models: list[str] = []      # decoded model ids
        self.expect_estimated = False
        self._n = 0
        self._lock = threading.Lock()

    def reset(self):
        with self.lock:
            self.requests.clear()
        self.reported.clear()
        self.failures.clear()
        self.models.clear()
        self.expect_estimated = False

    def expected_tokens(self) -> dict:
        t = {"input": 0, "output": 0, "cached_input": 0, "cache_creation_input": 0}
        for u in self.reported:
            t["input"] += u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"]
            t["output"] += u["outputTokens"]
            t["cached_input"] += u["cacheReadInputTokens"]
            t["cache_creation_input"] += u["cacheWriteInputTokens"]
        return t

    # ------------------------------------------------------------------ checks
    def check_signature(self, req: Recorded):
        auth = req.headers.get("authorization", "")
        m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8}/[^/]+/[^/]+/aws4_request), "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
        if not m:
            raise CheckFailed(f"mock bedrock: malformed Authorization {auth[:80]!r}", 403,
                              "IncompleteSignatureException")
        akid, scope, signed, sig = m.groups()
        signed = signed.split(";")
        if akid != self.access_key:
            raise CheckFailed(f"mock bedrock: unknown access key {akid!r}", 403, "UnrecognizedClientException")
        date, region, service, _ = scope.split("/")
        if (region, service) != (self.region, "bedrock"):
            raise CheckFailed(f"mock bedrock: credential scope {scope}", 403, "InvalidSignatureException")
        amz_date = req.headers.get("x-amz-date", "")
        try:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            raise CheckFailed(f"mock bedrock: bad x-amz-date {amz_date!r}", 403, "InvalidSignatureException")
        if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > 300 or date != amz_date[:8]:
            raise CheckFailed("mock bedrock: Signature expired", 403, "InvalidSignatureException")
        for h in ("host", "x-amz-date"):
            if h not in signed:
                raise CheckFailed(f"mock bedrock: {h} is not signed ({signed})", 403, "InvalidSignatureException")
        if sorted(signed) != signed:
            raise CheckFailed(f"mock bedrock: SignedHeaders not sorted {signed}", 403, "InvalidSignatureException")
        if self.session_token is not None:
            if req.headers.get("x-amz-security-token") != self.session_token:
                raise CheckFailed("mock bedrock: The security token included in the request is invalid", 403,
                                  "UnrecognizedClientException")
            if "x-amz-security-token" not in signed:
                raise CheckFailed("mock bedrock: x-amz-security-token not signed", 403, "InvalidSignatureException")
        elif "x-amz-security-token" in req.headers:
            raise CheckFailed("mock bedrock: unexpected x-amz-security-token", 403, "UnrecognizedClientException")
        want, creq = expected_signature(req.method, req.path, req.headers, req.body, self.secret, amz_date,
                                        scope, signed)
        if want != sig:
            raise CheckFailed("mock bedrock: The request signature we calculated does not match the signature "
                              f"you provided. Canonical request:\n{creq}", 403, "InvalidSignatureException")
        if req.headers.get("host") != self.host:
            raise CheckFailed(f"mock bedrock: host {req.headers.get('host')!r}, want {self.host!r}", 400)

    def check_body(self, body: dict):
        def need(cond, message):
            if not cond:
                raise CheckFailed("mock bedrock: " + message)

        need(isinstance(body, dict), "body is not an object")
        need(set(body) <= CONVERSE_KEYS, f"unknown members {sorted(set(body) - CONVERSE_KEYS)}")
        msgs = body.get("messages")
        need(isinstance(msgs, list) and msgs, "messages must be a non-empty list")
        need(msgs[0].get("role") == "user", "A conversation must start with a user message.")
        for i, m in enumerate(msgs):
            need(set(m) == {"role", "content"}, f"messages[{i}] members {sorted(m)}")
            need(m["role"] in ("user", "assistant"), f"messages[{i}].role {m['role']!r}")
            if i:
                need(m["role"] != msgs[i - 1]["role"],
                     "A conversation must alternate between user and assistant roles.")
            need(isinstance(m["content"], list) and m["content"], f"messages[{i}].content must be a non-empty list")
            for j, b in enumerate(m["content"]):
                need(isinstance(b, dict) and len(b) == 1 and set(b) <= BLOCK_KEYS,
                     f"messages[{i}].content[{j}] must be a union with one member, got {sorted(b)}")
                if "text" in b:
                    need(isinstance(b["text"], str), "text must be a string")
                if "toolUse" in b:
                    tu = b["toolUse"]
                    need(m["role"] == "assistant", "toolUse in a user turn")
                    need(set(tu) == {"toolUseId", "name", "input"} and isinstance(tu["input"], dict),
                         f"toolUse shape {tu}")
                if "toolResult" in b:
                    tr = b["toolResult"]
                    need(m["role"] == "user", "toolResult in an assistant turn")
                    need("toolUseId" in tr and isinstance(tr.get("content"), list), f"toolResult shape {tr}")
                    need(set(tr) <= {"toolUseId", "content", "status"}, f"toolResult members {sorted(tr)}")
                    for c in tr["content"]:
                        need(len(c) == 1 and set(c) <= {"text", "json", "image", "document", "video"},
                             f"toolResult content {c}")
        if "system" in body:
            need(isinstance(body["system"], list) and all(
                isinstance(s, dict) and set(s) <= {"text", "guardContent", "cachePoint"} and len(s) == 1
                for s in body["system"]), f"system shape {body['system']}")
        if "inferenceConfig" in body:
            ic = body["inferenceConfig"]
            need(set(ic) <= INFERENCE_KEYS, f"inferenceConfig members {sorted(ic)}")
            if "maxTokens" in ic:
                need(isinstance(ic["maxTokens"], int) and ic["maxTokens"] >= 1, "maxTokens")
            if "stopSequences" in ic:
                need(isinstance(ic["stopSequences"], list), "stopSequences")
        if "toolConfig" in body:
            tc = body["toolConfig"]
            need(set(tc) <= {"tools", "toolChoice"}, f"toolConfig members {sorted(tc)}")
            need(isinstance(tc.get("tools"), list) and tc["tools"], "toolConfig.tools")
            for t in tc["tools"]:
                need(set(t) <= {"toolSpec", "cachePoint"} and len(t) == 1, f"tool {t}")
                if "toolSpec" in t:
                    s = t["toolSpec"]
                    need(set(s) <= {"name", "description", "inputSchema"} and "name" in s
                         and "inputSchema" in s, f"toolSpec {s}")
                    need(set(s["inputSchema"]) == {"json"} and isinstance(s["inputSchema"]["json"], dict),
                         f"inputSchema {s['inputSchema']}")
            if "toolChoice" in tc:
                ch = tc["toolChoice"]
                need(len(ch) == 1 and set(ch) <= {"auto", "any", "tool"}, f"toolChoice {ch}")

    # ------------------------------------------------------------------ answers
    def usage(self) -> dict:
        with self._lock:
            self._n += 1
            i = self._n
        u = {"inputTokens": 11 + i, "outputTokens": 23 + 2 * i, "cacheReadInputTokens": 100 + i,
             "cacheWriteInputTokens": 7 * (i % 3)}
        u["totalTokens"] = sum(u.values())
        return u

    def handle(self, req: Recorded) -> Reply:
        try:
            if req.method != "POST":
                raise CheckFailed(f"mock bedrock: method {req.method}", 405)
            m = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream)", req.path)
            if not m:
                raise CheckFailed(f"mock bedrock: unknown path {req.path}", 404, "UnknownOperationException")
            model = urllib.parse.unquote(m.group(1))
            if ":" in m.group(1):
                raise CheckFailed("mock bedrock: ':' in the model id must be percent-encoded", 400)
            self.check_signature(req)
            if req.headers.get("content-type") != "application/json":
                raise CheckFailed(f"mock bedrock: content-type {req.headers.get('content-type')}", 400)
            for h in ("x-api-key", "api-key", "x-goog-api-key"):
                if h in req.headers:
                    raise CheckFailed(f"mock bedrock: unexpected {h}", 400)
            try:
                body = json.loads(req.body)
            except ValueError:
                raise CheckFailed("mock bedrock: body is not JSON")
            self.check_body(body)
        except CheckFailed as e:
            self.failures.append(str(e))
            return aws_error(e.status, e.kind, str(e))
        self.models.append(model)
        stream = m.group(2) == "converse-stream"
        last = body["messages"][-1]["content"]
        text = " ".join(b.get("text", "") for b in last)
        results = [b["toolResult"] for b in last if "toolResult" in b]
        if "[throttle]" in text:
            return aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
        if "[invalid]" in text:
            return aws_error(400, "ValidationException", "The provided model identifier is invalid.")
        tool = None
        if "[tool]" in text and "toolConfig" in body:
            tool = body["toolConfig"]["tools"][0]["toolSpec"]["name"]
        answer = PIECES
        if results:
            answer = ["Results: ", json.dumps([r["content"] for r in results], separators=(",", ":"), ensure_ascii=False)]
        if not stream:
            u = self.usage()
            self.reported.append(u)
            content = [{"text": "".join(answer)}]
            if tool:
                content = [{"text": "Let me check."},
                           {"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": tool,
                                        "input": {"city": "Paris", "unit": "celsius"}}}]
            return Reply(200, {"output": {"message": {"role": "assistant", "content": content}},
                               "stopReason": "tool_use" if tool else "end_turn", "usage": u,
                               "metrics": {"latencyMs": 412}},
                         headers={"x-amzn-RequestId": "5d2f0c3e-0000-4000-8000-000000000001"})
        return self.stream_reply(answer, tool, text)

    def stream_reply(self, answer, tool, text) -> Reply:
        frames = [event("messageStart", {"role": "assistant"})]
        if tool:
            frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me check."}}))
            frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
            frames.append(event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {
                "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "name": tool}}}))
            for part in ['{"city":', '"Paris","un', 'it":"celsius"}']:
                frames.append(event("contentBlockDelta", {"contentBlockIndex": 1,
                                                          "delta": {"toolUse": {"input": part}}}))
            frames.append(event("contentBlockStop", {"contentBlockIndex": 1}))
            frames.append(event("messageStop", {"stopReason": "tool_use"}))
        else:
            for k, piece in enumerate(answer):
                frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}))
                if k == 0 and "[midstream]" in text:
                    frames.append(exception("throttlingException", "Too many tokens, please wait."))
                    return Reply(200, chunks=split_bytes(b"".join(frames), DELAY),
                                 headers={"content-type": "application/vnd.amazon.eventstream"})
                if k == 0 and "[badcrc]" in text:
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "X"}},
                                        corrupt_crc=True))
                    frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Y"}}))
                    return Reply(200, chunks=split_bytes(b"".join(frames), DELAY),
                                 headers={"content-type": "application/vnd.amazon.eventstream"})
            frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
            frames.append(event("messageStop", {"stopReason": "end_turn"}))
        if "[truncate]" in text:
            data = b"".join(frames)
            return Reply(200, chunks=split_bytes(data[:len(data) - 9], DELAY),
                         headers={"content-type": "application/vnd.amazon.eventstream"})
        u = self.usage()
        self.reported.append(u)
        frames.append(event("metadata", {"usage": u, "metrics": {"latencyMs": 388}}))
        return Reply(200, chunks=split_bytes(b"".join(frames), DELAY),
                     headers={"content-type": "application/vnd.amazon.eventstream",
                              "x-amzn-RequestId": "5d2f0c3e-0000-4000-8000-000000000002"})
