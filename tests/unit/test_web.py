"""HTTP boundary helpers: request ids, JSON bodies, the wait parameter."""

from __future__ import annotations

import uuid

import pytest

from services.errors import PayloadTooLarge, ValidationError
from services.web import parse_json_object, parse_wait, request_id_from


def test_request_id_echoes_a_sane_client_id() -> None:
    assert request_id_from({"x-ms-client-request-id": "abc-123"}) == "abc-123"


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 200, "evil\u00e9"])
def test_request_id_is_new_uuid_otherwise(given: str | None) -> None:
    headers = {} if given is None else {"x-ms-client-request-id": given}
    uuid.UUID(request_id_from(headers))


def test_json_object_parsing() -> None:
    assert parse_json_object(b'{"a": 1}', example="{}") == {"a": 1}
    with pytest.raises(PayloadTooLarge):
        parse_json_object(b'{"a": "' + b"x" * 100 + b'"}', example="{}", max_bytes=50)
    with pytest.raises(ValidationError, match="line 1 column 2"):
        parse_json_object(b"{,}", example="{}")
    with pytest.raises(ValidationError, match="UTF-8"):
        parse_json_object(b'{"a": "\xff"}', example="{}")


def test_wait() -> None:
    assert parse_wait(None, 60) == 0
    assert parse_wait("15", 60) == 15
    with pytest.raises(ValidationError):
        parse_wait("61", 60)
