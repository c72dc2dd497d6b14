"""GET /api/usage: the usage ledger summed per caller, deployment or account over a period (role Audit.Read)."""

from __future__ import annotations

from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.respond import AUTH_LEVEL, in_thread, respond
from services.auth import Role
from services.context import AppContext
from services.request_context import RequestContext
from services.web import RawBody

bp = func.Blueprint(http_auth_level=AUTH_LEVEL)  # type: ignore[no-untyped-call]


@bp.route(route="usage", methods=["GET"])
async def query_usage(req: Request) -> Response:
    from services.usage import query_usage as query

    q = req.query_params

    def call(app: AppContext, _c: RequestContext, _b: RawBody) -> dict[str, Any]:
        ledger = app.shared_gateway.ledger
        return query(
            ledger.client if ledger is not None else None,
            start=q.get("from"),
            end=q.get("to"),
            group_by=q.get("groupBy"),
        )

    return await respond(req, Role.AUDIT_READ, in_thread(call))
