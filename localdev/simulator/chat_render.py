"""Chat completion bodies and stream chunks, shaped as Azure OpenAI sends them (2024-10-21)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .chat_answer import ChatAnswer
from .dataplane_errors import safe_filter_results

SYSTEM_FINGERPRINT = "fp_sim"
DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class CompletionMeta:
    """What every chunk of one completion shares."""

    completion_id: str
    created: int
    model: str

    def envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }


def usage_json(answer: ChatAnswer) -> dict[str, int]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.total_tokens,
    }


def _prompt_filter_results() -> list[dict[str, Any]]:
    return [{"prompt_index": 0, "content_filter_results": safe_filter_results()}]


def completion_json(meta: CompletionMeta, answer: ChatAnswer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.tool_call is not None:
        call = answer.tool_call
        message["tool_calls"] = [
            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        ]
    return {
        **meta.envelope("chat.completion"),
        "prompt_filter_results": _prompt_filter_results(),
        "choices": [
            {
                "index": 0,
                "finish_reason": answer.finish_reason,
                "logprobs": None,
                "message": message,
                "content_filter_results": safe_filter_results(),
            }
        ],
        "usage": usage_json(answer),
    }


def stream_chunks(meta: CompletionMeta, answer: ChatAnswer, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed completion, in the order Azure sends them.

    Azure opens with a choice-less chunk carrying the prompt filter results; with include_usage,
    OpenAI's contract adds `usage: null` to every chunk but the final usage chunk.
    """

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        body = {**meta.envelope("chat.completion.chunk"), "choices": choices, **extra}
        if include_usage:
            body.setdefault("usage", None)
        return body

    def choice(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None, **extra}

    yield chunk([], prompt_filter_results=_prompt_filter_results())
    # With a tool call there is no text, and the real service sends content null rather than "".
    opening_content = None if answer.tool_call is not None else ""
    yield chunk([choice({"role": "assistant", "content": opening_content}, content_filter_results={})])
    if answer.tool_call is not None:
        call = answer.tool_call
        header = {"index": 0, "id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield chunk([choice({"tool_calls": [header]})])
        yield chunk([choice({"tool_calls": [{"index": 0, "function": {"arguments": call.arguments}}]})])
    for piece in answer.content_pieces():
        yield chunk([choice({"content": piece}, content_filter_results=safe_filter_results())])
    yield chunk([choice({}, answer.finish_reason, content_filter_results={})])
    if include_usage:
        yield chunk([], usage=usage_json(answer))


def sse_event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
