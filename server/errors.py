"""Every error a client can see, and the one place that turns them into responses.

    Exception                      status  raised by
    ├── storage.NotFound            404    storage.resolve / read_source: missing or refused path
    ├── server.spec.InvalidSpec     400    server.spec.parse_spec: bad grammar, size or allow-list
    ├── server.imaging.ImageError   422    server.imaging: the source cannot become a thumbnail
    │   ├── UndecodableImage               corrupt, truncated, not an image, refused decoder
    │   └── SourceTooLarge                 over limits.max_source_bytes / max_source_pixels
    ├── RenderUnavailable           503    server.rendering: queue full or render deadline passed
    ├── conditional.RangeNotSatisfiable 416
    └── starlette HTTPException     its own (405 for other methods, 404 for unknown routes)

Every error body is JSON `{"detail": "..."}` with `Cache-Control: no-store`; details never
name files, folders or library internals.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.conditional import RangeNotSatisfiable
from server.imaging import ImageError
from server.spec import InvalidSpec
from storage import NotFound

logger = logging.getLogger("thumbserver")

ALLOWED_METHODS = "GET, HEAD"


class RenderUnavailable(Exception):
    """The render could not be done now (queue full, or past its deadline); try again later."""

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    if headers:
        all_headers.update(headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=all_headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "Not Found")


async def _invalid_spec(request: Request, exc: Exception) -> Response:
    return error_response(400, f"Invalid thumbnail spec: {exc}")


async def _unprocessable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ImageError)
    return error_response(422, exc.public_message)


async def _range_not_satisfiable(request: Request, exc: Exception) -> Response:
    size = getattr(exc, "size", None)
    headers = {"Content-Range": f"bytes */{size}"} if size is not None else {}
    return error_response(416, "Range Not Satisfiable", headers)


async def _render_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RenderUnavailable)
    return error_response(503, exc.detail, {"Retry-After": str(exc.retry_after)})


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ALLOWED_METHODS
    return error_response(exc.status_code, str(exc.detail), headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error for %s %s", request.method, request.url.path)
    return error_response(500, "Internal Server Error")


def exception_handlers() -> dict[type[Exception] | int, object]:
    """The handlers `create_app` installs."""
    return {
        NotFound: _not_found,
        InvalidSpec: _invalid_spec,
        ImageError: _unprocessable,
        RangeNotSatisfiable: _range_not_satisfiable,
        RenderUnavailable: _render_unavailable,
        HTTPException: _http_exception,
        Exception: _unexpected,
    }
