"""Fine-tuning job → deployment: read a job from the Azure OpenAI data plane, deploy what it produced.

Saves the copy-paste of model ids between the fine-tuning step and the deploy step: the job names the
model (or checkpoint) and the deploy goes through the same path, checks and answers as
PUT /deployments/{name}.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from .audit import AuditTrail
from .deployments import DEPLOYMENT_NAME, DeploymentRequest, OperationResult, SkuRequest, get_service, parse_model
from .errors import ServiceError, ValidationError
from .inference import InferenceGateway, ProxyResponse, get_gateway
from .web import parse_json_object, run_blocking

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
DEPLOY_EXAMPLE = '{"deployment": "support-bot", "sku": {"name": "Standard", "capacity": 1}}'


class DeployFromJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    deployment: str
    checkpoint: str | None = None
    sku: SkuRequest | None = None
    raiPolicyName: str | None = None
    versionUpgradeOption: str | None = None
    tags: dict[str, str] | None = None


async def get_job(
    alias: str | None, job_id: str, *, request_id: str, gateway: InferenceGateway | None = None
) -> dict[str, Any] | ProxyResponse:
    """The job's status, base model, fine-tuned model (when succeeded) and deployable checkpoints."""
    gateway = gateway or get_gateway()
    account = gateway.settings.account(alias)
    _check_job_id(job_id)
    path = f"/fine_tuning/jobs/{quote(job_id)}"
    job = await gateway.get_json(account, path, request_id=request_id, operation="fine_tuning.job")
    if isinstance(job, ProxyResponse):
        return _job_not_found(job_id, account.alias) if job.status == 404 else job
    checkpoints: list[dict[str, Any]] = []
    if job.get("status") == "succeeded":
        listed = await gateway.get_json(
            account, f"{path}/checkpoints?limit=50", request_id=request_id, operation="fine_tuning.checkpoints"
        )
        if isinstance(listed, ProxyResponse):
            return listed
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
    raw_body: bytes,
    *,
    wait: str | None,
    request_id: str,
    audit: AuditTrail | None = None,
    gateway: InferenceGateway | None = None,
) -> OperationResult | ProxyResponse:
    """Deploy the job's fine-tuned model (or one of its checkpoints) as PUT /deployments/{name} would."""
    request = parse_model(DeployFromJobRequest, parse_json_object(raw_body, example=DEPLOY_EXAMPLE))
    if not DEPLOYMENT_NAME.fullmatch(request.deployment):
        raise ValidationError(
            f"deployment '{request.deployment[:80]}' is not a valid deployment name: use 2-64 letters, digits, "
            "'-', '_' or '.', starting with a letter or digit.",
            code="InvalidDeploymentName",
            target="deployment",
        )
    job = await get_job(alias, job_id, request_id=request_id, gateway=gateway)
    if isinstance(job, ProxyResponse):
        return job
    if job["status"] != "succeeded" or not job.get("fine_tuned_model"):
        raise ServiceError(
            f"Fine-tuning job '{job_id}' is {job['status']}; only a succeeded job can be deployed. "
            "GET /api/fine_tuning/jobs/{job_id} shows its progress.",
            code="FineTuningJobNotReady",
            status=409,
            target="job_id",
        )
    model = str(job["fine_tuned_model"])
    if request.checkpoint is not None:
        model = _checkpoint_model(job, request.checkpoint)
    fields = request.model_dump(exclude={"deployment", "checkpoint"}, exclude_none=True)
    body = {"model": model, **fields}
    parse_model(DeploymentRequest, body)  # the same checks PUT applies, before anything is sent
    service = get_service()
    asked = {"job": job_id, "checkpoint": request.checkpoint}
    return await run_blocking(
        service.put,
        job["account"],
        request.deployment,
        json.dumps(body).encode(),
        wait=wait,
        request_id=request_id,
        audit=audit,
        action="deploy_from_job",
        asked=asked,
    )


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


def _job_not_found(job_id: str, alias: str) -> ProxyResponse:
    error = ServiceError(
        f"Fine-tuning job '{job_id}' was not found in account '{alias}'. Jobs are per account: pass ?account=.",
        code="FineTuningJobNotFound",
        status=404,
        target="job_id",
    )
    return ProxyResponse(404, {"content-type": "application/json"}, body=json.dumps(error.to_body()).encode())
