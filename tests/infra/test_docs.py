"""docs/deploy.md stays in step with the templates: parameters, role ids, app roles, azd mappings."""

from __future__ import annotations

import json

from .bicep_tools import INFRA, REPO, template

DOC = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_every_main_parameter_is_documented() -> None:
    missing = [name for name in template("main.bicep")["parameters"] if f"`{name}`" not in DOC]
    assert not missing, f"docs/deploy.md does not document: {missing}"


def test_role_ids_are_documented() -> None:
    roles = template("modules/host-roles.bicep")["variables"]["roles"]["value"].values()
    main = template("main.bicep")
    ids = [
        *roles,
        main["variables"]["openAiContributorRoleId"]["value"],
        main["parameters"]["sourceAccountRoleDefinitionId"]["default"],
    ]
    assert all(role_id in DOC for role_id in ids)


def test_app_roles_are_documented() -> None:
    data = json.loads((INFRA / "entra" / "app-registration.json").read_text(encoding="utf-8"))
    for role in data["appRoles"]:
        assert f"`{role['value']}`" in DOC and role["id"] in DOC, role["value"]


def test_azd_mappings_are_documented() -> None:
    data = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    for name, entry in data["parameters"].items():
        variable = entry["value"][2:-1]
        assert f"| `{variable}` | `{name}`" in DOC, f"{variable} -> {name}"
