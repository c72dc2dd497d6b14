"""Fine-tuning jobs and checkpoints (authoring API 2024-10-21), read-only views of seeded jobs.

Timestamps are made up once per process: jobs look as if they were created an hour apart, the day
before the simulator started, so `created_at`, `finished_at` and checkpoint times are stable and ordered.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .dataplane_errors import DataPlaneError, gateway_error, job_not_found
from .fine_tuning_config import DEFAULT_JOB_ERROR, CheckpointSeed, FineTuningJobSeed

_ANCHOR = int(time.time()) - 86_400
_JOB_SPACING_SECONDS = 3_600
_JOB_DURATION_SECONDS = 1_800
_FINISHED_STATES = frozenset({"succeeded", "failed", "cancelled"})
DEFAULT_JOB_PAGE = 20
DEFAULT_CHECKPOINT_PAGE = 10
MAX_PAGE = 100

Item = TypeVar("Item")


def _hash_number(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _file_id(job: FineTuningJobSeed, purpose: str) -> str:
    return f"file-{hashlib.sha256(f'{job.job_id}:{purpose}'.encode()).hexdigest()[:32]}"


def _created_at(jobs: Sequence[FineTuningJobSeed], job: FineTuningJobSeed) -> int:
    return _ANCHOR + jobs.index(job) * _JOB_SPACING_SECONDS


def find_job(jobs: Sequence[FineTuningJobSeed], job_id: str) -> FineTuningJobSeed:
    job = next((job for job in jobs if job.job_id == job_id), None)
    if job is None:
        raise job_not_found(job_id)
    return job


def job_json(jobs: Sequence[FineTuningJobSeed], job: FineTuningJobSeed) -> dict[str, Any]:
    created_at = _created_at(jobs, job)
    succeeded = job.status == "succeeded"
    finished = job.status in _FINISHED_STATES
    last_step = max((checkpoint.step for checkpoint in job.checkpoints), default=10)
    trained_tokens = job.trained_tokens if job.trained_tokens is not None else last_step * 1_000
    error = None
    if job.status == "failed":
        error = {"param": None, **(job.error or DEFAULT_JOB_ERROR)}
    return {
        "object": "fine_tuning.job",
        "id": job.job_id,
        "created_at": created_at,
        "status": job.status,
        "model": job.model,
        "fine_tuned_model": job.fine_tuned_model if succeeded else None,
        "training_file": job.training_file or _file_id(job, "training"),
        "validation_file": job.validation_file,
        "result_files": [_file_id(job, "results")] if succeeded else [],
        "finished_at": created_at + _JOB_DURATION_SECONDS if finished else None,
        "estimated_finish": None,
        "trained_tokens": trained_tokens if succeeded else None,
        "hyperparameters": dict(job.hyperparameters),
        "suffix": job.suffix,
        "seed": _hash_number(job.job_id) % 2_147_483_647,
        "error": error,
    }


def checkpoint_json(
    jobs: Sequence[FineTuningJobSeed], job: FineTuningJobSeed, checkpoint: CheckpointSeed
) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.checkpoint_id,
        "created_at": _created_at(jobs, job) + checkpoint.step * 10,
        "fine_tuned_model_checkpoint": job.checkpoint_model(checkpoint),
        "step_number": checkpoint.step,
        "metrics": dict(checkpoint.metrics) if checkpoint.metrics is not None else _made_up_metrics(checkpoint.step),
        "fine_tuning_job_id": job.job_id,
    }


def _made_up_metrics(step: int) -> dict[str, float]:
    """Losses that fall and accuracies that rise with the step, as a real run's would."""
    loss = round(2.0 / (1 + step / 10), 4)
    accuracy = round(1 - loss / 4, 4)
    return {
        "step": float(step),
        "train_loss": loss,
        "train_mean_token_accuracy": accuracy,
        "valid_loss": round(loss * 1.1, 4),
        "valid_mean_token_accuracy": round(accuracy * 0.98, 4),
        "full_valid_loss": round(loss * 1.12, 4),
        "full_valid_mean_token_accuracy": round(accuracy * 0.97, 4),
    }


def list_jobs(jobs: Sequence[FineTuningJobSeed], query: dict[str, str]) -> dict[str, Any]:
    """Newest first, as the service lists them; `after` is the id of the last job already seen."""
    newest_first = sorted(jobs, key=lambda job: _created_at(jobs, job), reverse=True)
    page, has_more = _page(newest_first, query, DEFAULT_JOB_PAGE, lambda job: job.job_id)
    return {"object": "list", "data": [job_json(jobs, job) for job in page], "has_more": has_more}


def list_checkpoints(
    jobs: Sequence[FineTuningJobSeed], job: FineTuningJobSeed, query: dict[str, str]
) -> dict[str, Any]:
    """Latest step first; `after` is the id of the last checkpoint already seen."""
    latest_first = sorted(job.checkpoints, key=lambda checkpoint: checkpoint.step, reverse=True)
    page, has_more = _page(latest_first, query, DEFAULT_CHECKPOINT_PAGE, lambda checkpoint: checkpoint.checkpoint_id)
    data = [checkpoint_json(jobs, job, checkpoint) for checkpoint in page]
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


def _page(
    items: list[Item], query: dict[str, str], default_limit: int, item_id: Callable[[Item], str]
) -> tuple[list[Item], bool]:
    limit = _limit(query.get("limit"), default_limit)
    start = 0
    after = query.get("after")
    if after:
        ids = [item_id(item) for item in items]
        if after not in ids:
            raise _invalid_payload(f"The 'after' cursor '{after}' does not name an item of this list.")
        start = ids.index(after) + 1
    page = items[start : start + limit]
    return page, start + limit < len(items)


def _limit(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise _invalid_payload(f"The 'limit' must be an integer between 1 and {MAX_PAGE}.")
    return int(raw)


def _invalid_payload(message: str) -> DataPlaneError:
    return gateway_error(400, "invalidPayload", message)
