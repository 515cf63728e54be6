"""The FastAPI application: `/healthz`, the API description, and the image routes' documented
doors, which call the same `ImageHandler` as the front."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match

from server.formats import FORMATS, OUTPUT_FORMATS
from server.http.errors import exception_handlers
from server.http.front import ImageFront
from server.http.images import ImageHandler
from server.thumbnails import ThumbnailService
from storage import NotFound

_IMAGE_CONTENT = {media_type: {} for media_type in sorted({f.media_type for f in FORMATS.values()})}
_THUMBNAIL_CONTENT = {FORMATS[name].media_type: {} for name in OUTPUT_FORMATS}
_ERROR_CONTENT = {"application/json": {"example": {"detail": "Not Found"}}}


def build_app(*, images: ImageHandler, thumbnails: ThumbnailService, thumbnail_prefix: str, lifespan,
              front: bool = True) -> FastAPI:
    """The ASGI app. `front=False` leaves out the pure-ASGI front, so image URLs go through the
    FastAPI routes (the parity tests compare both doors)."""
    app = FastAPI(
        title="thumbserver",
        summary="Originals from disk and thumbnails on demand.",
        lifespan=lifespan,
        # No OpenTelemetry here: skip its per-request checks on the hot path.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers=exception_handlers(),
    )

    async def healthz() -> JSONResponse:
        """Liveness: answers while the event loop runs."""
        body = {
            "status": "ok",
            "cache": asdict(thumbnails.memory.stats()),
            "shared": await thumbnails.shared.stats() if thumbnails.shared is not None else {"kind": "none"},
            "renders": {"started": thumbnails.renders, "in_flight": thumbnails.pool.in_flight},
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    app.add_api_route("/healthz", healthz, methods=["GET"], response_class=JSONResponse, tags=["service"])
    app.add_api_route("/healthz", healthz, methods=["HEAD"], response_class=JSONResponse, include_in_schema=False)

    # Everything routed so far owns its first path segment; so will routes added later, as long
    # as they are added before the server starts (the lifespan reserves them again).
    images.classifier.reserve(reserved_segments(app.routes))

    async def image(request: Request) -> Response:
        url = images.classify(request.scope)
        # None: a path another route owns that no route here matched, such as /docs/x.
        return await images.respond(request.scope, NotFound("not an image URL") if url is None else url)

    class ImageRoute(APIRoute):
        """Matches only what the classifier calls an image URL, so the catch-all `/{path:path}`
        never shadows a route added later, whatever the order of registration."""

        def matches(self, scope):
            if scope["type"] == "http" and images.classify(scope) is None:
                return Match.NONE, {}
            return super().matches(scope)

    _add_image_route(app, ImageRoute, thumbnail_prefix + "/{spec}/{path:path}", image, "thumbnail",
                     summary="A thumbnail made on demand",
                     description="A thumbnail of `{root}/{path}` as `{spec}` describes it (see the README's grammar).",
                     responses={
                         200: {"content": _THUMBNAIL_CONTENT, "description": "The encoded thumbnail."},
                         304: {"description": "Not modified."},
                         400: {"content": _ERROR_CONTENT, "description": "Bad spec or size."},
                         404: {"content": _ERROR_CONTENT, "description": "No such image."},
                         422: {"content": _ERROR_CONTENT, "description": "The source cannot be made into a thumbnail."},
                         503: {"content": _ERROR_CONTENT, "description": "Render queue full or render too slow."},
                     })
    _add_image_route(app, ImageRoute, "/{path:path}", image, "original",
                     summary="An original image",
                     description="The original file `{root}/{path}`, with conditional and range requests.",
                     responses={
                         200: {"content": _IMAGE_CONTENT, "description": "The file."},
                         206: {"content": _IMAGE_CONTENT, "description": "The requested byte ranges."},
                         304: {"description": "Not modified."},
                         404: {"content": _ERROR_CONTENT, "description": "No such image."},
                         416: {"content": _ERROR_CONTENT, "description": "Range not satisfiable."},
                     })
    if front:
        app.add_middleware(ImageFront, images=images)
    return app


def reserved_segments(routes: Iterable[BaseRoute]) -> set[str]:
    """The literal first path segments of `routes` (`/healthz` -> healthz, `/docs/x` -> docs)."""
    found = set()
    for route in routes:
        path = getattr(route, "path", "")
        first = path.lstrip("/").split("/")[0]
        if first and "{" not in first:
            found.add(first)
    return found


def _add_image_route(app: FastAPI, route_class: type[APIRoute], path: str, endpoint: Callable, name: str,
                     **options) -> None:
    """GET documented in OpenAPI, HEAD served by the same endpoint (one operation id each)."""

    async def documented(spec: str, path: str, request: Request) -> Response:  # the parameters OpenAPI shows
        return await endpoint(request)

    async def original(path: str, request: Request) -> Response:
        return await endpoint(request)

    handler = documented if name == "thumbnail" else original
    handler.__name__ = name
    app.router.routes.append(route_class(path, handler, methods=["GET"], response_class=Response, tags=["images"],
                                         **options))
    app.router.routes.append(route_class(path, handler, methods=["HEAD"], response_class=Response,
                                         include_in_schema=False))
