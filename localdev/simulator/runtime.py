"""The one mutable object behind an app: current config, state, faults, observations, token key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .config import SimulatorConfig, parse_config
from .faults import FaultRegistry
from .fine_tuning_config import FineTuningJobSeed
from .foundry_state import FoundryState
from .identity import TokenService
from .metrics import UsageLog
from .observe import Observer
from .state import SimulatorState


class SimulatorRuntime:
    """Only touched from the server's event loop, so no locking is needed."""

    def __init__(self, config: SimulatorConfig, identity_header: str, clock: Callable[[], float]) -> None:
        self.config = config
        self.identity_header = identity_header
        self.tokens = TokenService()  # survives config changes: issued tokens stay valid
        self.state = SimulatorState(config, clock)
        self.foundry = FoundryState(config.foundry_projects)  # on the same operations clock as `state`
        self.faults = FaultRegistry()
        self.observer = Observer()
        self.usage = UsageLog()  # the calls the data plane served, for the metrics endpoint
        self._clock = clock
        self.jobs_epoch = clock()  # fine-tuning jobs with finishAfterSeconds count from here

    def replace_config(self, raw: object) -> None:
        """A new config is a fresh start: seeded deployments only, no faults, empty log."""
        self.config = parse_config(raw)
        self.reset()

    def merge_config(self, changes: dict[str, Any]) -> None:
        """Top-level keys replace the current ones; deployments of accounts that remain are kept."""
        self.config = parse_config({**self.config.to_json(), **changes})
        self.state.reconfigure(self.config.accounts)
        self.foundry.reconfigure(self.config.foundry_projects)
        self.jobs_epoch = self._clock()

    def reset(self) -> None:
        self.state.reseed(self.config.accounts)
        self.foundry.reseed(self.config.foundry_projects)
        self.state.release()
        self.faults.clear()
        self.observer.clear()
        self.usage.clear()
        self.jobs_epoch = self._clock()

    def current_jobs(self, jobs: tuple[FineTuningJobSeed, ...]) -> tuple[FineTuningJobSeed, ...]:
        """The account's jobs as they stand now: a job with finishAfterSeconds has finished once that has passed."""
        elapsed = self._clock() - self.jobs_epoch
        return tuple(job.at(elapsed) for job in jobs)
