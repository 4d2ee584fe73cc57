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


# --------------------------------------------------------------------------- Anthropic

ANTHROPIC_MESSAGE = json.dumps({
    "id": "msg_01Bench000000000000000000", "type": "message", "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [{"type": "text", "text": "The quick brown fox jumps over the lazy dog. " * 4}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 1200, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
              "output_tokens": 48, "service_tier": "standard"},
}, separators=(",", ":"))


def anthropic_sse_events(pieces: int = 20) -> list[bytes]:
    """An Anthropic Messages stream as the API sends it: message_start, ping, one text block
    of `pieces` deltas, message_delta (usage) and message_stop — 24 events for 18 pieces."""
    def ev(name: str, obj) -> bytes:
        return f"event: {name}\ndata: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()

    words = "The quick brown fox jumps over the lazy dog while benchmarks run".split()
    out = [ev("message_start", {"type": "message_start", "message": {
        "id": "msg_01Bench000000000000000000", "type": "message", "role": "assistant",
        "model": "claude-haiku-4-5-20251001", "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 1200, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 1, "service_tier": "standard"}}}),
        ev("ping", {"type": "ping"}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})]
    for i in range(pieces):
        out.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": " " + words[i % len(words)]}}))
    out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                       "stop_sequence": None},
                                    "usage": {"output_tokens": pieces}}))
    out.append(ev("message_stop", {"type": "message_stop"}))
    return out
