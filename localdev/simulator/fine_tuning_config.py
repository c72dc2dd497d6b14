"""Fine-tuning jobs seeded per account: config parsing, and the model names they make deployable."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .config_readers import (
    ConfigError,
    read_integer,
    read_list,
    read_object,
    read_optional_string,
    read_string,
    refuse_unknown_keys,
)

JOB_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
_JOB_KEYS = frozenset(
    {
        "id",
        "model",
        "status",
        "fineTunedModel",
        "checkpoints",
        "error",
        "trainingFile",
        "validationFile",
        "suffix",
        "hyperparameters",
        "trainedTokens",
        "finishAfterSeconds",
        "finishAs",
    }
)
FINISHED_AS = ("succeeded", "failed", "cancelled")
_CHECKPOINT_KEYS = frozenset({"id", "step", "metrics"})
_ERROR_KEYS = frozenset({"code", "message", "param"})
DEFAULT_HYPERPARAMETERS: Mapping[str, Any] = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0}
DEFAULT_JOB_ERROR: Mapping[str, Any] = {
    "code": "internalFailure",
    "message": "The fine-tuning job failed (simulated).",
    "param": None,
}


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class CheckpointSeed:
    checkpoint_id: str
    step: int
    metrics: Mapping[str, float] | None = None  # None: plausible numbers made up from the step

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.checkpoint_id, "step": self.step}
        if self.metrics is not None:
            body["metrics"] = dict(self.metrics)
        return body


@dataclass(frozen=True)
class FineTuningJobSeed:
    job_id: str
    model: str
    status: str = "succeeded"
    configured_fine_tuned_model: str | None = None
    checkpoints: tuple[CheckpointSeed, ...] = ()
    error: Mapping[str, Any] | None = None
    training_file: str | None = None
    validation_file: str | None = None
    suffix: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_HYPERPARAMETERS))
    trained_tokens: int | None = None
    finish_after_seconds: float | None = None  # a pending or running job finishes this long after the config loads
    finish_as: str = "succeeded"

    def at(self, elapsed: float) -> FineTuningJobSeed:
        """The job `elapsed` seconds after the config was loaded."""
        if self.finish_after_seconds is None or elapsed < self.finish_after_seconds:
            return self
        return replace(self, status=self.finish_as, finish_after_seconds=None)

    @property
    def fine_tuned_model(self) -> str:
        """The model name the job produces (or will); shown by the API only once it has succeeded."""
        if self.configured_fine_tuned_model:
            return self.configured_fine_tuned_model
        return f"{self.model}.ft-{self.job_id.removeprefix('ftjob-')}"

    def checkpoint_model(self, checkpoint: CheckpointSeed) -> str:
        return f"{self.fine_tuned_model}:ckpt-step-{checkpoint.step}"

    def deployable_models(self) -> list[str]:
        """A succeeded job's model and checkpoints can be deployed, by checkpoint id or by checkpoint name."""
        if self.status != "succeeded" and not (self.finish_after_seconds is not None and self.finish_as == "succeeded"):
            return []
        names = [self.fine_tuned_model]
        for checkpoint in self.checkpoints:
            names += [checkpoint.checkpoint_id, self.checkpoint_model(checkpoint)]
        return names

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.job_id, "model": self.model, "status": self.status}
        if self.configured_fine_tuned_model is not None:
            body["fineTunedModel"] = self.configured_fine_tuned_model
        body["checkpoints"] = [checkpoint.to_json() for checkpoint in self.checkpoints]
        optional = {
            "error": None if self.error is None else dict(self.error),
            "trainingFile": self.training_file,
            "validationFile": self.validation_file,
            "suffix": self.suffix,
            "trainedTokens": self.trained_tokens,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body["hyperparameters"] = dict(self.hyperparameters)
        if self.finish_after_seconds is not None:
            body.update({"finishAfterSeconds": self.finish_after_seconds, "finishAs": self.finish_as})
        return body


def parse_fine_tuning_jobs(raw: object, where: str) -> tuple[FineTuningJobSeed, ...]:
    jobs = tuple(_parse_job(item, f"{where}[{index}]") for index, item in enumerate(read_list(raw, where)))
    ids = [job.job_id for job in jobs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: job ids must be unique")
    return jobs


def _parse_job(raw: object, where: str) -> FineTuningJobSeed:
    body = read_object(raw, where)
    refuse_unknown_keys(body, _JOB_KEYS, where)
    job_id = read_string(body, "id", where, "")
    model = read_string(body, "model", where, "")
    if not job_id or not model:
        raise ConfigError(f"{where}: 'id' and 'model' are required, non-empty strings")
    status = read_string(body, "status", where, "succeeded")
    if status not in JOB_STATUSES:
        raise ConfigError(f"{where}.status: must be one of {list(JOB_STATUSES)}")
    checkpoints_raw = read_list(body.get("checkpoints", []), f"{where}.checkpoints")
    checkpoints = tuple(
        _parse_checkpoint(item, f"{where}.checkpoints[{index}]", job_id) for index, item in enumerate(checkpoints_raw)
    )
    if len({checkpoint.step for checkpoint in checkpoints}) != len(checkpoints):
        raise ConfigError(f"{where}.checkpoints: steps must be unique")
    error = body.get("error")
    if error is not None:
        refuse_unknown_keys(read_object(error, f"{where}.error"), _ERROR_KEYS, f"{where}.error")
    hyperparameters = read_object(
        body.get("hyperparameters", dict(DEFAULT_HYPERPARAMETERS)), f"{where}.hyperparameters"
    )
    finish_after = body.get("finishAfterSeconds")
    if finish_after is not None and (
        isinstance(finish_after, bool) or not isinstance(finish_after, int | float) or finish_after < 0
    ):
        raise ConfigError(f"{where}.finishAfterSeconds: must be a number of seconds, 0 or more")
    finish_as = read_string(body, "finishAs", where, "succeeded")
    if finish_as not in FINISHED_AS:
        raise ConfigError(f"{where}.finishAs: must be one of {list(FINISHED_AS)}")
    trained_tokens = body.get("trainedTokens")
    if trained_tokens is not None:
        trained_tokens = read_integer(body, "trainedTokens", where, 0, minimum=0)
    return FineTuningJobSeed(
        job_id=job_id,
        model=model,
        status=status,
        configured_fine_tuned_model=read_optional_string(body, "fineTunedModel", where),
        checkpoints=checkpoints,
        error=error,
        training_file=read_optional_string(body, "trainingFile", where),
        validation_file=read_optional_string(body, "validationFile", where),
        suffix=read_optional_string(body, "suffix", where),
        hyperparameters=hyperparameters,
        trained_tokens=trained_tokens,
        finish_after_seconds=None if finish_after is None else float(finish_after),
        finish_as=finish_as,
    )


def _parse_checkpoint(raw: object, where: str, job_id: str) -> CheckpointSeed:
    body = read_object(raw, where)
    refuse_unknown_keys(body, _CHECKPOINT_KEYS, where)
    step = read_integer(body, "step", where, 0, minimum=1)
    checkpoint_id = read_string(body, "id", where, "") or f"ftchkpt-{_short_hash(f'{job_id}:{step}', 32)}"
    metrics = body.get("metrics")
    if metrics is not None:
        metrics = read_object(metrics, f"{where}.metrics")
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in metrics.values()):
            raise ConfigError(f"{where}.metrics: must be an object of numbers")
    return CheckpointSeed(checkpoint_id=checkpoint_id, step=step, metrics=metrics)
