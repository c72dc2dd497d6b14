"""The inference gateway over real HTTP: the official openai SDK pointed at the service, simulator behind it."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import os
import time
from typing import Any

import openai
import pytest
import requests

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS
from tests.e2e.conftest import Api, Stack

MAIN, EAST = DEMO_ACCOUNTS
API_VERSION = "2024-10-21"
SUCCEEDED_JOB = MAIN.fine_tuning_jobs[0]
RUNNING_JOB = MAIN.fine_tuning_jobs[1]
SIGNATURES = {
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff\xe0",
    "image/gif": b"GIF89a",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
}


def client(api: Api, **kwargs: Any) -> openai.AzureOpenAI:
    # The caller's own credential is whatever its auth mode wants; the service never forwards it upstream.
    return openai.AzureOpenAI(
        azure_endpoint=f"{api.base_url}/api",
        api_version=API_VERSION,
        api_key=kwargs.pop("api_key", "caller-key-never-forwarded"),
        max_retries=0,
        **kwargs,
    )


def image(mime: str, size: int = 2048) -> bytes:
    return SIGNATURES[mime] + os.urandom(size)


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def dataplane(sim: SimulatorControl) -> list[dict[str, Any]]:
    return sim.requests("dataplane")


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_plain_chat_through_the_sdk(api: Api, sim: SimulatorControl) -> None:
    response = client(api).chat.completions.with_raw_response.create(model="vision", messages=ask("hello there"))
    completion = response.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert response.headers["apim-request-id"]
    assert response.headers["x-ratelimit-remaining-tokens"]
    [call] = dataplane(sim)
    assert call["path"].endswith("/dataplane/aoai-swedencentral/openai/deployments/vision/chat/completions")
    assert call["status"] == 200  # the simulator refuses an api-key header: the caller's key was not forwarded


def test_callers_bearer_token_is_not_forwarded(api: Api, sim: SimulatorControl) -> None:
    sdk = openai.AzureOpenAI(
        azure_endpoint=f"{api.base_url}/api", api_version=API_VERSION, azure_ad_token="caller-token", max_retries=0
    )
    assert sdk.chat.completions.create(model="vision", messages=ask("hi")).choices[0].message.content == "echo: hi"


def test_streaming_arrives_chunk_by_chunk(api: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"streamChunkDelayMs": 150})
    words = "one two three four five six"
    arrivals: list[float] = []
    pieces: list[str] = []
    started = time.monotonic()
    stream = client(api).chat.completions.create(model="vision", messages=ask(words), stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
            pieces.append(chunk.choices[0].delta.content)
        assert chunk.usage is None  # not asked for, so not relayed
    assert "".join(pieces).strip() == f"echo: {words}"
    assert len(arrivals) >= 6
    # Relayed as they come: the first word arrives long before the last (150 ms between upstream chunks).
    assert arrivals[-1] - arrivals[0] >= 0.5


def test_streaming_with_usage_when_asked(api: Api, sim: SimulatorControl) -> None:
    stream = client(api).chat.completions.create(
        model="vision", messages=ask("count me"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_async_client_plain_and_streaming(api: Api, sim: SimulatorControl) -> None:
    async def main() -> tuple[str | None, str]:
        sdk = openai.AsyncAzureOpenAI(
            azure_endpoint=f"{api.base_url}/api", api_version=API_VERSION, api_key="x", max_retries=0
        )
        plain = await sdk.chat.completions.create(model="vision", messages=ask("async hello"))
        stream = await sdk.chat.completions.create(model="vision", messages=ask("async stream"), stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await sdk.close()
        return plain.choices[0].message.content, text

    plain, streamed = asyncio.run(main())
    assert plain == "echo: async hello"
    assert streamed.strip() == "echo: async stream"


TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


def test_tool_calls_plain_and_streamed(api: Api, sim: SimulatorControl) -> None:
    sdk = client(api)
    message = sdk.chat.completions.create(model="vision", messages=ask("where is 42"), tools=TOOLS).choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "lookup_order"  # type: ignore[union-attr]
    assert json.loads(message.tool_calls[0].function.arguments) == {"echo": "where is 42"}  # type: ignore[union-attr]
    with sdk.chat.completions.stream(model="vision", messages=ask("where is 7"), tools=TOOLS) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "lookup_order"  # type: ignore[union-attr]


def test_json_mode(api: Api, sim: SimulatorControl) -> None:
    completion = client(api).chat.completions.create(
        model="vision", messages=ask("as json"), response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content or "") == {"echo": "as json"}


def test_image_content_parts(api: Api, sim: SimulatorControl) -> None:
    picture = image("image/png")
    url = "data:image/png;base64," + base64.b64encode(picture).decode()
    content: Any = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": url}}]
    answer = client(api).chat.completions.create(model="vision", messages=[{"role": "user", "content": content}])
    assert short_hash(picture) in (answer.choices[0].message.content or "")


def test_content_filter_error_passes_through(api: Api, sim: SimulatorControl) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client(api).chat.completions.create(model="vision", messages=ask("please trigger-content-filter now"))
    assert raised.value.code == "content_filter"
    body: Any = raised.value.body
    assert body["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert body["innererror"]["content_filter_result"]["jailbreak"]["filtered"] is True


def test_missing_deployment_is_404_from_upstream(api: Api, sim: SimulatorControl) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(api).chat.completions.create(model="not-deployed", messages=ask("hi"))
    assert raised.value.code == "DeploymentNotFound"


def test_expensive_429_passes_through_with_its_headers(api: Api, sim: SimulatorControl) -> None:
    sim.add_fault(scope="dataplane", status=429, code="RateLimitReached", retryAfter=7, retryAfterMs=7000, count=-1)
    with pytest.raises(openai.RateLimitError) as raised:
        client(api).chat.completions.create(model="vision", messages=ask("hi"))
    headers = raised.value.response.headers
    assert headers["retry-after"] == "7" and headers["retry-after-ms"] == "7000"
    assert len(dataplane(sim)) == 1  # not retried: a 7 s wait is the caller's to make


def test_cheap_429_is_retried_once(api: Api, sim: SimulatorControl) -> None:
    sim.add_fault(scope="dataplane", status=429, code="RateLimitReached", retryAfterMs=200, count=1)
    answer = client(api).chat.completions.create(model="vision", messages=ask("again"))
    assert answer.choices[0].message.content == "echo: again"
    assert [r["status"] for r in dataplane(sim)] == [429, 200]


def test_deployment_not_in_the_allow_list_is_403(api: Api, sim: SimulatorControl) -> None:
    sdk = openai.AzureOpenAI(
        azure_endpoint=f"{api.base_url}/api",
        api_version=API_VERSION,
        api_key="x",
        max_retries=0,
        default_query={"account": "east"},
    )
    with pytest.raises(openai.PermissionDeniedError) as raised:
        sdk.chat.completions.create(model="some-other", messages=ask("hi"))
    assert raised.value.code == "DeploymentNotAllowed"
    assert dataplane(sim) == []


@pytest.mark.parametrize(("body", "status"), [(b"{nope", 400), (b"[]", 400), (b"", 400)])
def test_bad_chat_bodies_never_reach_upstream(api: Api, sim: SimulatorControl, body: bytes, status: int) -> None:
    response = api.call(
        "POST", "/openai/deployments/vision/chat/completions", data=body, params={"api-version": API_VERSION}
    )
    assert response.status_code == status
    assert response.json()["error"]["code"]
    assert dataplane(sim) == []


# process_image


def process_image(api: Api, data: bytes, **params: str) -> requests.Response:
    params.setdefault("instructions", "Describe this image")
    headers = {"Accept": params.pop("accept")} if "accept" in params else {}
    return api.call("POST", "/process_image", data=data, params=params, headers=headers)


@pytest.mark.parametrize("mime", list(SIGNATURES))
def test_process_image_each_type(api: Api, sim: SimulatorControl, mime: str) -> None:
    picture = image(mime)
    response = process_image(api, picture)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith("echo: Describe this image")
    assert f"sha256={short_hash(picture)}" in response.text and f"type={mime}" in response.text


def test_process_image_json_answer(api: Api, sim: SimulatorControl) -> None:
    picture = image("image/jpeg")
    response = process_image(api, picture, accept="application/json", max_tokens="300")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"output", "deployment", "usage"}
    assert body["deployment"] == "vision" and short_hash(picture) in body["output"]
    sent = dataplane(sim)[0]["body"]
    assert sent["max_tokens"] == 300


@pytest.mark.parametrize(
    ("data", "params", "status", "code"),
    [
        (b"%PDF-1.7 not an image", {}, 415, "UnsupportedImageType"),
        (b"", {}, 400, "EmptyImage"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * (20 * 1024 * 1024), {}, 413, "PayloadTooLarge"),
        (b"\x89PNG\r\n\x1a\n", {"instructions": ""}, 400, "MissingInstructions"),
        (b"\x89PNG\r\n\x1a\n", {"max_tokens": "lots"}, 400, "InvalidQueryParameter"),
        (b"\x89PNG\r\n\x1a\n", {"deployment": "not-allowed", "account": "east"}, 403, "DeploymentNotAllowed"),
    ],
)
def test_process_image_bad_input(
    api: Api, sim: SimulatorControl, data: bytes, params: dict[str, str], status: int, code: str
) -> None:
    response = process_image(api, data, **params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert dataplane(sim) == []


def test_process_image_under_concurrency_each_gets_its_own_answer(api: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"dataPlaneLatencyMs": 50})
    pictures = [image("image/png", 4096 + i) for i in range(32)]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda p: process_image(api, p), pictures))
    assert [a.status_code for a in answers] == [200] * 32
    for picture, answer in zip(pictures, answers, strict=True):
        assert f"sha256={short_hash(picture)}" in answer.text


# Fine-tuning jobs


def test_fine_tuning_job_lookup(api: Api, sim: SimulatorControl) -> None:
    job = api.call("GET", f"/fine_tuning/jobs/{SUCCEEDED_JOB['id']}").json()
    assert job["status"] == "succeeded"
    assert job["fine_tuned_model"] == SUCCEEDED_JOB["fineTunedModel"]
    assert job["model"] == SUCCEEDED_JOB["model"]
    assert {c["id"] for c in job["checkpoints"]} == {c["id"] for c in SUCCEEDED_JOB["checkpoints"]}
    running = api.call("GET", f"/fine_tuning/jobs/{RUNNING_JOB['id']}").json()
    assert running["status"] == "running" and running["fine_tuned_model"] is None
    missing = api.call("GET", "/fine_tuning/jobs/ftjob-doesnotexist")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "FineTuningJobNotFound"


def test_deploy_from_job(api: Api, sim: SimulatorControl) -> None:
    response = api.call(
        "POST",
        f"/fine_tuning/jobs/{SUCCEEDED_JOB['id']}/deploy",
        params={"wait": "15"},
        json={"deployment": "from-job", "sku": {"name": "Standard", "capacity": 2}},
    )
    assert response.status_code == 201, response.text
    assert response.json()["model"]["name"] == SUCCEEDED_JOB["fineTunedModel"]
    [put] = [r for r in sim.requests("arm") if r["method"] == "PUT"]
    assert put["body"]["properties"]["model"]["name"] == SUCCEEDED_JOB["fineTunedModel"]


def test_deploy_checkpoint_from_job(api: Api, sim: SimulatorControl) -> None:
    checkpoint = SUCCEEDED_JOB["checkpoints"][0]["id"]
    response = api.call(
        "POST",
        f"/fine_tuning/jobs/{SUCCEEDED_JOB['id']}/deploy",
        params={"wait": "15"},
        json={"deployment": "from-checkpoint", "checkpoint": checkpoint},
    )
    assert response.status_code == 201, response.text
    assert response.json()["model"]["name"] == checkpoint


def test_deploy_from_running_job_stores_an_intent_and_deploys_nothing_yet(api: Api, sim: SimulatorControl) -> None:
    response = api.call("POST", f"/fine_tuning/jobs/{RUNNING_JOB['id']}/deploy", json={"deployment": "too-soon"})
    assert response.status_code == 202, response.text
    intent = response.json()
    assert intent["status"] == "Pending" and intent["jobId"] == RUNNING_JOB["id"] and intent["deployment"] == "too-soon"
    assert [r for r in sim.requests("arm") if r["method"] == "PUT"] == []


def test_deploy_unknown_checkpoint_is_400(api: Api, sim: SimulatorControl) -> None:
    response = api.call(
        "POST",
        f"/fine_tuning/jobs/{SUCCEEDED_JOB['id']}/deploy",
        json={"deployment": "x1", "checkpoint": "ftchkpt-nope"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "UnknownCheckpoint"


# Reuse


def test_token_endpoint_called_once_across_many_requests(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.configured()  # a fresh context: no token cached yet
    sdk = client(api)
    for i in range(40):
        sdk.chat.completions.create(model="vision", messages=ask(f"n{i}"))
    tokens = sim.stats()["tokenRequests"]
    assert tokens.get("https://cognitiveservices.azure.com") == 1
