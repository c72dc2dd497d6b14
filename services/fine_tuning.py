"""Fine-tuning job → deployment: read a job from the Azure OpenAI data plane, deploy what it produced.

Saves the copy-paste of model ids between the fine-tuning step and the deploy step: the job names the
model (or checkpoint) and the deploy goes through the same path, checks and answers as
PUT /deployments/{name}. A job still queued or running gets a deploy intent (services.intents) that the sweep
carries out when the job finishes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from .audit import AuditTrail
from .deployment_requests import SkuRequest, check_name, parse_put
from .deployments import DeploymentService
from .errors import Conflict, NotFound, RelayedError, ServiceError, ValidationError
from .inference import InferenceGateway
from .intents import create_intent, intent_view, move
from .results import OperationResult
from .validation import StrictModel, parse_model
from .web import RawBody, parse_json_object
from .work_store import WorkStore

RunBlocking = Callable[..., Awaitable[Any]]

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
FINISHED_JOB_STATES = ("succeeded", "failed", "cancelled")
INTENT_RETRY_AFTER_SECONDS = 60
DEPLOY_EXAMPLE = '{"deployment": "support-bot", "sku": {"name": "Standard", "capacity": 1}}'


class DeployFromJobRequest(StrictModel):
    deployment: str
    checkpoint: str | None = None
    sku: SkuRequest | None = None
    raiPolicyName: str | None = None
    versionUpgradeOption: str | None = None
    tags: dict[str, str] | None = None
    expiresAt: str | None = None
    ttlHours: float | None = None
    keepAlive: bool | None = None


async def get_job(alias: str | None, job_id: str, *, request_id: str, gateway: InferenceGateway) -> dict[str, Any]:
    """The job's status, base model, fine-tuned model (when succeeded) and deployable checkpoints."""
    account = gateway.settings.account(alias)
    check_job_id(job_id)
    path = f"/fine_tuning/jobs/{quote(job_id)}"
    try:
        job = await gateway.get_json(account, path, request_id=request_id, operation="fine_tuning.job")
    except RelayedError as error:
        if error.status == 404:
            raise NotFound(
                f"Fine-tuning job '{job_id}' was not found in account '{account.alias}'. Jobs are per account: "
                "pass ?account=.",
                code="FineTuningJobNotFound",
                target="job_id",
            ) from None
        raise
    checkpoints: list[dict[str, Any]] = []
    if job.get("status") == "succeeded":
        listed = await gateway.get_json(
            account, f"{path}/checkpoints?limit=50", request_id=request_id, operation="fine_tuning.checkpoints"
        )
        checkpoints = [
            {
                "id": item.get("id"),
                "fine_tuned_model_checkpoint": item.get("fine_tuned_model_checkpoint"),
                "step_number": item.get("step_number"),
                "created_at": item.get("created_at"),
            }
            for item in listed.get("data", [])
            if isinstance(item, dict)
        ]
    view: dict[str, Any] = {
        "id": job.get("id", job_id),
        "account": account.alias,
        "status": job.get("status"),
        "model": job.get("model"),
        "fine_tuned_model": job.get("fine_tuned_model"),
        "checkpoints": checkpoints,
    }
    if job.get("error"):
        view["error"] = job["error"]
    return view


async def deploy_from_job(
    alias: str | None,
    job_id: str,
    raw_body: RawBody,
    *,
    wait: str | None,
    request_id: str,
    audit: AuditTrail | None,
    gateway: InferenceGateway,
    deployments: DeploymentService,
    run_blocking: RunBlocking,
    intents: Callable[[], WorkStore] | None = None,
) -> OperationResult:
    """Deploy the job's fine-tuned model (or one of its checkpoints) as PUT /deployments/{name} would; a job still
    queued or running gets a deploy intent (202) that the sweep carries out when the job succeeds."""
    request = parse_model(DeployFromJobRequest, parse_json_object(raw_body, example=DEPLOY_EXAMPLE))
    check_name(request.deployment, target="deployment")
    job = await get_job(alias, job_id, request_id=request_id, gateway=gateway)
    if job["status"] not in FINISHED_JOB_STATES and intents is not None:
        intended: OperationResult = await run_blocking(_intend, job, request, intents, audit)
        return intended
    body, asked = _deploy_body(job, request)
    result: OperationResult = await run_blocking(
        deployments.put,
        job["account"],
        request.deployment,
        body,
        wait=wait,
        request_id=request_id,
        audit=audit,
        action="deploy_from_job",
        asked=asked,
    )
    return result


def _deploy_body(job: dict[str, Any], request: DeployFromJobRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PUT body for a succeeded job's model (checked as PUT checks it), and what the audit trail records."""
    if job["status"] != "succeeded" or not job.get("fine_tuned_model"):
        raise Conflict(
            f"Fine-tuning job '{job['id']}' is {job['status']}; only a succeeded job can be deployed. "
            "GET /api/fine_tuning/jobs/{job_id} shows its progress.",
            code="FineTuningJobNotReady",
            target="job_id",
        )
    model = str(job["fine_tuned_model"])
    if request.checkpoint is not None:
        model = _checkpoint_model(job, request.checkpoint)
    fields = request.model_dump(exclude={"deployment", "checkpoint"}, exclude_none=True)
    body = {"model": model, **fields}
    parse_put(body)  # the same checks PUT applies, before anything is sent
    return body, {"job": job["id"], "checkpoint": request.checkpoint}


def _intend(
    job: dict[str, Any], request: DeployFromJobRequest, intents: Callable[[], WorkStore], audit: AuditTrail | None
) -> OperationResult:
    alias, job_id = str(job["account"]), str(job["id"])
    asked = {"job": job_id, "jobStatus": job["status"], **request.model_dump(exclude_none=True)}
    requested_by = audit.caller.label if audit is not None else "unknown"
    if audit is None:
        view = create_intent(intents(), alias, job_id, request.deployment, request.model_dump(exclude_none=True), "-")
    else:
        with audit.record("deploy_intent", alias, request.deployment, asked) as entry:
            view = create_intent(
                intents(), alias, job_id, request.deployment, request.model_dump(exclude_none=True), requested_by
            )
            entry.outcome = {"status": 202, "provisioningState": None, "code": None}
            entry.changed = False
    location = f"/fine_tuning/jobs/{quote(job_id)}/deploy?account={quote(alias)}"
    return OperationResult("accepted", view, location=location, retry_after=INTENT_RETRY_AFTER_SECONDS)


async def advance_intent(
    record: dict[str, Any],
    *,
    store: WorkStore,
    gateway: InferenceGateway,
    deployments: DeploymentService,
    run_blocking: RunBlocking,
    audit: AuditTrail,
    request_id: str,
) -> dict[str, Any] | None:
    """Move one open intent on: deploy when its job succeeded, fail it with the job's error, or follow its
    deployment. Answers the intent's new view when it finished (for the results queue), else None."""
    alias, job_id, name = str(record["account"]), str(record["jobId"]), str(record["deployment"])
    if record.get("state") == "Deploying":
        try:
            view = await run_blocking(deployments.get, alias, name, request_id=request_id)
        except NotFound as error:
            return await _ended(
                run_blocking, store, record, "Failed", {"code": error.code, "message": error.message}, None
            )
        state = str(view.get("provisioningState") or "").lower()
        if state == "succeeded":
            return await _ended(run_blocking, store, record, "Succeeded", None, view)
        if state in ("failed", "canceled"):
            failure = {"code": "DeploymentFailed", "message": f"Deployment '{name}' ended {view['provisioningState']}."}
            return await _ended(run_blocking, store, record, "Failed", failure, view)
        return None
    job = await get_job(alias, job_id, request_id=request_id, gateway=gateway)
    if job["status"] in ("failed", "cancelled"):
        reason = job.get("error") or {}
        failure = {
            "code": str(reason.get("code") or f"FineTuningJob{str(job['status']).capitalize()}"),
            "message": str(reason.get("message") or f"Fine-tuning job '{job_id}' was {job['status']}."),
        }
        return await _ended(run_blocking, store, record, "Failed", failure, None)
    if job["status"] != "succeeded":
        return None
    claimed = await run_blocking(move, store, record, "Deploying")
    if claimed is None:
        return None  # another instance is deploying it
    request = DeployFromJobRequest.model_validate(json.loads(str(record.get("request") or "{}")))
    try:
        body, asked = _deploy_body(job, request)
        result: OperationResult = await run_blocking(
            deployments.put, alias, name, body, wait="0", request_id=request_id, audit=audit,
            action="deploy_from_job", asked={**asked, "intent": True},
        )  # fmt: skip
    except ServiceError as error:
        if error.status in (429, 502, 503, 504):
            await run_blocking(move, store, claimed, "Pending")  # the next sweep tries again
            raise
        return await _ended(
            run_blocking, store, claimed, "Failed", {"code": error.code, "message": error.message}, None
        )
    if result.outcome == "accepted":
        return None
    return await _ended(run_blocking, store, claimed, "Succeeded", None, result.resource)


async def _ended(run_blocking: RunBlocking, *args: Any) -> dict[str, Any] | None:
    ended: dict[str, Any] | None = await run_blocking(_end, *args)
    return ended


def _end(
    store: WorkStore, record: dict[str, Any], state: str, error: dict[str, Any] | None, result: dict[str, Any] | None
) -> dict[str, Any] | None:
    moved = move(store, record, state, error=error, result=result)
    return intent_view(moved) if moved is not None else None


def _checkpoint_model(job: dict[str, Any], wanted: str) -> str:
    for checkpoint in job["checkpoints"]:
        if wanted in (checkpoint.get("id"), checkpoint.get("fine_tuned_model_checkpoint")):
            return str(checkpoint["id"])
    known = ", ".join(str(item.get("id")) for item in job["checkpoints"]) or "none"
    raise ValidationError(
        f"Checkpoint '{wanted}' is not one of job '{job['id']}''s checkpoints ({known}).",
        code="UnknownCheckpoint",
        target="checkpoint",
    )


def check_job_id(job_id: str) -> None:
    if not _JOB_ID.fullmatch(job_id):
        raise ValidationError(
            f"'{job_id[:80]}' is not a fine-tuning job id (like ftjob-0123456789abcdef).",
            code="InvalidJobId",
            target="job_id",
        )
