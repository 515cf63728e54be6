"""Every error a client can see, and the one table that turns them into responses.

    Exception                            status  raised by
    ├── storage.NotFound                  404    storage stores, the URL classifier
    ├── thumbnails.InvalidSpec            400    server.thumbnails.spec: grammar, size, allow-list
    ├── gallery.InvalidPage               400    server.http.gallery: a ?page= that is not a page
    ├── thumbnails.BadSignature           403    the URL classifier: unsigned or badly signed
    ├── imaging.ImageError                422    server.imaging: the source cannot become a thumbnail
    │   ├── UndecodableImage                     corrupt, truncated, not an image, refused decoder
    │   ├── SourceTooLarge                       over limits.max_source_bytes / max_source_pixels
    │   └── (RenderCrashed)                      server.thumbnails.pool: a render process died
    ├── thumbnails.RenderUnavailable      503    server.thumbnails.pool: queue full, deadline passed
    ├── storage.SourceChanged             503    the original kept changing while it was read
    ├── conditional.RangeNotSatisfiable   416    server.http.conditional.parse_range
    ├── MethodNotAllowed                  405    the image front, for methods image URLs don't take
    ├── uploads.BadUpload                 400    server.http.uploads: no body, no field `file`, bad form
    ├── uploads.UploadTimeout             408    server.http.uploads: the body did not arrive in time
    ├── uploads.UploadTooLarge            413    server.http.uploads: over uploads.max_bytes
    ├── uploads.UnsupportedUploadType     415    server.http.uploads: not an image type we decode
    └── starlette HTTPException           its own (405 with the route's Allow, 404 for no route)

Every error body is JSON `{"detail": "..."}` with `Cache-Control: no-store`; details never
name files, folders or library internals. Both the image front and the FastAPI routes answer
errors through `response_for`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from server.http.conditional import RangeNotSatisfiable
from server.http.gallery import InvalidPage
from server.http.responses import error_response
from server.http.uploads import BadUpload, UnsupportedUploadType, UploadTimeout, UploadTooLarge
from server.imaging import ImageError
from server.thumbnails import BadSignature, InvalidSpec, RenderUnavailable
from storage import NotFound, SourceChanged

logger = logging.getLogger("thumbserver")


class MethodNotAllowed(Exception):
    """A method the resource does not take; `allow` lists those it does."""

    def __init__(self, allow: str) -> None:
        super().__init__(allow)
        self.allow = allow


Rule = tuple[int, Callable[[Exception], str], Callable[[Exception], dict[str, str]]]


def _no_headers(exc: Exception) -> dict[str, str]:
    return {}


# Most specific first: the first matching type decides.
TABLE: tuple[tuple[type[Exception], Rule], ...] = (
    (NotFound, (404, lambda e: "Not Found", _no_headers)),
    (InvalidSpec, (400, lambda e: f"Invalid thumbnail spec: {e}", _no_headers)),
    (InvalidPage, (400, str, _no_headers)),
    (BadSignature, (403, lambda e: "Forbidden", _no_headers)),
    (ImageError, (422, lambda e: e.public_message, _no_headers)),  # type: ignore[attr-defined]
    (RenderUnavailable, (503, lambda e: e.detail, lambda e: {"Retry-After": str(e.retry_after)})),  # type: ignore[attr-defined]
    (SourceChanged, (503, lambda e: "The source image is changing; try again shortly", lambda e: {"Retry-After": "1"})),
    (RangeNotSatisfiable, (416, lambda e: "Range Not Satisfiable",
                           lambda e: {"Content-Range": f"bytes */{e.size}"})),  # type: ignore[attr-defined]
    (MethodNotAllowed, (405, lambda e: "Method Not Allowed", lambda e: {"Allow": e.allow})),  # type: ignore[attr-defined]
    # The rest of a refused body is never read: the connection closes after the answer.
    (BadUpload, (400, str, _no_headers)),
    (UploadTimeout, (408, str, lambda e: {"Connection": "close"})),
    (UploadTooLarge, (413, str, lambda e: {"Connection": "close"})),
    (UnsupportedUploadType, (415, str, _no_headers)),
)


def response_for(exc: Exception, *, context: str = "") -> Response:
    """The error response for `exc`; anything not in the table is logged and is a 500."""
    for kind, (status, detail, headers) in TABLE:
        if isinstance(exc, kind):
            return error_response(status, detail(exc), headers(exc))
    if isinstance(exc, HTTPException):
        extra = dict(exc.headers or {})
        if "Allow" in extra:
            # Starlette joins the route's methods from a set: give them one stable order.
            extra["Allow"] = ", ".join(sorted(method.strip() for method in extra["Allow"].split(",")))
        return error_response(exc.status_code, str(exc.detail), extra)
    logger.error("unhandled error %s", context, exc_info=exc)
    return error_response(500, "Internal Server Error")


async def _handle(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path; GET and HEAD of
        # one path may be two routes, so Allow is the union over every route of the path.
        exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": allowed_methods(request)})
    return response_for(exc, context=f"for {request.method} {request.url.path}")


def allowed_methods(request: Request) -> str:
    """The methods the app's routes take for this request's path, sorted."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def exception_handlers() -> dict[type[Exception] | int, object]:
    """The handlers `create_app` installs: the same table for every route."""
    return {HTTPException: _handle, Exception: _handle, **{kind: _handle for kind, _ in TABLE}}
