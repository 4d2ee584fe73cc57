"""OpenAI-shaped answers the benchmark upstreams serve."""
from __future__ import annotations

import json

CHAT_COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content":
                 "The quick brown fox jumps over the lazy dog. " * 4, "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 48, "total_tokens": 1248,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0,
                                            "rejected_prediction_tokens": 0}},
}, separators=(",", ":"))


def openai_sse_events(pieces: int = 20) -> list[bytes]:
    """An OpenAI chat.completion.chunk stream as sent with `stream_options.include_usage`
    (every chunk has `"usage":null`, a last chunk with empty choices carries usage):
    a role chunk, `pieces` content chunks, a finish chunk, the usage chunk, [DONE]."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1767225600,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench"}

    def ev(obj) -> bytes:
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    out = [ev({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}], "usage": None})]
    words = "The quick brown fox jumps over the lazy dog while benchmarks run".split()
    for i in range(pieces):
        out.append(ev({**base, "choices": [{"index": 0, "delta": {"content": " " + words[i % len(words)]},
                                            "logprobs": None, "finish_reason": None}], "usage": None}))
    out.append(ev({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
                   "usage": None}))
    out.append(ev({**base, "choices": [], "usage": {
        "prompt_tokens": 1200, "completion_tokens": pieces, "total_tokens": 1200 + pieces,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}}))
    out.append(b"data: [DONE]\n\n")
    return out
