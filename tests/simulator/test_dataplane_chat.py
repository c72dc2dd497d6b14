"""Chat completions on the data plane, called with the real openai SDK and a managed-identity token."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from localdev.simulator.control_client import SimulatorControl

from .conftest import CHAT_DEPLOYMENT, CHAT_MODEL, DataPlane

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL: Any = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


def data_url(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


def image_message(text: str, *payloads: bytes) -> Any:
    parts: list[Any] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": data_url(payload), "detail": "low"}} for payload in payloads]
    return {"role": "user", "content": parts}


def test_plain_chat_echoes_the_last_user_message(dataplane: DataPlane, control: SimulatorControl) -> None:
    client = dataplane.client()
    completion = client.chat.completions.create(
        model=CHAT_DEPLOYMENT,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "what is the capital of Sweden?"},
        ],
    )

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == CHAT_MODEL  # the deployment's model, from ARM state
    assert completion.system_fingerprint == "fp_sim"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: what is the capital of Sweden?"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 3 + 2 + 2 + 6
    assert completion.usage.completion_tokens == 7
    assert completion.usage.total_tokens == 20
    extra = completion.model_extra or {}
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"] == {
        "filtered": False,
        "severity": "safe",
    }

    logged = control.requests("dataplane")
    assert [(entry["method"], entry["path"], entry["status"]) for entry in logged] == [
        ("POST", f"/dataplane/aoai-dataplane/openai/deployments/{CHAT_DEPLOYMENT}/chat/completions", 200)
    ]
    assert logged[0]["query"] == {"api-version": "2024-10-21"}
    assert control.stats()["requests"]["dataplane"] == 1


def test_response_headers_and_rate_limit_counters(dataplane: DataPlane) -> None:
    client = dataplane.client()
    remaining = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model=CHAT_DEPLOYMENT,
            # Long enough that a call spends far more tokens than the bucket refills between two calls
            # (10,000 a minute is ~167 a second), however slow the machine.
            messages=[{"role": "user", "content": "word " * 2000}],
            extra_headers={"x-ms-client-request-id": "client-42"},
        )
        headers = raw.headers
        assert headers["apim-request-id"]
        assert headers["x-request-id"]
        assert headers["x-ms-region"] == "eastus2"
        assert headers["x-ms-client-request-id"] == "client-42"
        remaining.append((int(headers["x-ratelimit-remaining-requests"]), int(headers["x-ratelimit-remaining-tokens"])))
    (requests_1, tokens_1), (requests_2, tokens_2) = remaining
    # Capacity 10: 60 requests and 10,000 tokens a minute, both refilling continuously.
    assert requests_1 < 60 and requests_2 < 60
    assert tokens_2 < tokens_1 < 10_000


def test_tool_call_is_parsed_by_the_sdk(dataplane: DataPlane) -> None:
    client = dataplane.client()
    completion = client.chat.completions.create(
        model=CHAT_DEPLOYMENT,
        messages=[{"role": "user", "content": "weather in Lund"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"  # the first tool
    assert json.loads(call.function.arguments) == {"echo": "weather in Lund"}

    again = client.chat.completions.create(
        model=CHAT_DEPLOYMENT,
        messages=[{"role": "user", "content": "weather in Lund"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
    )
    assert again.choices[0].message.tool_calls is not None
    assert again.choices[0].message.tool_calls[0].id == call.id  # deterministic


def test_tool_choice_names_the_tool_or_turns_tools_off(dataplane: DataPlane) -> None:
    client = dataplane.client()
    forced = client.chat.completions.create(
        model=CHAT_DEPLOYMENT,
        messages=[{"role": "user", "content": "now"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert forced.choices[0].message.tool_calls is not None
    forced_call = forced.choices[0].message.tool_calls[0]
    assert isinstance(forced_call, ChatCompletionMessageFunctionToolCall)
    assert forced_call.function.name == "get_time"

    disabled = client.chat.completions.create(
        model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "now"}], tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert disabled.choices[0].message.content == "echo: now"
    assert disabled.choices[0].finish_reason == "stop"


def test_tool_results_can_be_sent_back(dataplane: DataPlane) -> None:
    completion = dataplane.client().chat.completions.create(
        model=CHAT_DEPLOYMENT,
        messages=[
            {"role": "user", "content": "weather in Lund"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "user", "content": "thanks"},
        ],
    )
    assert completion.choices[0].message.content == "echo: thanks"


def test_json_mode_answers_a_json_document(dataplane: DataPlane) -> None:
    completion = dataplane.client().chat.completions.create(
        model=CHAT_DEPLOYMENT,
        messages=[{"role": "user", "content": "reply in json please"}],
        response_format={"type": "json_object"},
    )
    content = completion.choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"echo": "reply in json please"}


def test_max_tokens_truncates_and_reports_length(dataplane: DataPlane) -> None:
    client = dataplane.client()
    for limit in ("max_tokens", "max_completion_tokens"):
        request: dict[str, Any] = {
            "model": CHAT_DEPLOYMENT,
            "messages": [{"role": "user", "content": "one two three four five"}],
            limit: 3,
        }
        completion = client.chat.completions.create(**request)
        assert completion.choices[0].message.content == "echo: one two"
        assert completion.choices[0].finish_reason == "length"
        assert completion.usage is not None
        assert completion.usage.completion_tokens == 3


def test_image_parts_are_described_by_their_hash(dataplane: DataPlane) -> None:
    client = dataplane.client()
    first, second = b"\x89PNG first image bytes", b"\x89PNG another image"
    answers = []
    for payload in (first, second):
        completion = client.chat.completions.create(
            model=CHAT_DEPLOYMENT, messages=[image_message("what is in this picture?", payload)]
        )
        answers.append(completion.choices[0].message.content)
        assert completion.usage is not None
        assert completion.usage.prompt_tokens == 5 + 85

    digest = hashlib.sha256(first).hexdigest()[:16]
    assert answers[0] == f"echo: what is in this picture? [image sha256={digest} bytes={len(first)} type=image/png]"
    assert answers[0] != answers[1]


def test_a_30_mb_image_request_is_accepted_and_logged_without_the_image(
    dataplane: DataPlane, control: SimulatorControl
) -> None:
    payload = bytes(range(256)) * (22 * 1024 * 1024 // 256)  # 22 MiB: about 30 MB once base64-encoded in JSON
    completion = dataplane.client().chat.completions.create(
        model=CHAT_DEPLOYMENT, messages=[image_message("big", payload)]
    )
    digest = hashlib.sha256(payload).hexdigest()[:16]
    assert (
        completion.choices[0].message.content
        == f"echo: big [image sha256={digest} bytes={len(payload)} type=image/png]"
    )

    logged_url = control.requests("dataplane")[0]["body"]["messages"][0]["content"][1]["image_url"]["url"]
    sent_url = data_url(payload)
    assert logged_url == f"<elided {len(sent_url)} chars sha256={hashlib.sha256(sent_url.encode()).hexdigest()}>"


def test_content_filter_trigger_gives_azures_400(dataplane: DataPlane) -> None:
    client = dataplane.client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "please trigger-content-filter now"}]
        )
    error = caught.value
    assert error.status_code == 400
    assert error.code == "content_filter"
    assert error.param == "prompt"
    assert isinstance(error.body, dict)
    inner = error.body["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    assert inner["content_filter_result"]["jailbreak"] == {"filtered": True, "detected": True}
    assert inner["content_filter_result"]["violence"] == {"filtered": False, "severity": "safe"}
    assert "content management policy" in error.body["message"]

    # Only the whole word triggers it.
    near_miss = client.chat.completions.create(
        model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "no-trigger-content-filters here"}]
    )
    assert near_miss.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages[0].content[0].type"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,***"}}],
                    }
                ]
            },
            "messages",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]},
            "messages",
        ),
        ({"messages": [{"role": "tool", "content": "42"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "tool", "tool_call_id": "call_9", "content": "42"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"}, "tool_choice"),
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "max_tokens"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "yaml"}},
            "response_format.type",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": True}},
            "stream_options",
        ),
    ],
)
def test_invalid_bodies_are_refused_in_openais_shape(dataplane: DataPlane, body: Any, param: str) -> None:
    response = dataplane.chat(body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] is None
    assert error["message"]


def test_a_body_that_is_not_json_is_refused(dataplane: DataPlane) -> None:
    response = dataplane.session.post(
        f"{dataplane.endpoint}/openai/deployments/{CHAT_DEPLOYMENT}/chat/completions",
        params={"api-version": "2024-10-21"},
        data=b"{not json",
        headers={"Authorization": f"Bearer {dataplane.token_provider()}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
