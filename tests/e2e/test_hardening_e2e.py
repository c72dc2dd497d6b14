"""Hostile and malformed input over real HTTP: always a clear 4xx, never a traceback or a partial change;
and nothing secret in the logs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS
from services.auth import encode_principal
from tests.e2e.conftest import Api, Stack

MODEL = DEMO_ACCOUNTS[0].models[0]
DEEP = b'{"model": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # under the 64 KiB cap, far past any sane depth


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code"),
    [
        ("PUT", "/deployments/x1", b'{"model": "m.ft-1"}', {"Content-Type": "text/plain"}, 415, "UnsupportedMediaType"),
        (
            "PUT",
            "/deployments/x1",
            b"model=m.ft-1",
            {"Content-Type": "application/x-www-form-urlencoded"},
            415,
            "UnsupportedMediaType",
        ),
        (
            "PATCH",
            "/deployments/x1",
            b'{"capacity": 2}',
            {"Content-Type": "application/xml"},
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            "/openai/deployments/vision/chat/completions",
            b"{}",
            {"Content-Type": "text/csv"},
            415,
            "UnsupportedMediaType",
        ),
        ("PUT", "/deployments/x1", DEEP, {"Content-Type": "application/json"}, 400, "InvalidJson"),
        (
            "POST",
            "/openai/deployments/vision/chat/completions?api-version=2024-10-21",
            DEEP,
            {"Content-Type": "application/json"},
            400,
            "InvalidJson",
        ),
        ("PUT", "/deployments/x1", b'{"model": "\xff\xfe"}', {"Content-Type": "application/json"}, 400, "InvalidJson"),
        (
            "PUT",
            "/deployments/x1",
            b'{"model": "m.ft-1", "tags": {"k": "' + b"v" * 300 + b'"}}',
            {"Content-Type": "application/json"},
            400,
            "InvalidField",
        ),
        (
            "PUT",
            "/deployments/x1",
            b'{"model": "m.ft-1", "sku": {"name": "Standard", "capacity": 1e309}}',
            {"Content-Type": "application/json"},
            400,
            "InvalidField",
        ),
        (
            "PUT",
            "/deployments/x1",
            b'{"model": "m.ft-1", "sku": {"name": "Standard", "capacity": 99999999999999}}',
            {"Content-Type": "application/json"},
            400,
            "InvalidField",
        ),
        ("GET", "/audit?top=1000", b"", {}, 400, "InvalidQueryParameter"),
        ("GET", "/fine_tuning/jobs/ftjob-%3Cscript%3E", b"", {}, 400, "InvalidJobId"),
        (
            "POST",
            "/openai/deployments/vision/chat/completions?api-version=../../x",
            b"{}",
            {"Content-Type": "application/json"},
            400,
            "InvalidQueryParameter",
        ),
    ],
    ids=lambda value: value[:40].decode(errors="replace") if isinstance(value, bytes) else None,
)
def test_malformed_input_is_a_clear_4xx_and_changes_nothing(
    api: Api,
    sim: SimulatorControl,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    response = api.call(method, path, data=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "Traceback" not in response.text
    assert [r for r in sim.requests() if r["method"] != "GET"] == []


def test_huge_header_is_refused_without_a_traceback(api: Api, sim: SimulatorControl) -> None:
    response = api.call("GET", "/deployments", headers={"x-padding": "a" * 100_000})
    # 431 from the host past 32 KiB of headers (as Kestrel), or 400 when uvicorn's parser gives up first.
    assert response.status_code in (400, 431)
    assert "Traceback" not in response.text


PLANTED = {
    "caller api-key": "planted-api-key-5f1e0c",
    "caller bearer": "planted-bearer-token-a1b2c3",
    "prompt": "planted-prompt-text-9d8c7b",
    "principal email": "planted-person@contoso.example",
}


def test_logs_hold_no_tokens_prompts_or_principal_details(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.start_host(AUTH_MODE="entra", WEBSITE_AUTH_ENABLED="True")
    log_path = stack.folder / f"host-{len(stack.hosts) - 1}.log"
    principal = encode_principal(
        object_id="0c0ffee0-0000-4000-8000-000000000001",
        roles=["Inference.Invoke", "Deployments.Write", "Audit.Read"],
        name=PLANTED["principal email"],
    )
    headers = {"X-MS-CLIENT-PRINCIPAL": principal, "api-key": PLANTED["caller api-key"]}
    chat: dict[str, Any] = {"messages": [{"role": "user", "content": PLANTED["prompt"]}]}
    for stream in (False, True):
        response = api.call(
            "POST",
            "/openai/deployments/vision/chat/completions",
            json={**chat, "stream": stream},
            params={"api-version": "2024-10-21"},
            headers=headers,
        )
        assert response.status_code == 200
        assert PLANTED["prompt"] in response.text  # the echo came back to the caller...
    api.call(
        "POST",
        "/openai/deployments/vision/chat/completions",
        json=chat,
        params={"api-version": "2024-10-21"},
        headers={**headers, "Authorization": f"Bearer {PLANTED['caller bearer']}"},
    )
    api.call("PUT", "/deployments/leak-check", json={"model": MODEL}, params={"wait": "10"}, headers=headers)
    api.call(
        "POST",
        "/process_image",
        params={"instructions": PLANTED["prompt"]},
        data=b"\x89PNG\r\n\x1a\n" + b"x" * 9,
        headers=headers,
    )
    sim.add_fault(scope="identity", status=503, count=1)  # an error path too
    log = log_path.read_text()
    assert "inference" in log and "chat.completions" in log  # ...and the calls were logged
    for what, secret in PLANTED.items():
        assert secret not in log, f"{what} leaked into the log"
    assert not re.search(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ", log), "a JWT leaked into the log"
    assert principal not in log
