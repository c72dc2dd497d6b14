"""LIST pages through seeded deployments with absolute nextLinks, as ARM does."""

from __future__ import annotations

from localdev.simulator.control_client import SimulatorControl

from .conftest import ACCOUNT, RG, SUB, Arm


def seeded_config(count: int, page_size: int = 10) -> dict[str, object]:
    return {
        "pageSize": page_size,
        "provisioningDelaySeconds": 0.3,
        "accounts": [
            {
                "subscriptionId": SUB,
                "resourceGroup": RG,
                "accountName": ACCOUNT,
                "deployments": [
                    {
                        "name": f"dep-{index:02d}",
                        "model": {"format": "OpenAI", "name": "gpt-4o-mini", "version": "2024-07-18"},
                        "sku": {"name": "GlobalStandard", "capacity": 2},
                    }
                    for index in reversed(range(count))
                ],
            }
        ],
    }


def test_list_follows_next_links_over_seeded_deployments(arm: Arm, control: SimulatorControl) -> None:
    control.set_config(seeded_config(25))
    names: list[str] = []
    page_sizes: list[int] = []
    url = arm.url(arm.deployments())
    first = True
    while url:
        response = arm.call("GET", url, api_version="2024-10-01" if first else None)
        first = False
        assert response.status_code == 200, response.text
        page = response.json()
        page_sizes.append(len(page["value"]))
        names += [item["name"] for item in page["value"]]
        assert all(item["properties"]["provisioningState"] == "Succeeded" for item in page["value"])
        url = page.get("nextLink")
        if url:
            assert url.startswith(arm.base_url)
            assert "api-version=2024-10-01" in url and "$skipToken=" in url
    assert page_sizes == [10, 10, 5]
    assert names == [f"dep-{index:02d}" for index in range(25)]


def test_single_page_has_no_next_link(arm: Arm, control: SimulatorControl) -> None:
    control.set_config(seeded_config(3))
    page = arm.call("GET", arm.deployments()).json()
    assert len(page["value"]) == 3
    assert "nextLink" not in page


def test_empty_account_lists_nothing(arm: Arm) -> None:
    assert arm.call("GET", arm.deployments()).json() == {"value": []}


def test_seeded_deployments_count_towards_quota(arm: Arm, control: SimulatorControl) -> None:
    control.set_config(seeded_config(25))  # 25 x capacity 2 of the default quota 1000
    state = control.state()["accounts"][0]
    assert state["usedCapacity"] == 50
    assert len(state["deployments"]) == 25
