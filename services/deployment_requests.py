"""What callers send to change a deployment: the PUT and PATCH bodies, names and SKUs, checked before ARM."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator

from .errors import ValidationError
from .lifecycle_tags import LIFECYCLE_FIELDS, TagChanges, TtlHours, lifecycle_changes
from .validation import StrictModel, parse_model
from .web import RawBody, parse_json_object

DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")
SKU_NAMES = (
    "Standard",
    "GlobalStandard",
    "DataZoneStandard",
    "DeveloperTier",
    "ProvisionedManaged",
    "GlobalProvisionedManaged",
    "DataZoneProvisionedManaged",
)
_SKU_BY_LOWER = {name.lower(): name for name in SKU_NAMES}
MAX_CAPACITY = 100_000

# Printable ASCII without spaces or '/': fine-tuned ids look like `gpt-4o-mini-2024-07-18.ft-0123abcd`,
# checkpoints like `ftchkpt-…` or `….ft-…:ckpt-step-10`.
ModelId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x2e\x30-\x7e]{1,256}$")]
ShortText = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^<>%&\\?/]+$")]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Tags = Annotated[dict[TagKey, TagValue], Field(max_length=50)]
Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY)]
RaiPolicyName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
UpgradeOption = Literal["OnceNewDefaultVersionAvailable", "OnceCurrentVersionExpired", "NoAutoUpgrade"]

PUT_EXAMPLE = '{"model": "gpt-4o-mini-2024-07-18.ft-0123abcd", "sku": {"name": "Standard", "capacity": 1}}'
PATCH_EXAMPLE = '{"capacity": 40}'
_HINTS = {"model": "a model id is printable ASCII with no spaces or '/', e.g. gpt-4o-mini-2024-07-18.ft-0123abcd"}


def canonical_sku(name: str) -> str:
    canonical = _SKU_BY_LOWER.get(name.lower())
    if canonical is None:
        raise ValueError(f"unknown SKU '{name}'; use one of {', '.join(SKU_NAMES)}")
    return canonical


class SkuRequest(StrictModel):
    name: str | None = None
    capacity: Capacity | None = None

    @field_validator("name")
    @classmethod
    def _known_sku(cls, value: str | None) -> str | None:
        return None if value is None else canonical_sku(value)


class ExpiryFields(StrictModel):
    """When a deployment (or serverless endpoint) expires: the sweep deletes it then (stored as an ARM tag)."""

    expiresAt: str | None = None
    ttlHours: TtlHours | None = None

    def lifecycle(self) -> TagChanges:
        """The tag changes asked for; a bad expiry is a 400 before anything is sent."""
        given = self.model_fields_set & set(LIFECYCLE_FIELDS)
        return lifecycle_changes(self.model_dump(include=given), given)


class LifecycleFields(ExpiryFields):
    """Expiry, and whether the sweep keeps a seldom-used deployment alive (stored as ARM tags)."""

    keepAlive: bool | None = None


class DeploymentRequest(LifecycleFields):
    """Body of PUT /deployments/{name}."""

    model: ModelId
    version: ShortText | None = None
    format: ShortText | None = None
    sku: SkuRequest | None = None
    source: str | None = None
    raiPolicyName: RaiPolicyName | None = None
    versionUpgradeOption: UpgradeOption | None = None
    tags: Tags | None = None


class ScaleRequest(LifecycleFields):
    """Body of PATCH /deployments/{name}: a capacity, a sku, and/or tags."""

    capacity: Capacity | None = None
    sku: SkuRequest | None = None
    tags: Tags | None = None


def parse_put(raw: RawBody | dict[str, Any]) -> DeploymentRequest:
    data = raw if isinstance(raw, dict) else parse_json_object(raw, example=PUT_EXAMPLE)
    return parse_model(DeploymentRequest, data, hints=_HINTS)


def parse_patch(raw: RawBody | dict[str, Any]) -> ScaleRequest:
    data = raw if isinstance(raw, dict) else parse_json_object(raw, example=PATCH_EXAMPLE)
    request = parse_model(ScaleRequest, data)
    if request.capacity is not None and request.sku is not None:
        raise ValidationError(
            'Send either capacity or sku, not both: {"capacity": 40} or '
            '{"sku": {"name": "GlobalStandard", "capacity": 40}}.',
            target="capacity",
        )
    lifecycle = request.model_fields_set & set(LIFECYCLE_FIELDS)
    if request.capacity is None and request.sku is None and request.tags is None and not lifecycle:
        raise ValidationError(f"Nothing to change. Send for example {PATCH_EXAMPLE}.", code="MissingRequestBody")
    return request


def check_name(name: str, *, target: str = "name") -> None:
    if not DEPLOYMENT_NAME.fullmatch(name):
        raise ValidationError(
            f"Deployment name '{name[:80]}' is not valid: use 2-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit.",
            code="InvalidDeploymentName",
            target=target,
        )
