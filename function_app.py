"""HTTP routes of the Function App (Python V2 programming model, FastAPI request/response types).

Each function names the app role it needs, reads the request, calls one service function and maps its
result or typed error to a response. The logic lives in `services/`; the process's clients live in one
application context (`services.context`). Every response carries `x-request-id`; every error is
`{"error": {"code", "message", "target"}}`. Management calls block on ARM, so they run in worker threads;
inference is async end to end.
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints import dashboard
from blueprints.lifecycle import bp as lifecycle
from blueprints.respond import AUTH_LEVEL, in_thread, respond
from blueprints.serverless import bp as serverless_blueprint
from blueprints.usage import bp as usage_blueprint
from services.auth import Role
from services.context import AppContext, get_context
from services.request_context import RequestContext
from services.results import OperationResult
from services.web import MAX_JSON_BODY_BYTES, RawBody

MAX_IMAGE_BODY_BYTES = 20 * 1024 * 1024

app = func.FunctionApp(http_auth_level=AUTH_LEVEL)
get_context().start()  # settings and the audit store's whereabouts are reported when the host starts
# Each capability beyond deployments, inference, fine-tuning and audit is a blueprint of its own (blueprints/).
app.register_functions(serverless_blueprint)
app.register_functions(dashboard.bp)
app.register_functions(usage_blueprint)
app.register_functions(lifecycle)


# Deployments


@app.route(route="deployments", methods=["GET"])
async def list_deployments(req: Request) -> Response:
    account = req.query_params.get("account")
    return await respond(
        req,
        Role.DEPLOYMENTS_READ,
        in_thread(lambda app, c, _: {"value": app.deployments.list_deployments(account, request_id=c.request_id)}),
    )


@app.route(route="deployments/{name}", methods=["GET"])
async def get_deployment(req: Request) -> Response:
    account, name = req.query_params.get("account"), req.path_params["name"]
    return await respond(
        req,
        Role.DEPLOYMENTS_READ,
        in_thread(lambda app, c, _: app.deployments.get(account, name, request_id=c.request_id)),
    )


@app.route(route="deployments/{name}", methods=["PUT"])
async def put_deployment(req: Request) -> Response:
    return await _mutation(req, "put")


@app.route(route="deployments/{name}", methods=["PATCH"])
async def scale_deployment(req: Request) -> Response:
    return await _mutation(req, "scale")


@app.route(route="deployments/{name}", methods=["DELETE"])
async def delete_deployment(req: Request) -> Response:
    return await _mutation(req, "delete")


async def _mutation(req: Request, operation: str) -> Response:
    """PUT, PATCH and DELETE of a deployment: the same reading of the request, the service method by name."""
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    has_body = operation != "delete"

    def call(app: AppContext, context: RequestContext, body: RawBody) -> OperationResult:
        method = getattr(app.deployments, operation)
        arguments = (account, name, body) if has_body else (account, name)
        result: OperationResult = method(*arguments, wait=wait, request_id=context.request_id, audit=context.audit())
        return result

    return await respond(
        req, Role.DEPLOYMENTS_WRITE, in_thread(call), body_limit=MAX_JSON_BODY_BYTES if has_body else 0
    )


# Inference


@app.route(route="openai/deployments/{deployment}/chat/completions", methods=["POST"])
async def chat_completions(req: Request) -> Response:
    account, deployment = req.query_params.get("account"), req.path_params["deployment"]
    version = req.query_params.get("api-version")
    return await respond(
        req,
        Role.INFERENCE_INVOKE,
        lambda app, c, body: app.gateway.chat_completions(
            account, deployment, version, body, request_id=c.request_id, caller=c.caller_id, principal=c.caller
        ),
        body_limit=lambda app: app.settings.inference.max_body_bytes,  # read no further than the setting
    )


@app.route(route="process_image", methods=["POST"])
async def process_image(req: Request) -> Response:
    from services.images import analyse_image

    query = req.query_params
    want_json = "application/json" in req.headers.get("accept", "")
    return await respond(
        req,
        Role.INFERENCE_INVOKE,
        lambda app, c, image: analyse_image(
            image,
            instructions=query.get("instructions"),
            deployment=query.get("deployment"),
            max_tokens=query.get("max_tokens"),
            account=query.get("account"),
            want_json=want_json,
            request_id=c.request_id,
            caller=c.caller_id,
            gateway=app.gateway,
        ),
        body_limit=MAX_IMAGE_BODY_BYTES,
        json_body=False,  # the raw image, whatever Content-Type the caller sent (the original contract)
    )


# Fine-tuning jobs


@app.route(route="fine_tuning/jobs/{job_id}", methods=["GET"])
async def get_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import get_job

    account, job_id = req.query_params.get("account"), req.path_params["job_id"]
    return await respond(
        req,
        Role.DEPLOYMENTS_READ,
        lambda app, c, _: get_job(account, job_id, request_id=c.request_id, gateway=app.gateway),
    )


@app.route(route="fine_tuning/jobs/{job_id}/deploy", methods=["POST"])
async def deploy_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import deploy_from_job

    account, job_id, wait = req.query_params.get("account"), req.path_params["job_id"], req.query_params.get("wait")
    return await respond(
        req,
        Role.DEPLOYMENTS_WRITE,
        lambda app, c, body: deploy_from_job(
            account,
            job_id,
            body,
            wait=wait,
            request_id=c.request_id,
            audit=c.audit(),
            gateway=app.gateway,
            deployments=app.deployments,
            run_blocking=app.run_blocking,
            intents=lambda: app.work_store,
        ),
        body_limit=MAX_JSON_BODY_BYTES,
    )


# Audit trail and contract


@app.route(route="audit", methods=["GET"])
async def query_audit(req: Request) -> Response:
    from services.audit import query

    q = req.query_params
    return await respond(
        req,
        Role.AUDIT_READ,
        in_thread(
            lambda app, _c, _b: query(
                app.audit_store,
                app.settings,
                deployment=q.get("deployment"),
                account=q.get("account"),
                since=q.get("since"),
                until=q.get("until"),
                top=q.get("top"),
                continuation=q.get("continuationToken"),
            )
        ),
    )


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi_document(req: Request) -> Response:
    from services.contract import openapi_document as document

    return await respond(req, None, lambda _a, _c, _b: document())
