"""A deployment as ARM has it (`CurrentDeployment`) and as a PUT wants it (`DesiredDeployment`).

ARM's PUT replaces the whole resource, so the desired state is always complete: what the request says,
then, on an existing deployment, what it has now, then the creation defaults. A field left out of a PUT
therefore keeps its current value (content filter, upgrade option, tags, SKU, capacity) instead of falling
back to ARM's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .deployment_requests import DeploymentRequest

TERMINAL_STATES = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class CurrentDeployment:
    """The parts of an ARM deployment resource this service compares and reports."""

    resource: dict[str, Any]

    def _object(self, value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    @property
    def _properties(self) -> dict[str, Any]:
        return self._object(self.resource.get("properties"))

    @property
    def _model(self) -> dict[str, Any]:
        return self._object(self._properties.get("model"))

    @property
    def _sku(self) -> dict[str, Any]:
        return self._object(self.resource.get("sku"))

    @property
    def model_format(self) -> str:
        return str(self._model.get("format") or "")

    @property
    def model_name(self) -> str:
        return str(self._model.get("name") or "")

    @property
    def model_version(self) -> str:
        return str(self._model.get("version") or "")

    @property
    def model_source(self) -> str | None:
        source = self._model.get("source") or self._model.get("sourceAccount")
        return str(source) if source else None

    @property
    def sku_name(self) -> str:
        return str(self._sku.get("name") or "")

    @property
    def capacity(self) -> int:
        return int(self._sku.get("capacity") or 0)

    @property
    def rai_policy_name(self) -> str | None:
        value = self._properties.get("raiPolicyName")
        return str(value) if value is not None else None

    @property
    def version_upgrade_option(self) -> str | None:
        value = self._properties.get("versionUpgradeOption")
        return str(value) if value is not None else None

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.resource.get("tags") or {})

    @property
    def rate_limits(self) -> Any:
        return self._properties.get("rateLimits")

    @property
    def state(self) -> str:
        return str(self._properties.get("provisioningState") or "Succeeded")

    @property
    def in_progress(self) -> bool:
        return self.state.lower() not in TERMINAL_STATES


@dataclass(frozen=True)
class DesiredDeployment:
    """What a deployment should look like, in ARM terms (source as an ARM account id)."""

    model_format: str
    model_name: str
    model_version: str
    model_source: str | None
    sku_name: str
    capacity: int
    rai_policy_name: str | None
    version_upgrade_option: str | None
    tags: dict[str, str] | None  # None: send none (ARM's PUT then leaves the deployment without tags)

    def arm_body(self, source_field: str = "source") -> dict[str, Any]:
        """The PUT body; `source_field` is `sourceAccount` for a source account in another tenant."""
        model: dict[str, Any] = {"format": self.model_format, "name": self.model_name, "version": self.model_version}
        if self.model_source:
            model[source_field] = self.model_source
        properties: dict[str, Any] = {"model": model}
        if self.rai_policy_name:
            properties["raiPolicyName"] = self.rai_policy_name
        if self.version_upgrade_option:
            properties["versionUpgradeOption"] = self.version_upgrade_option
        body: dict[str, Any] = {"sku": {"name": self.sku_name, "capacity": self.capacity}, "properties": properties}
        if self.tags is not None:
            body["tags"] = self.tags
        return body

    def same_model_as(self, current: CurrentDeployment) -> bool:
        return (
            self.model_format.lower() == current.model_format.lower()
            and self.model_name == current.model_name
            and self.model_version == current.model_version
            and (self.model_source or "").lower() == (current.model_source or "").lower()
        )

    def matches(self, current: CurrentDeployment) -> bool:
        return (
            self.same_model_as(current)
            and self.sku_name.lower() == current.sku_name.lower()
            and self.capacity == current.capacity
            and self.rai_policy_name == current.rai_policy_name
            and self.version_upgrade_option == current.version_upgrade_option
            and (self.tags or {}) == current.tags
        )


def desired_state(
    request: DeploymentRequest, source_id: str | None, current: CurrentDeployment | None
) -> DesiredDeployment:
    """The full desired state: the request, then the current deployment's values, then creation defaults.

    The model's version and source belong to the model: they carry over only while the model stays the same.
    """
    sku = request.sku
    if current is None:
        return DesiredDeployment(
            model_format=request.format or "OpenAI",
            model_name=request.model,
            model_version=request.version or "1",
            model_source=source_id,
            sku_name=(sku.name if sku else None) or "Standard",
            capacity=(sku.capacity if sku else None) or 1,
            rai_policy_name=request.raiPolicyName,
            version_upgrade_option=request.versionUpgradeOption,
            tags=dict(request.tags) if request.tags is not None else None,
        )
    same_model = request.model == current.model_name
    kept_source = current.model_source if same_model and request.source is None else None
    return DesiredDeployment(
        model_format=request.format or current.model_format or "OpenAI",
        model_name=request.model,
        model_version=request.version or (current.model_version if same_model else "") or "1",
        model_source=source_id or kept_source,
        sku_name=(sku.name if sku else None) or current.sku_name or "Standard",
        capacity=(sku.capacity if sku else None) or current.capacity or 1,
        rai_policy_name=request.raiPolicyName or current.rai_policy_name,
        version_upgrade_option=request.versionUpgradeOption or current.version_upgrade_option,
        tags=dict(request.tags) if request.tags is not None else (current.tags or None),
    )
