"""The cold-start floor: a minimal Function App on the same Functions extension as the service.

One route returning a constant, with the azurefunctions-extensions-http-fastapi request/response types, so
serving it pays for Python, azure-functions, the extension (FastAPI/Starlette) and the local host, and
nothing of the service.
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="ping", methods=["GET"])
async def ping(req: Request) -> Response:
    return JSONResponse({"status": "ok"})
