"""Image analysis input checks and body building, before anything reaches Azure."""

from __future__ import annotations

import base64
import json

import pytest

from services.errors import PayloadTooLarge, ServiceError, ValidationError
from services.images import MAX_IMAGE_BYTES, SLICE_BYTES, chat_body, check_request, image_type

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 32


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a" + b"\x00" * 8, "image/gif"),
        (WEBP, "image/webp"),
    ],
)
def test_type_from_signature(data: bytes, mime: str) -> None:
    assert image_type(data) == mime


@pytest.mark.parametrize("data", [b"%PDF-1.7", b"BM\x00\x00", b"RIFF\x00\x00\x00\x00WAVE", b"<svg/>", b"\xff\xd8"])
def test_other_bytes_are_not_images(data: bytes) -> None:
    assert image_type(data) is None


def test_checks() -> None:
    assert check_request(PNG, "Describe", None, None, "vision").max_tokens == 1000
    assert check_request(PNG, "Describe", "other", "7", "vision").deployment == "other"
    with pytest.raises(ValidationError, match="instructions"):
        check_request(PNG, None, None, None, "vision")
    with pytest.raises(ValidationError, match="empty"):
        check_request(b"", "Describe", None, None, "vision")
    with pytest.raises(PayloadTooLarge):
        check_request(PNG + b"\x00" * MAX_IMAGE_BYTES, "Describe", None, None, "vision")
    with pytest.raises(ServiceError) as raised:
        check_request(b"%PDF-1.7 ...", "Describe", None, None, "vision")
    assert (raised.value.status, raised.value.code) == (415, "UnsupportedImageType")
    with pytest.raises(ValidationError, match="max_tokens"):
        check_request(PNG, "Describe", None, "0", "vision")
    with pytest.raises(ValidationError, match="deployment"):
        check_request(PNG, "Describe", None, None, None)


def test_chat_body_carries_the_image_as_a_data_url() -> None:
    request = check_request(PNG, 'Say "hi" \x00IMAGE\x00', None, "50", "vision")
    sliced = chat_body(request, PNG)
    whole = b"".join(sliced.slices())
    assert sliced.length == len(whole)  # sent as Content-Length
    body = json.loads(whole)
    [message] = body["messages"]
    text, image = message["content"]
    assert text == {"type": "text", "text": 'Say "hi" \x00IMAGE\x00'}  # a marker-like text is left alone
    assert image["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert body["max_tokens"] == 50


@pytest.mark.parametrize("extra", [0, 1, 2])
def test_a_large_image_is_encoded_slice_by_slice_into_one_valid_data_url(extra: int) -> None:
    image = JPEG + bytes(range(256)) * ((2 * SLICE_BYTES) // 256) + b"\x07" * extra
    request = check_request(image, "Describe", None, None, "vision")
    sliced = chat_body(request, image)
    pieces = list(sliced.slices())
    assert max(len(piece) for piece in pieces) <= SLICE_BYTES * 4 // 3  # no piece holds the whole encoding
    assert len(pieces) >= 4
    whole = b"".join(pieces)
    assert sliced.length == len(whole)
    url = json.loads(whole)["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(url.removeprefix("data:image/jpeg;base64,"), validate=True) == image
    assert b"".join(sliced.slices()) == whole  # each attempt gets a fresh iterator
