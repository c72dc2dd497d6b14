"""SimulatorControl: a typed wrapper over the simulator's /_sim API, for tests."""

from __future__ import annotations

import time
from typing import Any

import requests


class SimulatorControl:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, path: str, json_body: Any = None, **params: str) -> Any:
        response = self._session.request(
            method, f"{self.base_url}/_sim{path}", json=json_body, params=params or None, timeout=self._timeout
        )
        if response.status_code >= 400:
            raise RuntimeError(f"simulator {method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/health")
        return result

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except (requests.ConnectionError, requests.Timeout, RuntimeError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simulator at {self.base_url} not ready after {timeout}s") from None
                time.sleep(0.05)

    def get_config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/config")
        return result

    def set_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Replace the config; resets deployments, faults and the request log."""
        result: dict[str, Any] = self._call("PUT", "/config", config)
        return result

    def patch_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Replace some top-level keys; deployments are kept."""
        result: dict[str, Any] = self._call("PATCH", "/config", changes)
        return result

    def reset(self) -> None:
        self._call("POST", "/reset")

    def add_fault(self, **spec: Any) -> str:
        """Keyword names are the JSON ones: scope, method, pathContains, status, retryAfter, count, ..."""
        created: dict[str, Any] = self._call("POST", "/faults", spec)
        return str(created["id"])

    def throttle_data_plane(
        self, retry_after_seconds: float = 1, *, count: int = 1, path_contains: str = "/chat/completions"
    ) -> str:
        """Answer the next `count` matching data-plane calls with Azure OpenAI's 429 and its retry headers."""
        return self.add_fault(
            scope="dataplane",
            pathContains=path_contains,
            status=429,
            retryAfter=retry_after_seconds,
            retryAfterMs=int(retry_after_seconds * 1000),
            count=count,
        )

    def data_plane_endpoint(self, account_name: str) -> str:
        """What `openai.AzureOpenAI(azure_endpoint=...)` takes for this account."""
        return f"{self.base_url}/dataplane/{account_name}"

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")["value"]
        return result

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def requests(self, scope: str | None = None) -> list[dict[str, Any]]:
        params = {"scope": scope} if scope else {}
        result: list[dict[str, Any]] = self._call("GET", "/requests", **params)["value"]
        return result

    def clear_requests(self) -> None:
        """Clears the request log and the stats counters."""
        self._call("DELETE", "/requests")

    def hold_operations(self) -> None:
        """Stop ARM operations where they are: nothing running finishes until release_operations().

        Makes a provisioning window explicit: a request sent while held lands inside it, however slow the
        machine. Needs a non-zero provisioningDelaySeconds (with 0 a change completes in its own request).
        """
        self._call("POST", "/operations/hold")

    def release_operations(self) -> None:
        """Let held operations run on; each takes the rest of its delay. A reset or new config also releases."""
        self._call("POST", "/operations/release")

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def change_serverless_endpoint(self, workspace: str, name: str, **changes: Any) -> None:
        """A Foundry serverless endpoint changed outside ARM: `suspended=True|False`, `regenerate="Primary"`."""
        self._call("POST", f"/foundry/endpoints/{workspace}/{name}", changes)

    def foundry_state(self) -> dict[str, Any]:
        """Foundry projects: endpoints with their states, marketplace subscriptions (never a key)."""
        result: dict[str, Any] = self._call("GET", "/foundry/state")
        return result

    def usage(self) -> list[dict[str, Any]]:
        """The inference calls the data plane served, per deployment (what the metrics endpoint reports)."""
        result: list[dict[str, Any]] = self._call("GET", "/usage")["value"]
        return result

    def shift_last_use(self, account_name: str, deployment: str, days: float) -> dict[str, Any]:
        """Move a deployment's calls (and its creation time) `days` into the past: it then looks idle that long."""
        body = {"accountName": account_name, "deployment": deployment, "days": days}
        result: dict[str, Any] = self._call("POST", "/usage/shift", body)
        return result

    def close(self) -> None:
        self._session.close()
