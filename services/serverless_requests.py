"""What callers send to create or change a serverless endpoint: its name and the PUT body, checked before ARM."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from .deployment_requests import ExpiryFields, Tags
from .errors import ValidationError
from .foundry_models import check_model_reference, marketplace_model
from .validation import parse_model
from .web import RawBody, parse_json_object

ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,51}$")
PUT_EXAMPLE = '{"model": "my-llama-ft"}'


class EndpointRequest(ExpiryFields):
    """PUT /serverless-endpoints/{name}: only `model` is required; `expiresAt` / `ttlHours` / `keepAlive` as for
    deployments, kept as the endpoint's tag (the sweep deletes an endpoint past its expiry); no `keepAlive`."""

    model: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    contentSafety: Literal["Enabled", "Disabled"] | None = None
    marketplaceModel: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    tags: Tags | None = Field(default=None)


def check_endpoint_name(name: str) -> None:
    if not ENDPOINT_NAME.match(name):
        raise ValidationError(
            f"'{name[:80]}' is not a serverless endpoint name: 1-52 letters, digits or '-', starting with a letter.",
            code="InvalidEndpointName",
            target="name",
        )


def parse_endpoint_put(raw: RawBody | dict[str, Any]) -> EndpointRequest:
    data = raw if isinstance(raw, dict) else parse_json_object(raw, example=PUT_EXAMPLE)
    request = parse_model(EndpointRequest, data)
    request.lifecycle()  # a bad expiry is refused here, before anything is recorded or sent
    check_model_reference(request.model)
    if request.marketplaceModel is not None:
        marketplace_model(request.marketplaceModel)
    return request
