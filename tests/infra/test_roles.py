"""Role assignments: the right built-in roles, on the right scopes, to the app's identity, and nothing broader."""

from __future__ import annotations

from .bicep_tools import INFRA, Json, body, param_default, resources, template, walk

OPENAI_CONTRIBUTOR = "a001fd3d-188f-4b5d-821b-7da978bf7442"
OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
AZURE_AI_DEVELOPER = "64702f94-c441-49e6-a78b-ef80e0188fee"

# Roles that would give the app more than it needs (keys, or control of the resources themselves).
TOO_BROAD = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "25fbc0a9-bd7c-42a3-aa1a-3b75d497ee68": "Cognitive Services Contributor (can list keys)",
    "a97b65f3-24c7-4388-baec-2e87135dc908": "Cognitive Services User (can list keys)",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor (can list keys)",
}


def _assignments(relative: str) -> list[dict[str, Json]]:
    return [body(r) for r in resources(template(relative), "Microsoft.Authorization/roleAssignments").values()]


def _role_id(assignment: dict[str, Json]) -> Json:
    function = assignment["properties"]["roleDefinitionId"]["function"]
    assert function["type"] == "subscription_resource_id"
    values = list(function["parameters"].values())
    assert values[0] == "Microsoft.Authorization/roleDefinitions"
    return values[1]


def test_every_assignment_is_to_the_app_identity_as_service_principal() -> None:
    for relative in ("modules/host-roles.bicep", "modules/openai-role.bicep", "modules/foundry-role.bicep"):
        for assignment in _assignments(relative):
            assert assignment["properties"]["principalId"] == "principalId", relative
            # ServicePrincipal avoids the replication race on a just-created identity.
            assert assignment["properties"]["principalType"] == "ServicePrincipal", relative
            name = assignment["name"]["function"]
            assert name["type"] == "guid", f"{relative}: role assignment names are guid(scope, principal, role)"
            assert "principalId" in name["parameters"].values(), relative


def test_host_roles_on_storage_and_app_insights() -> None:
    doc = template("modules/host-roles.bicep")
    roles = doc["variables"]["roles"]["value"]
    assert set(roles.values()) == {
        STORAGE_BLOB_DATA_OWNER,
        STORAGE_QUEUE_DATA_CONTRIBUTOR,
        STORAGE_TABLE_DATA_CONTRIBUTOR,
        MONITORING_METRICS_PUBLISHER,
    }
    found = resources(doc, "Microsoft.Authorization/roleAssignments")
    storage = body(found["storageRoleAssignments"])
    assert storage["scope"] == "storage"
    assert found["storageRoleAssignments"]["config"]["loop_type"]["detail"]["array_name"] == "storageRoles"
    assert {roles[name.split(".", 1)[1]] for name in _storage_role_refs(doc)} == {
        STORAGE_BLOB_DATA_OWNER,
        STORAGE_QUEUE_DATA_CONTRIBUTOR,
        STORAGE_TABLE_DATA_CONTRIBUTOR,
    }
    publisher = body(found["metricsPublisher"])
    assert publisher["scope"] == "appInsights"
    assert roles[_role_id(publisher)["operator"]["operands"]["operand_2"]] == MONITORING_METRICS_PUBLISHER
    for name in ("storage", "appInsights"):
        assert doc["resources"][name]["existing"] is True


def _storage_role_refs(doc: dict[str, Json]) -> list[str]:
    refs = []
    for item in doc["variables"]["storageRoles"]["value"]:
        operands = item["operator"]["operands"]
        refs.append(f"{operands['operand_1']}.{operands['operand_2']}")
    return refs


def test_openai_accounts_get_contributor_and_sources_get_read_only() -> None:
    main = template("main.bicep")
    assert main["variables"]["openAiContributorRoleId"]["value"] == OPENAI_CONTRIBUTOR
    assert param_default(main, "sourceAccountRoleDefinitionId") == OPENAI_USER
    expected = {
        "openAiRoles": ("openAiAccounts", "openAiContributorRoleId"),
        "sourceAccountRoles": ("sourceOpenAiAccounts", "sourceAccountRoleDefinitionId"),
    }
    for module_name, (accounts_param, role) in expected.items():
        module = main["modules"][module_name]
        assert module["detail"]["path"] == "modules/openai-role.bicep"
        loop = module["config"]["loop_type"]
        assert loop["type"] == "object" and loop["detail"]["object_name"] == accounts_param
        config = body(module)
        assert config["params"]["roleDefinitionId"] == role
        assert config["params"]["principalId"]["operator"]["operands"]["operand_1"] == "app"
        # Deployed into each account's own subscription and resource group.
        scope = config["scope"]["function"]
        assert scope["type"] == "resource_group"
        accessed = {str(v) for v in walk(scope["parameters"]) if isinstance(v, str)}
        assert {"subscriptionId", "resourceGroup"} <= accessed


def test_openai_role_module_leaves_the_account_alone() -> None:
    doc = template("modules/openai-role.bicep")
    account = doc["resources"]["account"]
    assert account["existing"] is True
    assert set(body(account)) == {"name"}
    (assignment,) = _assignments("modules/openai-role.bicep")
    assert assignment["scope"] == "account"
    assert _role_id(assignment) == "roleDefinitionId"


def test_foundry_projects_get_azure_ai_developer_on_the_project_alone() -> None:
    main = template("main.bicep")
    assert param_default(main, "foundryProjectRoleDefinitionId") == AZURE_AI_DEVELOPER
    module = main["modules"]["foundryRoles"]
    assert module["detail"]["path"] == "modules/foundry-role.bicep"
    loop = module["config"]["loop_type"]
    assert loop["type"] == "object" and loop["detail"]["object_name"] == "foundryProjects"
    config = body(module)
    assert config["params"]["roleDefinitionId"] == "foundryProjectRoleDefinitionId"
    scope = config["scope"]["function"]
    assert scope["type"] == "resource_group"
    assert {"subscriptionId", "resourceGroup"} <= {str(v) for v in walk(scope["parameters"]) if isinstance(v, str)}
    doc = template("modules/foundry-role.bicep")
    workspace = doc["resources"]["workspace"]
    assert workspace["existing"] is True and set(body(workspace)) == {"name"}
    (assignment,) = _assignments("modules/foundry-role.bicep")
    assert assignment["scope"] == "workspace"  # the project, not its resource group or hub
    assert _role_id(assignment) == "roleDefinitionId"


def test_no_broad_role_anywhere() -> None:
    for path in INFRA.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8").lower()
            for guid, role in TOO_BROAD.items():
                assert guid not in text, f"{path.relative_to(INFRA)} grants {role}"
