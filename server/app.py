"""The application factory: routes, error handlers and the objects they share."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from server.config import Settings
from server.errors import exception_handlers
from server.originals import MEDIA_TYPES, respond_original
from storage import resolve

_IMAGE_CONTENT = {media_type: {} for media_type in sorted(set(MEDIA_TYPES.values()))}
_ERROR_CONTENT = {"application/json": {"example": {"detail": "Not Found"}}}


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for `settings`. All state lives on the app; nothing is global."""
    root = str(settings.storage.root)
    extensions = frozenset(settings.storage.extensions)
    cache_control = settings.http.cache_control_originals

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield

    app = FastAPI(
        title="thumbserver",
        summary="Originals from disk and thumbnails on demand.",
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )
    app.state.settings = settings

    @app.get("/healthz", response_class=JSONResponse, tags=["service"])
    async def healthz() -> JSONResponse:
        """Liveness: answers while the event loop runs."""
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def original(path: str, request: Request) -> Response:
        """The original file `{root}/{path}`, with conditional and range requests."""
        # stat() of a file whose inode is cached costs microseconds: cheaper than a thread hop.
        source = resolve(root, path, extensions)
        return respond_original(source, request.headers, cache_control=cache_control)

    _add_get_and_head(
        app,
        "/{path:path}",
        original,
        summary="An original image",
        responses={
            200: {"content": _IMAGE_CONTENT, "description": "The file."},
            206: {"content": _IMAGE_CONTENT, "description": "The requested byte ranges."},
            304: {"description": "Not modified."},
            404: {"content": _ERROR_CONTENT, "description": "No such image."},
            416: {"content": _ERROR_CONTENT, "description": "Range not satisfiable."},
        },
    )
    return app


def _add_get_and_head(app: FastAPI, path: str, endpoint, **options) -> None:
    """GET documented in OpenAPI, HEAD served by the same endpoint (one operation id each)."""
    app.add_api_route(path, endpoint, methods=["GET"], response_class=Response, tags=["images"], **options)
    app.add_api_route(path, endpoint, methods=["HEAD"], response_class=Response, include_in_schema=False)
