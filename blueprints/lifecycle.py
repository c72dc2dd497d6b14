"""Deployment lifecycle: changes requested through a Storage queue, the sweep timer (expiry, keep-alive, deploy
intents), the idle report, and a fine-tuning job's deploy intent.

- `deployment_requests`: queue trigger on `DEPLOYMENT_REQUESTS_QUEUE` in the Function App's storage
  (`AzureWebJobsStorage`); results go to `DEPLOYMENT_RESULTS_QUEUE`. host.json reads messages as plain text
  (`messageEncoding: none`), and the service accepts plain JSON and base64 of JSON alike.
- `sweep`: timer trigger on `SWEEP_SCHEDULE` (NCRONTAB); run it now with `POST /admin/functions/sweep`.
- `GET /api/deployments/idle` and `GET /api/fine_tuning/jobs/{job_id}/deploy`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.respond import AUTH_LEVEL, in_thread, respond
from services.auth import Role
from services.context import get_context

bp = func.Blueprint(http_auth_level=AUTH_LEVEL)  # type: ignore[no-untyped-call]
log = logging.getLogger("function_app")
DEFAULT_MAX_DEQUEUE_COUNT = 5  # the Functions host's default
APP_ROOT = Path(__file__).resolve().parent.parent


def max_dequeue_count(root: Path = APP_ROOT) -> int:
    """host.json's `extensions.queues.maxDequeueCount`: the attempts before the host poisons a message."""
    try:
        host = json.loads((root / "host.json").read_text(encoding="utf-8"))
        return int(host["extensions"]["queues"]["maxDequeueCount"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_DEQUEUE_COUNT


MAX_DEQUEUE_COUNT = max_dequeue_count()


@bp.queue_trigger(arg_name="msg", queue_name="%DEPLOYMENT_REQUESTS_QUEUE%", connection="AzureWebJobsStorage")
async def deployment_requests(msg: func.QueueMessage) -> None:
    from services.queue_worker import Delivery, process

    app = get_context()
    body = msg.get_body()
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    count = getattr(msg, "dequeue_count", None) or 1
    delivery = Delivery(text, msg.id or "", int(count))
    status = await app.run_blocking(process, app, delivery, max_dequeue_count=MAX_DEQUEUE_COUNT)
    log.info("queue message %s (attempt %d): %s", msg.id, delivery.dequeue_count, status)


@bp.timer_trigger(arg_name="timer", schedule="%SWEEP_SCHEDULE%")
async def sweep(timer: func.TimerRequest) -> None:
    from services.sweep import run_sweep

    await run_sweep(get_context())


@bp.route(route="deployments/idle", methods=["GET"])
async def idle_deployments(req: Request) -> Response:
    from services.idle import idle_report, idle_view

    account, days = req.query_params.get("account"), req.query_params.get("days")
    return await respond(
        req,
        Role.DEPLOYMENTS_READ,
        in_thread(
            lambda app, c, _: idle_view(idle_report(app.settings, app.arm_for, account, days, request_id=c.request_id))
        ),
    )


@bp.route(route="fine_tuning/jobs/{job_id}/deploy", methods=["GET"])
async def get_deploy_intent(req: Request) -> Response:
    from services.fine_tuning import check_job_id
    from services.intents import get_intent

    account, job_id = req.query_params.get("account"), req.path_params["job_id"]

    def call(app, _c, _b):  # type: ignore[no-untyped-def]
        alias = app.settings.account(account).alias
        check_job_id(job_id)
        return get_intent(app.work_store, alias, job_id)

    return await respond(req, Role.DEPLOYMENTS_READ, in_thread(call))
