"""A pure-ASGI front for the two hot routes, in front of FastAPI's routing.

FastAPI's per-request machinery (routing, dependency solving, request objects, the middleware
stack) costs as much as the rest of a cache hit. For `GET`/`HEAD` of an original or of a
thumbnail that needs no render, this front answers directly with the same services the FastAPI
routes use. Everything else — renders, errors, other methods, `/healthz`, `/docs` — goes on to
the FastAPI app unchanged, so status codes and error bodies have one implementation.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from server.originals import OriginalService
from server.thumbnails import ThumbnailService

# The request headers the image routes read. ASGI servers lowercase header names.
_READ_HEADERS = {
    name.encode(): name for name in ("accept", "if-none-match", "if-modified-since", "range", "if-range")
}
# FastAPI's own pages: never originals.
_APP_PATHS = frozenset({"/healthz", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"})


class HotPath:
    """ASGI middleware: answers cache hits, 304s and plain originals; passes the rest on."""

    def __init__(self, app: ASGIApp, *, thumbnails: ThumbnailService, originals: OriginalService, prefix: str) -> None:
        self.app = app
        self._thumbnails = thumbnails
        self._originals = originals
        self._prefix = prefix + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        path: str = scope["path"]
        headers = _read_headers(scope)
        try:
            if path.startswith(self._prefix):
                spec, slash, url_path = path[len(self._prefix) :].partition("/")
                response = self._thumbnails.respond_if_ready(spec, url_path, headers) if slash else None
            elif path.startswith("/") and path not in _APP_PATHS and "range" not in headers:
                response = await self._originals.respond(path[1:], headers, method=scope["method"])
            else:
                response = None
        except Exception:
            # Errors are the FastAPI app's business: it raises the same one again and maps it.
            response = None
        if response is None:
            return await self.app(scope, receive, send)
        await response(scope, receive, send)


def _read_headers(scope: Scope) -> dict[str, str]:
    """The few request headers the image routes use, in one pass over the raw list."""
    found = {}
    for name, value in scope["headers"]:
        wanted = _READ_HEADERS.get(name)
        if wanted is not None:
            found[wanted] = value.decode("latin-1")
    return found
