"""Long-running ARM operations: polled the way azure-mgmt-core's ARMPolling does, within a caller's deadline.

A PUT, PATCH or DELETE that answers before it is done is followed through `Azure-AsyncOperation`, then
`Location`, then the resource itself, until a terminal state or the deadline. Polls start soon (1 s) and back
off (1, 2, 4 ... s, up to ARM_POLL_INTERVAL_SECONDS) unless ARM says when to come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .arm import ArmClient, ArmResponse
from .web import retry_after_seconds

TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled"})


@dataclass
class PollOutcome:
    """Where an operation stands: a terminal state, or still running when the deadline came."""

    state: str
    resource: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    retry_after: float | None = None
    gone: bool = False

    @property
    def terminal(self) -> bool:
        return self.state.lower() in TERMINAL_STATES


@dataclass
class LongRunningOperation:
    """An ARM mutation that answered before finishing; polled as azure-mgmt-core's ARMPolling does.

    Status link priority: `Azure-AsyncOperation`, then `Location`, then the resource itself.
    """

    client: ArmClient
    method: str
    resource_url: str
    initial: ArmResponse
    request_id: str | None = None
    polls: int = field(default=0, init=False)

    def poll_until(self, deadline: float) -> PollOutcome:
        """Poll until a terminal state or `deadline` (on the client's clock)."""
        clock = self.client.clock
        outcome = self._initial_outcome()
        while not outcome.terminal:
            interval = outcome.retry_after
            if interval is None:
                # ARM's operation answers often carry no Retry-After. A caller is waiting on this request, so
                # poll soon and back off (1, 2, 4 ... s) up to the configured interval.
                interval = min(2.0**self.polls, self.client.tuning.poll_interval_seconds)
            remaining = deadline - clock()
            if remaining <= 0:
                break
            self.client.sleep(min(interval, remaining))
            outcome = self._poll_once()
        if outcome.terminal and not outcome.gone and self.method in ("PUT", "PATCH"):
            final = self.client.send("GET", self.resource_url, request_id=self.request_id)
            if final.status == 200 and isinstance(final.body, dict):
                outcome.resource = final.body
            elif final.status == 404:
                outcome.resource = None  # gone since: a concurrent DELETE; the caller decides what to answer
        return outcome

    def _initial_outcome(self) -> PollOutcome:
        response = self.initial
        state = "InProgress"
        if self.method == "DELETE" and response.status in (200, 204):
            state = "Succeeded"
        elif isinstance(response.body, dict):
            state = _provisioning_state(response.body) or ("Succeeded" if response.status == 200 else state)
        if self.method == "DELETE" and state.lower() == "succeeded":
            return PollOutcome("Succeeded", gone=True)
        resource = response.body if isinstance(response.body, dict) and "properties" in response.body else None
        return PollOutcome(state, resource=resource, retry_after=retry_after_seconds(response.headers))

    def _poll_once(self) -> PollOutcome:
        self.polls += 1
        headers = self.initial.headers
        if headers.get("Azure-AsyncOperation"):
            return self._poll_async_operation(headers["Azure-AsyncOperation"])
        if headers.get("Location"):
            return self._poll_location(headers["Location"])
        return self._poll_resource()

    def _still_running(self, response: ArmResponse) -> PollOutcome | None:
        """A poll that ARM throttled or failed (after the client's own retries) says nothing about the
        operation: it is still running as far as anyone knows, and is polled again until the deadline."""
        if response.status in (408, 429) or response.status >= 500:
            return PollOutcome("InProgress", retry_after=retry_after_seconds(response.headers))
        return None

    def _poll_async_operation(self, url: str) -> PollOutcome:
        response = self._get(url)
        if (running := self._still_running(response)) is not None:
            return running
        if response.status >= 400:
            return PollOutcome("Failed", error=response.error())
        body = response.body if isinstance(response.body, dict) else {}
        status = str(body.get("status", "InProgress"))
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        outcome = PollOutcome(status, error=error, retry_after=retry_after_seconds(response.headers))
        if outcome.terminal and self.method == "DELETE":
            outcome.gone = status.lower() == "succeeded"
        return outcome

    def _poll_location(self, url: str) -> PollOutcome:
        response = self._get(url)
        if (running := self._still_running(response)) is not None:
            return running
        if response.status == 202:
            return PollOutcome("InProgress", retry_after=retry_after_seconds(response.headers))
        if response.status >= 400:
            return PollOutcome("Failed", error=response.error())
        resource = response.body if isinstance(response.body, dict) and "properties" in response.body else None
        return PollOutcome("Succeeded", resource=resource, gone=self.method == "DELETE")

    def _poll_resource(self) -> PollOutcome:
        response = self._get(self.resource_url)
        if (running := self._still_running(response)) is not None:
            return running
        if response.status == 404 and self.method == "DELETE":
            return PollOutcome("Succeeded", gone=True)
        if response.status >= 400:
            return PollOutcome("Failed", error=response.error())
        body = response.body if isinstance(response.body, dict) else {}
        return PollOutcome(
            _provisioning_state(body) or "Succeeded",
            resource=body,
            retry_after=retry_after_seconds(response.headers),
        )

    def _get(self, url: str) -> ArmResponse:
        return self.client.send("GET", self.client.with_api_version(url), request_id=self.request_id)


def _provisioning_state(resource: Mapping[str, Any]) -> str | None:
    properties = resource.get("properties")
    if isinstance(properties, dict) and isinstance(properties.get("provisioningState"), str):
        return str(properties["provisioningState"])
    return None
