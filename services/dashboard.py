"""The platform team's page: its few static files (services/dashboard/), served by the app with strict headers.

The page holds no data, secret or token: its script asks the JSON API (GET /overview, /audit, the deployment
routes) with the caller's own session, so it loads for any caller and shows what the API answers, 403 included.
Only the files listed here are served; the Content-Security-Policy allows scripts, styles and requests from the
app's own origin only (no inline script or style, no framing).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .errors import NotFound
from .results import ProxyResponse

FOLDER = Path(__file__).with_name("dashboard")
FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",
}


class FileNotFound(NotFound):
    code = "FileNotFound"


@lru_cache(maxsize=len(FILES))
def _read(name: str) -> bytes:
    return (FOLDER / name).read_bytes()


async def page_file(name: str = "index.html") -> ProxyResponse:
    """One of the page's files with its type and the security headers; any other name is 404 FileNotFound."""
    media_type = FILES.get(name)
    if media_type is None:
        raise FileNotFound(
            f"The page has no file '{name[:80]}'. Open /api/dashboard; its files are {', '.join(sorted(FILES))}.",
            target="file",
        )
    return ProxyResponse(200, {**SECURITY_HEADERS, "content-type": media_type}, body=_read(name))
