"""Image analysis (`process_image`): one image and instructions in, the model's answer out.

Compatible with the original sample's contract (raw image body, `?instructions=`), without its flaws: the
image becomes a `data:` URL in memory (no shared temporary file, so concurrent requests cannot see each
other's images), and the credential and client are the process-wide ones.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import PayloadTooLarge, UnsupportedMediaType, ValidationError
from .inference import InferenceGateway, SlicedBody
from .results import ProxyResponse
from .web import RawBody, parse_int

MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_TOKENS = 1000
MAX_INSTRUCTIONS_CHARS = 8000

# Leading bytes of each image type Azure OpenAI vision models accept.
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(data: RawBody) -> str | None:
    """The MIME type from the bytes' signature (never from a header or file name), or None."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class ImageRequest:
    instructions: str
    deployment: str
    max_tokens: int
    mime: str


def check_request(
    image: RawBody,
    instructions: str | None,
    deployment: str | None,
    max_tokens: str | None,
    default_deployment: str | None,
) -> ImageRequest:
    """Everything that can be wrong with the request, found before any call to Azure."""
    if instructions is None or not instructions.strip():
        raise ValidationError(
            "instructions is required: POST /api/process_image?instructions=Describe+this+image with the image "
            "as the body.",
            code="MissingInstructions",
            target="instructions",
        )
    if len(instructions) > MAX_INSTRUCTIONS_CHARS:
        raise ValidationError(
            f"instructions is longer than {MAX_INSTRUCTIONS_CHARS} characters.",
            code="InvalidQueryParameter",
            target="instructions",
        )
    if not image:
        raise ValidationError("The request body is empty: send the image bytes as the body.", code="EmptyImage")
    if len(image) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"The image is over {MAX_IMAGE_BYTES // (1024 * 1024)} MB; send a smaller one.")
    mime = image_type(image)
    if mime is None:
        raise UnsupportedMediaType(
            "The body is not a JPEG, PNG, GIF or WEBP image (judged from its first bytes).",
            code="UnsupportedImageType",
        )
    tokens = parse_int(max_tokens, "max_tokens", 1, 100_000, DEFAULT_MAX_TOKENS)
    chosen = deployment or default_deployment
    if not chosen:
        raise ValidationError(
            "deployment is required: pass ?deployment=<name>, or set IMAGE_ANALYSIS_DEPLOYMENT (or GPT4V_DEPLOYMENT).",
            code="MissingDeployment",
            target="deployment",
        )
    return ImageRequest(instructions.strip(), chosen, tokens, mime)


# Raw bytes encoded per slice: a multiple of 3, so the slices' base64 forms join without padding in between.
SLICE_BYTES = 3 * 256 * 1024


def chat_body(request: ImageRequest, image: RawBody) -> SlicedBody:
    """The chat-completions JSON around the image as a data URL, sent as slices: the image is base64-encoded
    one slice at a time while it is uploaded, so its whole base64 form never exists in memory."""
    marker = "\x00IMAGE\x00"
    template = json.dumps(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": request.instructions},
                        {"type": "image_url", "image_url": {"url": f"data:{request.mime};base64,{marker}"}},
                    ],
                }
            ],
            "max_tokens": request.max_tokens,
        }
    ).encode()
    # The image part comes after the instructions, so the last marker is the one in the data URL even if the
    # instructions happen to contain the same text.
    before, after = template.rsplit(b"\\u0000IMAGE\\u0000", 1)
    encoded_length = (len(image) + 2) // 3 * 4

    def slices() -> Iterator[bytes]:
        yield before
        view = memoryview(image)
        for start in range(0, len(image), SLICE_BYTES):
            yield base64.b64encode(view[start : start + SLICE_BYTES])
        yield after

    return SlicedBody(len(before) + encoded_length + len(after), slices)


async def analyse_image(
    image: RawBody,
    *,
    instructions: str | None,
    deployment: str | None,
    max_tokens: str | None,
    account: str | None,
    want_json: bool,
    request_id: str,
    caller: str | None = None,
    gateway: InferenceGateway,
) -> ProxyResponse:
    settings = gateway.settings
    request = check_request(image, instructions, deployment, max_tokens, settings.image_deployment)
    chosen = gateway.allowed_account(account or settings.image_account, request.deployment)
    body, _ = await gateway.completion_json(
        chosen,
        request.deployment,
        chat_body(request, image),
        request_id=request_id,
        operation="process_image",
        caller=caller,
    )
    output = _output_text(body)
    if want_json:
        result = {"output": output, "deployment": request.deployment, "usage": body.get("usage")}
        return ProxyResponse(200, {"content-type": "application/json"}, body=json.dumps(result).encode())
    return ProxyResponse(200, {"content-type": "text/plain; charset=utf-8"}, body=output.encode())


def _output_text(body: dict[str, Any]) -> str:
    choices = body.get("choices") or []
    if not choices:
        return ""
    message = choices[0].get("message") or {}
    content = message.get("content")
    return content if isinstance(content, str) else ""
