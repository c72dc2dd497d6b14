"""Schemathesis against a local host: thousands of generated requests, no 5xx, no answer the document does not allow.

`st run` (the Schemathesis CLI, as a subprocess) sends requests generated from services/openapi.json to a host
wired to the simulator (see conftest.py): the documented examples, boundary and negative values of every
parameter and body field (coverage phase), random valid and invalid requests (fuzzing), and chains that follow
the document's links (stateful: PUT, then GET/PATCH/DELETE the deployment it made). Every answer goes through
these checks:

- not_a_server_error            no 5xx at all (also cross-checked against the host's own access log);
- status_code_conformance       the status is documented for the operation;
- content_type_conformance      the media type is documented for that status;
- response_headers_conformance  documented required headers are there (x-request-id, Location, ...) and valid;
- response_schema_conformance   the body matches the documented schema (SSE streams event by event);
- negative_data_rejection       a request the document calls invalid is refused with a 4xx: the document does
                                not promise more than the service checks (413 added to the accepted statuses,
                                since an oversize body is a documented refusal).

Not run, on purpose: positive_data_acceptance (a valid request may still be refused for what the document cannot
know: a model the account lacks, a capacity over ListSkus' maximum, a deployment that does not exist), and the
auth checks (ignored_auth etc.: the run uses AUTH_MODE=none so no principal is needed; test_openapi.py holds the
401/403/503 answers to the document, test_documented_answers.py the function-key gate, 202s and upstream errors).

Nothing is excluded: every operation runs, with every parameter over its documented range (`?wait` up to 150 is
cheap because the simulator completes writes at once). The tailoring, all of it here or in
schemathesis_hooks.py: process_image bodies get a real image signature; generated values are mixed with real
account aliases, deployment names, job ids and API versions (DICTIONARIES) so requests get past the 404s; the
inference operations run before the management ones (RUNS); and example counts are set per operation. The seed
is fixed, so a run is reproducible; Hypothesis' database is off and Schemathesis runs in a temporary folder, so
nothing is written into the repository. The number of requests and failures is printed (pytest -s shows it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from localdev.wiring import DEMO_ACCOUNTS, PROJECT_ROOT
from tests.contract.conftest import DOCUMENT_PATH, ContractStack, fuzzing_simulator_config

SEED = 20261122
# Per operation: hypothesis examples in the fuzzing phase (examples, coverage and stateful phases come on top).
DEFAULT_MAX_EXAMPLES = 200
MAX_EXAMPLES = {
    # Cheap and wide: many parameters whose combinations matter.
    "query_audit": 300,
    "process_image": 300,
    "chat_completions": 300,
    # Each one is an audited ARM write (two Table writes, several ARM calls): they dominate the time.
    "put_deployment": 250,
    "scale_deployment": 200,
    "delete_deployment": 150,
    "deploy_fine_tuning_job": 150,
    # Serverless endpoints: the same request handling as deployments, fewer examples keep the run's time.
    "list_serverless_endpoints": 30,
    "get_serverless_endpoint": 40,
    "put_serverless_endpoint": 60,
    "delete_serverless_endpoint": 40,
    "serverless_chat_completions": 60,
    # Few parameters each: the idle report makes two ARM calls per account, a deploy intent is one table read.
    "idle_deployments": 60,
    "get_deploy_intent": 60,
    # The document itself: nothing to vary but the request id.
    "openapi_document": 10,
    # The page and its files are fixed; the overview reads every account (no parameters but the request id).
    "dashboard_page": 5,
    "dashboard_file": 15,
    "get_overview": 10,
}
# Real values the generator mixes in (with the probability given; the rest stays fully random), so generated
# requests also meet existing accounts, deployments and jobs instead of stopping at 404 every time.
_JOBS = [job for account in DEMO_ACCOUNTS for job in account.fine_tuning_jobs]
DICTIONARIES: dict[str, tuple[list[str], float, tuple[str, ...]]] = {
    "accounts": ([account.alias for account in DEMO_ACCOUNTS], 0.75, ("query.account",)),
    # ARM names are case-insensitive: "Support-Bot" is the same deployment as "support-bot".
    "deployments": (["support-bot", "Support-Bot", "scale-me", "from-job"], 0.6, ("path.name", "body.deployment")),
    "inference": (
        [name for account in DEMO_ACCOUNTS for name in account.inference_deployments if name != "*"]
        + [deployment["name"] for account in DEMO_ACCOUNTS for deployment in account.deployments],
        0.7,
        ("path.deployment", "query.deployment"),
    ),
    "jobs": ([job["id"] for job in _JOBS], 0.7, ("path.job_id",)),
    "checkpoints": (
        [checkpoint["id"] for job in _JOBS for checkpoint in job.get("checkpoints", [])],
        0.5,
        ("body.checkpoint",),
    ),
    "versions": (["2024-10-21", "2024-06-01", "2025-04-01-preview"], 0.7, ("query.api-version",)),
}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
NEGATIVE_EXPECTED = ("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429")
RUN_TIMEOUT_SECONDS = 420
MIN_REQUESTS = 3000


def config_toml(seed: int = SEED, scale: float = 1.0) -> str:
    lines = [
        f"seed = {seed}",
        # One worker: Hypothesis describes its strategies with ast.parse, which is not thread-safe on CPython 3.11
        # ("AST constructor recursion depth mismatch"); the host is the bottleneck anyway.
        "workers = 1",
        "request-timeout = 60",
        "[generation]",
        f"max-examples = {max(int(DEFAULT_MAX_EXAMPLES * scale), 1)}",
        'database = "none"',
        *[
            line
            for name, (values, _, _) in sorted(DICTIONARIES.items())
            for line in (f"[dictionaries.{name}]", f"values = [{', '.join(_quoted(value) for value in values)}]")
        ],
        "[parameters]",
        *[
            f"{_quoted(key)} = {{ dictionary = {_quoted(name)}, probability = {probability} }}"
            for name, (_, probability, keys) in sorted(DICTIONARIES.items())
            for key in keys
        ],
        "[checks.negative_data_rejection]",
        f"expected-statuses = [{', '.join(_quoted(status) for status in NEGATIVE_EXPECTED)}]",
    ]
    for operation_id, count in sorted(MAX_EXAMPLES.items()):
        examples = max(int(count * scale), 1)
        lines += ["[[operations]]", f'include-operation-id = "{operation_id}"', f"generation.max-examples = {examples}"]
    return "\n".join(lines) + "\n"


def _histogram(answered: list[tuple[str, str, int]]) -> str:
    """Answers per operation and status, so a run that never reached a success path shows it."""
    document = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
    routes = [
        (method.upper(), re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"), op["operationId"])
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    counts: Counter[str] = Counter()
    for method, path, status in answered:
        name = next((op for m, rx, op in routes if m == method and rx.match(path)), f"{method} (no operation)")
        counts[f"{name} {status}"] += 1
    by_operation: dict[str, list[str]] = {}
    for key, count in sorted(counts.items()):
        name, status = key.rsplit(" ", 1)
        by_operation.setdefault(name, []).append(f"{status}x{count}")
    return "\n".join(f"  {name:<24} {' '.join(statuses)}" for name, statuses in by_operation.items())


def _quoted(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


# Two runs over one stack, together every operation once. The inference operations go first: they call the
# seeded `vision` deployment, and once the management operations are fuzzed, DELETE /api/deployments/vision is
# a valid request Schemathesis will make (it feeds names from earlier answers into later requests).
# The inference operations have no links to follow, so their run has no stateful phase.
RUNS = (
    ("inference", ("--include-tag", "Inference", "--phases", "examples,coverage,fuzzing")),
    ("management, fine-tuning, audit, contract", ("--exclude-tag", "Inference")),
)


@dataclass
class Run:
    label: str
    output: str
    returncode: int
    elapsed: float

    def section(self, title: str) -> str:
        match = re.search(rf"^=+ {title} =+$(.*?)(?=^=+ [A-Z]+ =+$|\Z)", self.output, re.S | re.M)
        return match.group(1).strip() if match else ""

    @property
    def cases(self) -> str:
        return self.summary(r"Test cases:\s*\n\s*(.+)")

    def summary(self, pattern: str) -> str:
        match = re.search(pattern, self.output)
        return match.group(1).strip() if match else "?"


def _run_schemathesis(
    stack: ContractStack,
    folder: Path,
    label: str,
    selection: tuple[str, ...],
    *,
    seed: int = SEED,
    scale: float = 1.0,
    url: str | None = None,
) -> Run:
    folder.mkdir()
    config = folder / "schemathesis.toml"
    config.write_text(config_toml(seed, scale), encoding="utf-8")
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        "NO_COLOR": "1",
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "--no-color",
        "run",
        str(DOCUMENT_PATH),
        "--url",
        url or stack.host_url,
        "--checks",
        ",".join(CHECKS),
        *selection,
        "--report",
        "junit",
        "--report-dir",
        str(folder / "report"),
    ]
    started = time.monotonic()
    # cwd is the temporary folder: Schemathesis keeps its replay files under ./.schemathesis.
    process = subprocess.run(
        command, cwd=folder, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
    )
    run = Run(label, process.stdout + process.stderr, process.returncode, time.monotonic() - started)
    (folder / "schemathesis.log").write_text(run.output, encoding="utf-8")
    return run


def test_service_answers_as_documented(contract_stack: ContractStack, tmp_path: Path) -> None:
    assert contract_stack.control is not None
    contract_stack.control.set_config(fuzzing_simulator_config())  # seeded state, whatever ran before
    before = len(contract_stack.access_lines())
    runs = [
        _run_schemathesis(contract_stack, tmp_path / f"run-{index}", label, selection)
        for index, (label, selection) in enumerate(RUNS, 1)
    ]
    answered = contract_stack.access_lines()[before:]
    server_errors = [line for line in answered if line[2] >= 500]

    operations = sum(int(run.summary(r"Selected: (\d+)/")) for run in runs)
    total = len([op for item in json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))["paths"].values() for op in item])
    print(
        f"\nschemathesis (seed {SEED}): {len(answered)} requests answered by the host; {operations}/{total} operations"
    )
    for run in runs:
        print(f"  {run.label}: {run.cases} in {run.elapsed:.0f} s; exit {run.returncode}; output {tmp_path}")
    print(f"server errors (5xx) in the host's access log: {len(server_errors)}")
    print(f"answers per operation and status:\n{_histogram(answered)}")
    failures = "\n\n".join(f"[{run.label}]\n{run.section('FAILURES')}" for run in runs if run.section("FAILURES"))
    errors = "\n\n".join(f"[{run.label}]\n{run.section('ERRORS')}" for run in runs if run.section("ERRORS"))
    for run in runs:
        if run.returncode:
            print(f"[{run.label}] {run.section('SUMMARY')}")

    assert operations == total, "an operation of the document was not tested"
    assert len(answered) >= MIN_REQUESTS, f"only {len(answered)} requests reached the host"
    assert not errors, f"Schemathesis could not run everything:\n{errors[:20000]}"
    assert not failures, f"answers that break the document:\n{failures[:40000]}"
    assert all(run.returncode == 0 for run in runs), "\n".join(run.output[-4000:] for run in runs)
    assert not server_errors, f"5xx in the host's access log: {server_errors[:20]}"


# Races a caller can cause: two clients at once on the same deployments (the dictionary names), one deleting
# while the other creates, scales or waits. A Function App scales out, and the per-account lock holds only within
# one instance, so each client talks to its own host (two instances on one simulator and one Azurite), and writes
# take 0.3 s so that `?wait`, polling and a concurrent DELETE overlap. Two Schemathesis processes, each one worker
# (see config_toml), with different seeds; none of their answers may be a 5xx.
CONCURRENT_SEEDS = (SEED + 1, SEED + 2)
CONCURRENT_SELECTION = (
    "--include-operation-id",
    "put_deployment",
    "--include-operation-id",
    "scale_deployment",
    "--include-operation-id",
    "delete_deployment",
    "--include-operation-id",
    "get_deployment",
)


def test_two_concurrent_clients_cause_no_server_error(contract_stack: ContractStack, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    assert contract_stack.control is not None
    second_log = tmp_path / "second-host.log"
    second_url = contract_stack.start_host(log_path=second_log)
    urls = (contract_stack.host_url, second_url)
    contract_stack.control.set_config(fuzzing_simulator_config(provisioningDelaySeconds=0.3))
    before = len(contract_stack.access_lines())
    try:
        with ThreadPoolExecutor(len(CONCURRENT_SEEDS)) as pool:
            runs = list(
                pool.map(
                    lambda seed, url: _run_schemathesis(
                        contract_stack,
                        tmp_path / f"client-{seed}",
                        f"client {seed}",
                        CONCURRENT_SELECTION,
                        seed=seed,
                        scale=0.2,
                        url=url,
                    ),
                    CONCURRENT_SEEDS,
                    urls,
                )
            )
    finally:
        contract_stack.control.set_config(fuzzing_simulator_config())
    answered = contract_stack.access_lines()[before:] + contract_stack.access_lines(second_log)
    print(f"\nconcurrent schemathesis: {len(answered)} requests from {len(runs)} clients on two hosts")
    print(f"answers per operation and status:\n{_histogram(answered)}")
    server_errors = [line for line in answered if line[2] >= 500]
    failures = "\n\n".join(f"[{run.label}]\n{run.section('FAILURES')}" for run in runs if run.section("FAILURES"))
    assert len(answered) >= 200, "the clients hardly reached the hosts"
    assert not server_errors, f"5xx in the hosts' access logs: {server_errors[:20]}"
    assert not failures, f"answers that break the document:\n{failures[:40000]}"
