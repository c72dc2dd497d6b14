"""Relaying a chat completions stream: server-sent events passed on as each completes, usage noted on the way.

The usage chunk the service asked for is dropped again when the caller did not ask for it. When the upstream
breaks off after the first byte the caller gets an error event and no `[DONE]`: never a clean end.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

# Every chunk of a stream that asked for usage carries `"usage": null`; only the one with an object is parsed.
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
# Sent when the upstream stream breaks after the first byte: an error event, and no [DONE].
_BROKEN_STREAM = (
    b'data: {"error": {"code": "UpstreamStreamBroken", "message": "Azure OpenAI broke off the stream (%s); '
    b'the answer is incomplete."}}\n\n'
)


class StreamEnd:
    """The end of a relayed stream, once: the upstream answer closed (its pool slot released), the call logged."""

    def __init__(self, answer: Any, record: Any) -> None:
        self._answer: Any = answer
        self._record = record

    async def __call__(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None:
            try:
                await answer.aclose()
            finally:
                self._record.write()


async def relay_events(answer: Any, record: Any, hide_usage: bool, end: StreamEnd) -> AsyncIterator[bytes]:
    """Yield upstream SSE events as soon as each is complete, noting usage; drop the usage chunk if asked."""
    buffer = b""
    try:
        chunks = aiter(answer.chunks())
        while True:
            try:
                piece = await anext(chunks)
            except StopAsyncIteration:
                break
            except Exception as error:  # the upstream broke off mid-stream: never a clean end for the caller
                record.status = 502
                yield _BROKEN_STREAM % type(error).__name__.encode()
                return
            buffer += piece
            if b"\n\n" not in buffer:
                continue
            *events, buffer = buffer.split(b"\n\n")
            out = []
            for event in events:
                if _USAGE_OBJECT.search(event) and _take_usage_event(event, record) and hide_usage:
                    continue
                out.append(event + b"\n\n")
            if out:
                yield b"".join(out)
        if buffer.strip():
            yield buffer
    finally:
        await end()


def _take_usage_event(event: bytes, record: Any) -> bool:
    """Note the usage of a `data:` event; True when it is the usage-only chunk (no choices)."""
    data = event.removeprefix(b"data:").strip()
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    if not isinstance(chunk, dict) or not isinstance(chunk.get("usage"), dict):
        return False
    record.take_usage(chunk["usage"])
    record.model = chunk.get("model") or record.model
    return not chunk.get("choices")
