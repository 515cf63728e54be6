"""The application factory: routes, error handlers and the objects they share."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from cache import CoalescingCache
from server import imaging
from server.config import Settings
from server.errors import exception_handlers
from server.hotpath import HotPath
from server.originals import MEDIA_TYPES, OriginalService
from server.rendering import RenderPool
from server.thumbnails import ThumbnailService, thumbnail_size

_IMAGE_CONTENT = {media_type: {} for media_type in sorted(set(MEDIA_TYPES.values()))}
_THUMBNAIL_CONTENT = {media_type: {} for media_type in imaging.MEDIA_TYPES.values()}
_ERROR_CONTENT = {"application/json": {"example": {"detail": "Not Found"}}}


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app for `settings`. All state lives on the app; nothing is global."""
    originals = OriginalService(settings)

    pool = RenderPool(
        workers=settings.limits.render_workers,
        queue=settings.limits.render_queue,
        timeout_s=settings.limits.render_timeout_s,
    )
    thumbnails = ThumbnailService(
        settings, cache=CoalescingCache(settings.cache.max_bytes, sizeof=thumbnail_size), pool=pool
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.shutdown()

    app = FastAPI(
        title="thumbserver",
        summary="Originals from disk and thumbnails on demand.",
        lifespan=lifespan,
        # No OpenTelemetry here: skip its per-request checks on the hot path.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers=exception_handlers(),
    )
    app.add_middleware(HotPath, thumbnails=thumbnails, originals=originals, prefix=settings.thumbnails.prefix)
    app.state.settings = settings
    app.state.thumbnails = thumbnails

    @app.get("/healthz", response_class=JSONResponse, tags=["service"])
    async def healthz() -> JSONResponse:
        """Liveness: answers while the event loop runs."""
        body = {
            "status": "ok",
            "cache": asdict(thumbnails.cache.stats()),
            "renders": {"started": thumbnails.renders, "in_flight": pool.in_flight},
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def thumbnail(spec: str, path: str, request: Request) -> Response:
        """A thumbnail of `{root}/{path}` as `{spec}` describes it (see the README's grammar)."""
        return await thumbnails.respond(spec, path, request.headers)

    _add_get_and_head(
        app,
        settings.thumbnails.prefix + "/{spec}/{path:path}",
        thumbnail,
        summary="A thumbnail made on demand",
        responses={
            200: {"content": _THUMBNAIL_CONTENT, "description": "The encoded thumbnail."},
            304: {"description": "Not modified."},
            400: {"content": _ERROR_CONTENT, "description": "Bad spec or size."},
            404: {"content": _ERROR_CONTENT, "description": "No such image."},
            422: {"content": _ERROR_CONTENT, "description": "The source cannot be made into a thumbnail."},
            503: {"content": _ERROR_CONTENT, "description": "Render queue full or render too slow."},
        },
    )

    async def original(path: str, request: Request) -> Response:
        """The original file `{root}/{path}`, with conditional and range requests."""
        return await originals.respond(path, request.headers, method=request.method)

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
