"""Queue messages read and checked: plain and base64 JSON, and each reason a message is Rejected."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from services.queue_messages import Rejected, parse

DEPLOY = {
    "action": "deploy",
    "name": "support-bot",
    "account": "main",
    "requestId": "run-42",
    "requestedBy": "pipeline",
    "body": {"model": "gpt-4o-mini-2024-07-18.ft-0123abcd"},
}


def test_plain_and_base64_messages_read_the_same() -> None:
    plain = parse(json.dumps(DEPLOY), "msg-1")
    encoded = parse(base64.b64encode(json.dumps(DEPLOY).encode()).decode(), "msg-2")
    assert plain == encoded
    assert (plain.action, plain.name, plain.kind, plain.alias) == ("deploy", "support-bot", "account", "main")
    assert plain.request_id == "run-42" and plain.requested_by == "pipeline"


def test_request_id_defaults_to_the_message_id_and_the_alias_to_the_default() -> None:
    message = {key: value for key, value in DEPLOY.items() if key not in ("requestId", "account")}
    request = parse(json.dumps(message), "queue-message-id")
    assert request.request_id == "queue-message-id" and request.alias is None


def test_a_project_target_is_its_own_kind() -> None:
    message = {**{k: v for k, v in DEPLOY.items() if k != "account"}, "project": "p1"}
    assert parse(json.dumps(message), "m").kind == "project"


@pytest.mark.parametrize(
    ("change", "code", "says"),
    [
        ({"action": "explode"}, "UnknownAction", "action must be one of deploy, scale, delete"),
        ({"name": "bad name"}, "InvalidDeploymentName", "is not valid"),
        ({"name": 7}, "InvalidMessage", "name (the deployment's name) is required"),
        ({"body": None}, "InvalidMessage", "body is required for deploy"),
        ({"project": "p1"}, "InvalidMessage", "account or project, not both"),
        ({"requestId": "has space"}, "InvalidMessage", "requestId must be"),
        ({"colour": "red"}, "InvalidMessage", "Unknown field(s) colour"),
        ({"requestedBy": "x" * 300}, "InvalidMessage", "requestedBy must be"),
        ({"action": "delete"}, "InvalidMessage", "A delete takes no body"),
    ],
)
def test_each_problem_is_rejected_with_what_was_read(change: dict[str, Any], code: str, says: str) -> None:
    with pytest.raises(Rejected) as raised:
        parse(json.dumps({**DEPLOY, **change}), "m")
    assert raised.value.code == code and says in raised.value.message
    if change.get("requestId") is None:
        assert raised.value.fields["requestId"] == "run-42"


@pytest.mark.parametrize("text", ["not json", "[1, 2]", base64.b64encode(b"not json either").decode(), ""])
def test_what_is_not_a_json_object_is_rejected(text: str) -> None:
    with pytest.raises(Rejected) as raised:
        parse(text, "m")
    assert raised.value.code == "InvalidMessage"


def test_an_event_grid_delivery_is_read_as_its_data() -> None:
    request = {key: value for key, value in DEPLOY.items() if key != "requestId"}
    event = {"id": "evt-1", "eventType": "Contoso.Deploy", "subject": "x", "dataVersion": "1", "data": request}
    cloud = {"id": "evt-2", "specversion": "1.0", "type": "Contoso.Deploy", "source": "/x", "data": DEPLOY}
    assert parse(json.dumps(event), "msg").request_id == "evt-1"
    assert parse(json.dumps(cloud), "msg").request_id == "run-42"
