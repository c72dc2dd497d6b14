"""Fine-tuning job → deployment: read a job from the Azure OpenAI data plane, deploy what it produced.

Saves the copy-paste of model ids between the fine-tuning step and the deploy step: the job names the
model (or checkpoint) and the deploy goes through the same path, checks and answers as
PUT /deployments/{name}.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from .audit import AuditTrail
from .deployment_requests import SkuRequest, check_name, parse_put
from .deployments import DeploymentService
from .errors import Conflict, NotFound, RelayedError, ValidationError
from .inference import InferenceGateway
from .results import OperationResult
from .validation import StrictModel, parse_model
from .web import RawBody, parse_json_object

RunBlocking = Callable[..., Awaitable[Any]]

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
DEPLOY_EXAMPLE = '{"deployment": "support-bot", "sku": {"name": "Standard", "capacity": 1}}'


class DeployFromJobRequest(StrictModel):
    deployment: str
    checkpoint: str | None = None
    sku: SkuRequest | None = None
    raiPolicyName: str | None = None
    versionUpgradeOption: str | None = None
    tags: dict[str, str] | None = None


async def get_job(alias: str | None, job_id: str, *, request_id: str, gateway: InferenceGateway) -> dict[str, Any]:
    """The job's status, base model, fine-tuned model (when succeeded) and deployable checkpoints."""
    account = gateway.settings.account(alias)
    _check_job_id(job_id)
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
) -> OperationResult:
    """Deploy the job's fine-tuned model (or one of its checkpoints) as PUT /deployments/{name} would."""
    request = parse_model(DeployFromJobRequest, parse_json_object(raw_body, example=DEPLOY_EXAMPLE))
    check_name(request.deployment, target="deployment")
    job = await get_job(alias, job_id, request_id=request_id, gateway=gateway)
    if job["status"] != "succeeded" or not job.get("fine_tuned_model"):
        raise Conflict(
            f"Fine-tuning job '{job_id}' is {job['status']}; only a succeeded job can be deployed. "
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
    asked = {"job": job_id, "checkpoint": request.checkpoint}
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


def _check_job_id(job_id: str) -> None:
    if not _JOB_ID.fullmatch(job_id):
        raise ValidationError(
            f"'{job_id[:80]}' is not a fine-tuning job id (like ftjob-0123456789abcdef).",
            code="InvalidJobId",
            target="job_id",
        )
