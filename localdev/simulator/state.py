"""Accounts, deployments and long-running operations, with states computed lazily from elapsed time.

No background task moves anything forward: every read first calls `settle(now)`, which finishes
the operations whose delay has passed. That keeps the simulator deterministic and lets it pause
with the event loop (or a debugger) without drifting.

Operations run on their own clock, which tests can stop (`hold`) and restart (`release`): while held,
nothing running finishes or changes state, so "a second request inside the first one's provisioning
window" is a fact a test arranges, not a race against the wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from .config import AccountConfig, AccountKey, ModelSpec, SeedDeployment, SimulatorConfig, account_key

DEFAULT_RAI_POLICY = "Microsoft.DefaultV2"
SEEDING_PRINCIPAL = "azure-simulator-config"


class OperationKind(StrEnum):
    CREATE = "create"  # PUT of a new deployment
    UPDATE = "update"  # PUT of an existing deployment
    PATCH = "patch"
    DELETE = "delete"


@dataclass(frozen=True)
class OperationFailure:
    code: str
    message: str


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_etag() -> str:
    return f'"{uuid.uuid4()}"'


@dataclass
class Operation:
    """One asynchronous PUT, PATCH or DELETE; its status is a pure function of elapsed time."""

    op_id: str
    kind: OperationKind
    account: AccountKey
    deployment_key: str
    subscription_id: str
    location: str
    started: float  # monotonic clock, drives the state machine
    started_at: datetime  # wall clock, only for startTime/endTime
    duration: float
    failure: OperationFailure | None = None

    def is_done(self, now: float) -> bool:
        return now - self.started >= self.duration

    def in_first_third(self, now: float) -> bool:
        return now - self.started < self.duration / 3

    def status(self, now: float) -> str:
        """The Azure-AsyncOperation `status` field."""
        if self.is_done(now):
            return "Failed" if self.failure else "Succeeded"
        return "Accepted" if self.in_first_third(now) else "InProgress"

    def provisioning_state(self, now: float) -> str:
        """What the deployment's `properties.provisioningState` shows while this operation runs."""
        if self.is_done(now):
            return "Failed" if self.failure else "Succeeded"
        if self.kind is OperationKind.DELETE:
            return "Deleting"
        if self.kind is OperationKind.CREATE and not self.in_first_third(now):
            return "Creating"
        return "Accepted"

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.duration)

    def path(self, collection: str) -> str:
        """`collection` is operationStatuses (Azure-AsyncOperation) or operationResults (Location)."""
        return (
            f"/subscriptions/{self.subscription_id}/providers/Microsoft.CognitiveServices"
            f"/locations/{self.location}/{collection}/{self.op_id}"
        )


@dataclass
class Deployment:
    name: str
    model: ModelSpec
    sku_name: str
    capacity: int
    tags: dict[str, str] | None
    rai_policy_name: str
    version_upgrade_option: str | None
    created_at: datetime
    created_by: str
    modified_at: datetime
    modified_by: str
    etag: str = field(default_factory=new_etag)
    final_state: str = "Succeeded"  # shown when no operation is running
    operation: Operation | None = None

    def provisioning_state(self, now: float) -> str:
        return self.operation.provisioning_state(now) if self.operation else self.final_state

    def is_busy(self, now: float) -> bool:
        return self.operation is not None and not self.operation.is_done(now)

    @classmethod
    def from_seed(cls, seed: SeedDeployment) -> Deployment:
        now = utc_now()
        return cls(
            name=seed.name,
            model=seed.model,
            sku_name=seed.sku_name,
            capacity=seed.capacity,
            tags=None if seed.tags is None else dict(seed.tags),
            rai_policy_name=DEFAULT_RAI_POLICY,
            version_upgrade_option=None,
            created_at=now,
            created_by=SEEDING_PRINCIPAL,
            modified_at=now,
            modified_by=SEEDING_PRINCIPAL,
        )


@dataclass
class AccountState:
    config: AccountConfig
    deployments: dict[str, Deployment] = field(default_factory=dict)  # keyed by lower-cased name

    @classmethod
    def seeded(cls, config: AccountConfig) -> AccountState:
        return cls(config, {seed.name.lower(): Deployment.from_seed(seed) for seed in config.deployments})

    def find(self, name: str) -> Deployment | None:
        return self.deployments.get(name.lower())

    def is_busy(self, now: float) -> bool:
        return any(deployment.is_busy(now) for deployment in self.deployments.values())

    def used_capacity(self) -> int:
        return sum(deployment.capacity for deployment in self.deployments.values())

    def sorted_deployments(self) -> list[Deployment]:
        return sorted(self.deployments.values(), key=lambda deployment: deployment.name.lower())

    def settle(self, now: float) -> None:
        for key, deployment in list(self.deployments.items()):
            operation = deployment.operation
            if operation is None or not operation.is_done(now):
                continue
            if operation.kind is OperationKind.DELETE:
                del self.deployments[key]
            else:
                deployment.final_state = operation.status(now)
                deployment.operation = None


class SimulatorState:
    """All accounts and every operation ever started (kept so late status polls still answer)."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.accounts: dict[AccountKey, AccountState] = {}
        self.operations: dict[str, Operation] = {}
        self._held_at: float | None = None  # when operations were held, on `clock`
        self._held_for = 0.0  # seconds operations have been held in all, which their clock leaves out
        self.reseed(config.accounts)

    def reseed(self, accounts: Iterable[AccountConfig]) -> None:
        """Back to the configured seed deployments, forgetting every operation."""
        self.accounts = {account.key: AccountState.seeded(account) for account in accounts}
        self.operations = {}

    def reconfigure(self, accounts: Iterable[AccountConfig]) -> None:
        """Adopt new account settings but keep the deployments of accounts that still exist."""
        kept: dict[AccountKey, AccountState] = {}
        for account in accounts:
            existing = self.accounts.get(account.key)
            if existing is None:
                kept[account.key] = AccountState.seeded(account)
            else:
                existing.config = account
                kept[account.key] = existing
        self.accounts = kept

    def now(self) -> float:
        """The operations' clock: `clock` less the time they were held; it stands still while held."""
        now = self.clock() if self._held_at is None else self._held_at
        return now - self._held_for

    @property
    def held(self) -> bool:
        return self._held_at is not None

    def hold(self) -> None:
        """Stop every operation where it is (and new ones at their start) until `release`."""
        if self._held_at is None:
            self._held_at = self.clock()

    def release(self) -> None:
        """Let operations run on; each still takes the rest of its delay."""
        if self._held_at is not None:
            self._held_for += self.clock() - self._held_at
            self._held_at = None

    def settle(self) -> float:
        """Finish every operation whose time is up; returns the `now` the caller should render with."""
        now = self.now()
        for account in self.accounts.values():
            account.settle(now)
        return now

    def account(self, subscription_id: str, resource_group: str, name: str) -> AccountState | None:
        return self.accounts.get(account_key(subscription_id, resource_group, name))

    def start_operation(
        self,
        kind: OperationKind,
        account: AccountState,
        deployment: Deployment,
        duration: float,
        failure: OperationFailure | None = None,
    ) -> Operation:
        operation = Operation(
            op_id=str(uuid.uuid4()),
            kind=kind,
            account=account.config.key,
            deployment_key=deployment.name.lower(),
            subscription_id=account.config.subscription_id,
            location=account.config.location,
            started=self.now(),
            started_at=utc_now(),
            duration=duration,
            failure=failure,
        )
        deployment.operation = operation
        self.operations[operation.op_id] = operation
        return operation
