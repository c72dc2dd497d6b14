"""Streamed chat completions: SSE chunk order, usage, tool calls, pacing, with the sync and async SDK."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from localdev.simulator.control_client import SimulatorControl

from .conftest import CHAT_DEPLOYMENT, CHAT_MODEL, DataPlane
from .test_dataplane_chat import TIME_TOOL, WEATHER_TOOL

CHUNK_DELAY_MS = 60


def test_stream_with_usage_arrives_chunk_by_chunk(dataplane: DataPlane, control: SimulatorControl) -> None:
    control.patch_config({"streamChunkDelayMs": CHUNK_DELAY_MS})
    client = dataplane.client()
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=CHAT_DEPLOYMENT,
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks: list[ChatCompletionChunk] = []
    arrivals: list[float] = []
    for chunk in stream:
        chunks.append(chunk)
        arrivals.append(time.monotonic() - started)

    # prompt filter results, role, four words, finish, usage
    assert len(chunks) == 8
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert {chunk.created for chunk in chunks} == {chunks[0].created}
    assert {chunk.model for chunk in chunks} == {CHAT_MODEL}
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}

    opening = chunks[0]
    assert opening.choices == []
    assert (opening.model_extra or {})["prompt_filter_results"][0]["prompt_index"] == 0
    assert chunks[1].choices[0].delta.role == "assistant"
    assert chunks[1].choices[0].delta.content == ""
    words = [chunk.choices[0].delta.content for chunk in chunks[2:6]]
    assert words == ["echo: ", "one ", "two ", "three"]
    assert chunks[6].choices[0].finish_reason == "stop"
    assert chunks[6].choices[0].delta.content is None
    assert chunks[7].choices == []
    assert chunks[7].usage is not None
    assert (chunks[7].usage.prompt_tokens, chunks[7].usage.completion_tokens) == (3, 4)
    assert all(chunk.usage is None for chunk in chunks[:7])

    # Really streamed: chunks arrive spread over time, not all at once at the end.
    delay = CHUNK_DELAY_MS / 1000
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap >= delay * 0.6 for gap in gaps), gaps
    assert arrivals[0] < arrivals[-1] - 5 * delay


def test_stream_without_usage_option_has_no_usage_chunk(dataplane: DataPlane) -> None:
    response = dataplane.chat({"messages": [{"role": "user", "content": "hello"}], "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-ratelimit-remaining-requests"]
    events = response.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert all(event.startswith("data: ") for event in events[:-1])
    assert "usage" not in chunks[-1]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks[1:]) == "echo: hello"


def test_streamed_tool_call_is_accumulated_by_the_sdk(dataplane: DataPlane) -> None:
    client = dataplane.client()
    with client.chat.completions.stream(
        model=CHAT_DEPLOYMENT,
        messages=[{"role": "user", "content": "weather in Malmo"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()

    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"echo": "weather in Malmo"}


def test_streamed_and_plain_tool_calls_agree(dataplane: DataPlane) -> None:
    client = dataplane.client()
    request: Any = {
        "model": CHAT_DEPLOYMENT,
        "messages": [{"role": "user", "content": "time please"}],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    }
    plain = client.chat.completions.create(**request)
    streamed = list(client.chat.completions.create(**request, stream=True))

    pieces = [call for chunk in streamed for choice in chunk.choices for call in choice.delta.tool_calls or []]
    assert pieces[0].function is not None
    assert pieces[0].function.arguments == ""
    arguments = "".join(piece.function.arguments or "" for piece in pieces if piece.function)
    assert plain.choices[0].message.tool_calls is not None
    plain_call = plain.choices[0].message.tool_calls[0]
    assert (pieces[0].id, pieces[0].function.name, arguments) == (
        plain_call.id,
        plain_call.function.name,
        plain_call.function.arguments,
    )


def test_async_client_streams_and_answers(dataplane: DataPlane, control: SimulatorControl) -> None:
    control.patch_config({"streamChunkDelayMs": 20})

    async def scenario() -> tuple[str | None, str, int]:
        async with dataplane.async_client() as client:
            plain = await client.chat.completions.create(
                model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "async hello"}]
            )
            stream = await client.chat.completions.create(
                model=CHAT_DEPLOYMENT,
                messages=[{"role": "user", "content": "async stream"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            text = ""
            total = 0
            async for chunk in stream:
                text += "".join(choice.delta.content or "" for choice in chunk.choices)
                total = chunk.usage.total_tokens if chunk.usage else total
            return plain.choices[0].message.content, text, total

    plain, streamed, total = asyncio.run(scenario())
    assert plain == "echo: async hello"
    assert streamed == "echo: async stream"
    assert total == 2 + 3


def test_latency_delays_the_first_byte(dataplane: DataPlane, control: SimulatorControl) -> None:
    control.patch_config({"dataPlaneLatencyMs": 300})
    client = dataplane.client()
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "slow"}], stream=True
    )
    next(iter(stream))
    assert time.monotonic() - started >= 0.3
    stream.close()


def test_a_dropped_connection_fault_closes_before_the_answer_or_after_the_first_chunk(
    dataplane: DataPlane, control: SimulatorControl
) -> None:
    import requests

    control.add_fault(scope="dataplane", pathContains="/chat/completions", drop="beforeAnswer")
    with pytest.raises(requests.ConnectionError):
        dataplane.chat({"messages": [{"role": "user", "content": "hi"}]})
    control.add_fault(scope="dataplane", pathContains="/chat/completions", drop="afterFirstChunk")
    answer = dataplane.session.post(
        f"{dataplane.endpoint}/openai/deployments/{CHAT_DEPLOYMENT}/chat/completions",
        params={"api-version": "2024-10-21"},
        json={"messages": [{"role": "user", "content": "one two"}], "stream": True},
        headers={"Authorization": f"Bearer {dataplane.token_provider()}"},
        stream=True,
        timeout=30,
    )
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for piece in answer.iter_content(None):
            received += piece
    assert received.count(b"data:") == 1 and b"[DONE]" not in received
    statuses = [entry["status"] for entry in control.requests("dataplane")]
    assert statuses == [0, 200]  # the dropped one logged without an answer
