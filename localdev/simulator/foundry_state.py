"""Serverless endpoints and marketplace subscriptions of the simulated Foundry projects, with lazily computed states.

As for deployments (state.py), nothing moves in the background: each read settles the operations whose time is
up, on the operations' own clock (`SimulatorState.now()`), so holding operations holds these too.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from .foundry_config import FoundryProjectConfig
from .state import utc_now

ProjectKey = tuple[str, str, str]


@dataclass
class EndpointOperation:
    """A serverless endpoint's asynchronous PUT or DELETE; done once its duration has passed."""

    op_id: str
    kind: str  # create, update, delete
    project: ProjectKey
    endpoint_key: str
    subscription_id: str
    location: str
    started: float
    duration: float

    def is_done(self, now: float) -> bool:
        return now - self.started >= self.duration

    def status(self, now: float) -> str:
        return "Succeeded" if self.is_done(now) else "InProgress"

    def path(self, collection: str) -> str:
        """`collection`: mfeOperationsStatus (Azure-AsyncOperation) or mfeOperationResults (Location)."""
        return (
            f"/subscriptions/{self.subscription_id}/providers/Microsoft.MachineLearningServices"
            f"/locations/{self.location}/{collection}/{self.op_id}"
        )


def new_key() -> str:
    return secrets.token_hex(16)


@dataclass
class ServerlessEndpoint:
    name: str
    model_id: str
    content_safety: str
    tags: dict[str, str]
    location: str
    created_at: datetime
    created_by: str
    marketplace_subscription_id: str | None = None
    primary_key: str = field(default_factory=new_key, repr=False)
    secondary_key: str = field(default_factory=new_key, repr=False)
    suspended: bool = False
    operation: EndpointOperation | None = None

    def provisioning_state(self, now: float) -> str:
        running = self.operation
        if running is None or running.is_done(now):
            return "Succeeded"
        return {"create": "Creating", "update": "Updating", "delete": "Deleting"}[running.kind]

    def endpoint_state(self, now: float) -> str:
        running = self.operation
        if running is not None and not running.is_done(now) and running.kind in ("create", "delete"):
            return "Creating" if running.kind == "create" else "Deleting"
        return "Suspended" if self.suspended else "Online"

    def is_busy(self, now: float) -> bool:
        return self.operation is not None and not self.operation.is_done(now)

    def accepts(self, key: str) -> bool:
        return secrets.compare_digest(key, self.primary_key) or secrets.compare_digest(key, self.secondary_key)


@dataclass
class MarketplaceSubscription:
    name: str
    model_id: str
    created_at: datetime
    created_by: str


@dataclass
class ProjectState:
    config: FoundryProjectConfig
    endpoints: dict[str, ServerlessEndpoint] = field(default_factory=dict)  # keyed by lower-cased name
    subscriptions: dict[str, MarketplaceSubscription] = field(default_factory=dict)

    def subscription_for(self, model_id: str) -> MarketplaceSubscription | None:
        return next((s for s in self.subscriptions.values() if s.model_id.lower() == model_id.lower()), None)

    def settle(self, now: float) -> None:
        for key, endpoint in list(self.endpoints.items()):
            running = endpoint.operation
            if running is not None and running.is_done(now):
                if running.kind == "delete":
                    del self.endpoints[key]
                else:
                    endpoint.operation = None


class FoundryState:
    """Every simulated Foundry project and every endpoint operation ever started (late polls still answer)."""

    def __init__(self, projects: Iterable[FoundryProjectConfig]) -> None:
        self.projects: dict[ProjectKey, ProjectState] = {}
        self.operations: dict[str, EndpointOperation] = {}
        self.reseed(projects)

    def reseed(self, projects: Iterable[FoundryProjectConfig]) -> None:
        self.projects = {project.key: ProjectState(project) for project in projects}
        self.operations = {}

    def reconfigure(self, projects: Iterable[FoundryProjectConfig]) -> None:
        kept: dict[ProjectKey, ProjectState] = {}
        for project in projects:
            existing = self.projects.get(project.key)
            if existing is None:
                kept[project.key] = ProjectState(project)
            else:
                existing.config = project
                kept[project.key] = existing
        self.projects = kept

    def settle(self, now: float) -> None:
        for project in self.projects.values():
            project.settle(now)

    def project(self, subscription_id: str, resource_group: str, workspace: str) -> ProjectState | None:
        return self.projects.get((subscription_id.lower(), resource_group.lower(), workspace.lower()))

    def start(
        self, kind: str, project: ProjectState, endpoint: ServerlessEndpoint, now: float, duration: float
    ) -> EndpointOperation:
        operation = EndpointOperation(
            op_id=str(uuid.uuid4()),
            kind=kind,
            project=project.config.key,
            endpoint_key=endpoint.name.lower(),
            subscription_id=project.config.subscription_id,
            location=project.config.location,
            started=now,
            duration=duration,
        )
        endpoint.operation = operation
        self.operations[operation.op_id] = operation
        return operation


def stamp() -> datetime:
    return utc_now()
