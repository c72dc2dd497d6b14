"""checkov over infra/ (framework bicep): no failed check, and every skip is in the template with its reason.

A skip is written next to the resource, `// checkov:skip=CKV_AZURE_NN:why`, and listed in REVIEWED_SKIPS below,
so adding one is a visible change to this file as well as to the template.
"""

from __future__ import annotations

from typing import Any

from .bicep_tools import bicep_files

# (file under infra/, resource, check): each reason is in the template, next to the resource.
REVIEWED_SKIPS = {
    # Storage: public endpoint kept for the Flex host (no VNet by default); keys off, Entra RBAC only.
    ("/modules/storage.bicep", "Microsoft.Storage/storageAccounts.storage", "CKV_AZURE_35"),
    ("/modules/storage.bicep", "Microsoft.Storage/storageAccounts.storage", "CKV_AZURE_59"),
    # Storage account name is a parameter; the check can only validate literal names.
    ("/modules/storage.bicep", "Microsoft.Storage/storageAccounts.storage", "CKV_AZURE_43"),
    # Flex Consumption: zone redundancy costs always-ready instances; opt-in parameter.
    ("/modules/function-app.bicep", "Microsoft.Web/serverfarms.plan", "CKV_AZURE_225"),
    # Site: Entra tokens instead of client certificates; public API behind Return401; no health check or
    # fixed worker count on Flex; identity type is an expression (always includes SystemAssigned).
    ("/modules/function-app.bicep", "Microsoft.Web/sites.site", "CKV_AZURE_17"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites.site", "CKV_AZURE_222"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites.site", "CKV_AZURE_213"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites.site", "CKV_AZURE_212"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites.site", "CKV_AZURE_16"),
    # authsettingsV2 config: checks written for the V1 or the `web` config schema, which do not apply.
    ("/modules/function-app.bicep", "Microsoft.Web/sites/config.authSettings", "CKV_AZURE_13"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites/config.authSettings", "CKV_AZURE_88"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites/config.authSettings", "CKV_AZURE_63"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites/config.authSettings", "CKV_AZURE_65"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites/config.authSettings", "CKV_AZURE_66"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites/config.authSettings", "CKV_AZURE_80"),
    ("/modules/function-app.bicep", "Microsoft.Web/sites/config.authSettings", "CKV_AZURE_222"),
}

# Checks that must run and pass: they guard what the issue asks for.
REQUIRED_PASSES = {
    ("Microsoft.Web/sites.site", "CKV_AZURE_14"),  # HTTPS only
    ("Microsoft.Web/sites.site", "CKV_AZURE_70"),  # function app only over HTTPS
    ("Microsoft.Web/sites.site", "CKV_AZURE_15"),  # TLS 1.2
    ("Microsoft.Web/sites.site", "CKV_AZURE_145"),  # function app TLS 1.2
    ("Microsoft.Web/sites.site", "CKV_AZURE_78"),  # FTP(S) disabled
    ("Microsoft.Web/sites.site", "CKV_AZURE_71"),  # managed identity
    ("Microsoft.Web/sites/config.authSettings", "CKV_AZURE_56"),  # App Service Authentication on
    ("Microsoft.Storage/storageAccounts.storage", "CKV_AZURE_3"),  # HTTPS traffic only
    ("Microsoft.Storage/storageAccounts.storage", "CKV_AZURE_44"),  # TLS 1.2
    ("Microsoft.Storage/storageAccounts.storage", "CKV_AZURE_206"),  # geo-replicated (audit trail)
    ("Microsoft.Storage/storageAccounts/blobServices/containers.deploymentContainer", "CKV_AZURE_34"),  # private
}


def _results(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return list(report.get("results", {}).get(kind, []))


def test_tests_parse_with_the_parser_checkov_scans_with(checkov_pycep_version: str, project_pycep_version: str) -> None:
    # pycep-parser in requirements-dev.txt must be the one checkov pins, or a file the tests read could be one
    # checkov cannot parse (and so never scans).
    assert project_pycep_version == checkov_pycep_version


def test_checkov_parsed_every_template(checkov_report: dict[str, Any]) -> None:
    # A file checkov cannot parse is not scanned at all: it only shows up here.
    assert checkov_report["summary"]["parsing_errors"] == 0, checkov_report["results"].get("parsing_errors")
    assert checkov_report["summary"]["resource_count"] > 0
    assert bicep_files(), "no .bicep file under infra/"


def test_no_failed_check(checkov_report: dict[str, Any]) -> None:
    failed = [
        f"{r['check_id']} {r['check_name']}: {r['resource']} ({r['file_path']}:{r['file_line_range'][0]})"
        for r in _results(checkov_report, "failed_checks")
    ]
    assert not failed, "checkov failed checks (fix them, or skip in the template with a reason):\n" + "\n".join(failed)


def test_every_skip_is_reviewed_and_justified(checkov_report: dict[str, Any]) -> None:
    skipped = _results(checkov_report, "skipped_checks")
    found = {(r["file_path"], r["resource"], r["check_id"]) for r in skipped}
    assert found == REVIEWED_SKIPS, (
        f"new skips (add them to REVIEWED_SKIPS after review): {sorted(found - REVIEWED_SKIPS)}; "
        f"skips no longer present (remove them): {sorted(REVIEWED_SKIPS - found)}"
    )
    for result in skipped:
        reason = result["check_result"].get("suppress_comment", "")
        assert reason != "No comment provided" and len(reason) >= 40, (
            f"{result['check_id']} on {result['resource']} is skipped without a real reason: {reason!r}"
        )


def test_key_security_checks_ran_and_passed(checkov_report: dict[str, Any]) -> None:
    passed = {(r["resource"], r["check_id"]) for r in _results(checkov_report, "passed_checks")}
    missing = REQUIRED_PASSES - passed
    assert not missing, f"these checks did not run or did not pass: {sorted(missing)}"
