"""Fine-tuning jobs and checkpoints on the data plane, and deploying what a succeeded job produced."""

from __future__ import annotations

import openai
import pytest
import requests

from localdev.simulator import RunningSimulator
from localdev.simulator.control_client import SimulatorControl

from .conftest import (
    BASE_MODEL,
    CHECKPOINT_IDS,
    DATAPLANE_CONFIG,
    DP_ACCOUNT,
    FAILED_JOB,
    RG,
    RUNNING_JOB,
    SUB,
    SUCCEEDED_JOB,
    SUCCEEDED_JOB_MODEL,
    Arm,
    DataPlane,
    deployment_body,
)


def test_succeeded_job_shows_its_fine_tuned_model(dataplane: DataPlane) -> None:
    job = dataplane.client().fine_tuning.jobs.retrieve(SUCCEEDED_JOB)
    assert job.object == "fine_tuning.job"
    assert job.id == SUCCEEDED_JOB
    assert job.status == "succeeded"
    assert job.model == BASE_MODEL
    assert job.fine_tuned_model == SUCCEEDED_JOB_MODEL
    assert (job.model_extra or {})["suffix"] == "support"  # Azure's field; the SDK's model lacks it
    assert job.training_file.startswith("file-")
    assert job.result_files and job.result_files[0].startswith("file-")
    assert job.finished_at is not None and job.finished_at > job.created_at
    assert job.trained_tokens == 30_000
    assert job.hyperparameters.n_epochs == 3
    assert job.error is None


def test_unfinished_and_failed_jobs(dataplane: DataPlane) -> None:
    client = dataplane.client()
    running = client.fine_tuning.jobs.retrieve(RUNNING_JOB)
    assert running.status == "running"
    assert running.fine_tuned_model is None
    assert running.finished_at is None
    assert running.result_files == []

    failed = client.fine_tuning.jobs.retrieve(FAILED_JOB)
    assert failed.status == "failed"
    assert failed.fine_tuned_model is None
    assert failed.error is not None
    assert (failed.error.code, failed.error.message) == ("invalidTrainingFile", "Line 3 is not valid JSON.")


def test_jobs_are_listed_newest_first_and_paged(dataplane: DataPlane) -> None:
    client = dataplane.client()
    page = client.fine_tuning.jobs.list()
    assert [job.id for job in page.data] == [FAILED_JOB, RUNNING_JOB, SUCCEEDED_JOB]
    assert page.has_more is False

    first = client.fine_tuning.jobs.list(limit=2)
    assert [job.id for job in first.data] == [FAILED_JOB, RUNNING_JOB]
    assert first.has_more is True
    assert [job.id for job in client.fine_tuning.jobs.list(limit=1)] == [FAILED_JOB, RUNNING_JOB, SUCCEEDED_JOB]

    raw = dataplane.call("GET", "/fine_tuning/jobs").json()
    assert raw["object"] == "list"
    assert raw["has_more"] is False


def test_checkpoints_latest_first_with_cursor_paging(dataplane: DataPlane) -> None:
    client = dataplane.client()
    page = client.fine_tuning.jobs.checkpoints.list(SUCCEEDED_JOB)
    assert [checkpoint.id for checkpoint in page.data] == list(reversed(CHECKPOINT_IDS))
    latest = page.data[0]
    assert latest.object == "fine_tuning.job.checkpoint"
    assert latest.step_number == 30
    assert latest.fine_tuned_model_checkpoint == f"{SUCCEEDED_JOB_MODEL}:ckpt-step-30"
    assert latest.fine_tuning_job_id == SUCCEEDED_JOB
    losses = [checkpoint.metrics.train_loss or 0.0 for checkpoint in page.data]
    assert 0 < losses[0] < losses[-1]  # training converges

    raw = dataplane.call("GET", f"/fine_tuning/jobs/{SUCCEEDED_JOB}/checkpoints?limit=2").json()
    assert [item["id"] for item in raw["data"]] == [CHECKPOINT_IDS[2], CHECKPOINT_IDS[1]]
    assert (raw["has_more"], raw["first_id"], raw["last_id"]) == (True, CHECKPOINT_IDS[2], CHECKPOINT_IDS[1])
    rest = dataplane.call("GET", f"/fine_tuning/jobs/{SUCCEEDED_JOB}/checkpoints?after={CHECKPOINT_IDS[1]}").json()
    assert [item["id"] for item in rest["data"]] == [CHECKPOINT_IDS[0]]
    assert rest["has_more"] is False
    all_ids = [checkpoint.id for checkpoint in client.fine_tuning.jobs.checkpoints.list(SUCCEEDED_JOB, limit=1)]
    assert all_ids == list(reversed(CHECKPOINT_IDS))

    made_up_id = client.fine_tuning.jobs.checkpoints.list(RUNNING_JOB).data[0].id
    assert made_up_id.startswith("ftchkpt-")

    bad_limit = dataplane.call("GET", f"/fine_tuning/jobs/{SUCCEEDED_JOB}/checkpoints?limit=0")
    assert bad_limit.status_code == 400
    assert bad_limit.json()["error"]["code"] == "invalidPayload"


def test_unknown_job_is_not_found(dataplane: DataPlane) -> None:
    client = dataplane.client(max_retries=0)
    with pytest.raises(openai.NotFoundError) as caught:
        client.fine_tuning.jobs.retrieve("ftjob-missing")
    assert caught.value.code == "notFound"
    checkpoints = dataplane.call("GET", "/fine_tuning/jobs/ftjob-missing/checkpoints")
    assert checkpoints.status_code == 404
    assert checkpoints.json()["error"] == {
        "code": "notFound",
        "message": "Fine-tuning job with id 'ftjob-missing' was not found.",
    }


def test_fine_tuning_needs_a_token_and_an_api_version(dataplane: DataPlane) -> None:
    assert dataplane.call("GET", "/fine_tuning/jobs", headers={}).status_code == 401
    assert dataplane.call("GET", "/fine_tuning/jobs", headers={"api-key": "k"}).status_code == 401
    assert dataplane.call("GET", "/fine_tuning/jobs", api_version=None).status_code == 404


def test_succeeded_job_model_and_checkpoints_deploy_through_arm_and_answer(
    dataplane: DataPlane, arm: Arm, control: SimulatorControl
) -> None:
    control.patch_config({"provisioningDelaySeconds": 0})
    deployments = arm.deployments(DP_ACCOUNT)
    job = dataplane.client().fine_tuning.jobs.retrieve(SUCCEEDED_JOB)
    checkpoint = dataplane.client().fine_tuning.jobs.checkpoints.list(SUCCEEDED_JOB).data[1]
    assert job.fine_tuned_model is not None
    for name, model in (
        ("from-job", job.fine_tuned_model),
        ("from-checkpoint-id", checkpoint.id),
        ("from-checkpoint-name", checkpoint.fine_tuned_model_checkpoint),
    ):
        put = arm.call("PUT", f"{deployments}/{name}", deployment_body(model=model))
        assert put.status_code == 201, put.text
        assert put.json()["properties"]["provisioningState"] == "Succeeded"
        completion = dataplane.client().chat.completions.create(
            model=name, messages=[{"role": "user", "content": "tuned?"}]
        )
        assert completion.model == model
        assert completion.choices[0].message.content == "echo: tuned?"


def test_models_of_unfinished_jobs_cannot_be_deployed(dataplane: DataPlane, arm: Arm) -> None:
    refused = arm.call(
        "PUT", f"{arm.deployments(DP_ACCOUNT)}/early", deployment_body(model=f"{BASE_MODEL}.ft-running01")
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "DeploymentModelNotSupported"


def test_config_lists_the_deployable_models_and_reapplies_unchanged(control: SimulatorControl) -> None:
    control.set_config(DATAPLANE_CONFIG)
    config = control.get_config()
    models = config["accounts"][0]["models"]
    assert models == [
        "gpt-4o-mini",
        SUCCEEDED_JOB_MODEL,
        CHECKPOINT_IDS[0],
        f"{SUCCEEDED_JOB_MODEL}:ckpt-step-10",
        CHECKPOINT_IDS[1],
        f"{SUCCEEDED_JOB_MODEL}:ckpt-step-20",
        CHECKPOINT_IDS[2],
        f"{SUCCEEDED_JOB_MODEL}:ckpt-step-30",
    ]
    assert control.patch_config({"accounts": config["accounts"]}) == config


@pytest.mark.parametrize(
    ("job", "named"),
    [
        ({"model": BASE_MODEL}, "'id' and 'model'"),
        ({"id": "ftjob-x", "model": BASE_MODEL, "status": "done"}, "status"),
        ({"id": "ftjob-x", "model": BASE_MODEL, "checkpoints": [{"id": "c"}]}, "checkpoints[0].step"),
        ({"id": "ftjob-x", "model": BASE_MODEL, "colour": "red"}, "colour"),
    ],
)
def test_bad_fine_tuning_jobs_are_refused(
    simulator: RunningSimulator, control: SimulatorControl, job: dict[str, object], named: str
) -> None:
    config = {"accounts": [{"subscriptionId": SUB, "resourceGroup": RG, "accountName": "a", "fineTuningJobs": [job]}]}
    response = requests.put(f"{simulator.base_url}/_sim/config", json=config, timeout=10)
    assert response.status_code == 400
    assert named in response.json()["error"]["message"]
