"""The platform team's page and the overview it shows: GET /overview, GET /dashboard, GET /dashboard/{file}."""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.respond import AUTH_LEVEL, respond
from services.auth import Role

bp = func.Blueprint(http_auth_level=AUTH_LEVEL)  # type: ignore[no-untyped-call]  # the library ships no types here


@bp.route(route="overview", methods=["GET"])
async def get_overview(req: Request) -> Response:
    from services.overview import overview

    return await respond(req, Role.DEPLOYMENTS_READ, lambda app, c, _: overview(app, c.caller, request_id=c.request_id))


# The page itself needs no role: it holds no data, and a caller without one must see the API's 403, not a broken
# page. In Azure, App Service Authentication still signs the caller in before it loads.
@bp.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def dashboard_page(req: Request) -> Response:
    from services.dashboard import page_file

    return await respond(req, None, lambda _a, _c, _b: page_file())


@bp.route(route="dashboard/{file}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def dashboard_file(req: Request) -> Response:
    from services.dashboard import page_file

    name = req.path_params["file"]
    return await respond(req, None, lambda _a, _c, _b: page_file(name))
