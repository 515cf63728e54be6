"""The FastAPI application: `/healthz`, the API description, and the image routes' documented
doors, which call the same `ImageHandler` as the front."""

from __future__ import annotations

import base64
import hashlib
import io
from importlib.resources import files
from collections.abc import Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from PIL import Image
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match

from server.formats import FORMATS, OUTPUT_FORMATS
from server.http.errors import exception_handlers
from server.http.front import ImageFront
from server.http.images import ImageHandler
from server.http.observe import Metrics
from server.thumbnails import ThumbnailService
from storage import NotFound

_IMAGE_CONTENT = {media_type: {} for media_type in sorted({f.media_type for f in FORMATS.values()})}
_THUMBNAIL_CONTENT = {FORMATS[name].media_type: {} for name in OUTPUT_FORMATS}
_ERROR_CONTENT = {"application/json": {"example": {"detail": "Not Found"}}}
INFO_EXAMPLE = {
    "width": 4000, "height": 3000, "format": "jpeg", "media_type": "image/jpeg", "bytes": 2345678, "frames": 1,
    "animated": False, "has_alpha": False, "orientation": 6, "etag": '"5f3a1c2b9d000-23ca4e"',
    "last_modified": "Tue, 01 Dec 2026 12:00:00 GMT", "dominant_color": "#4a6b8c",
    "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
}
_BINARY = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
# Written out rather than declared as an `UploadFile` parameter: FastAPI would read (and spool)
# the whole form before the handler runs; server.http.uploads reads it bounded, as it streams.
_UPLOAD_BODY = {
    "required": True,
    "description": "The image: a multipart/form-data field `file`, or the whole body with its image type.",
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {**_BINARY, "description": "The image."}}}},
        **{media_type: {"schema": _BINARY} for media_type in sorted({f.media_type for f in FORMATS.values()})},
    },
}


def build_app(*, images: ImageHandler, thumbnails: ThumbnailService, thumbnail_prefix: str, lifespan,
              info_prefix: str = "/info",
              front: bool = True, docs: bool = True, metrics: Metrics | None = None,
              metrics_path: str = "/metrics", robots_txt: str | None = None, favicon: bytes | None = None,
              uploads: bool = False, signed: bool = False) -> FastAPI:
    """The ASGI app. `front=False` leaves out the pure-ASGI front, so image URLs go through the
    FastAPI routes (the parity tests compare both doors). `uploads`: document and route
    `POST {prefix}/{spec}` (`{prefix}/{signature}/{spec}` when `signed`)."""
    app = FastAPI(
        openapi_url="/openapi.json" if docs else None,
        title="thumbserver",
        summary="Originals from disk and thumbnails on demand.",
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI and ReDoc from a public CDN: /docs is served below,
        # from pinned assets of our own, and ReDoc not at all.
        docs_url=None,
        redoc_url=None,
        # No OpenTelemetry here: skip its per-request checks on the hot path.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers=exception_handlers(),
    )

    async def healthz() -> JSONResponse:
        """Liveness: answers while the event loop runs. Counters are on /metrics only: whether
        an image was viewed lately must not be readable from a public endpoint."""
        return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

    app.add_api_route("/healthz", healthz, methods=["GET"], response_class=JSONResponse, tags=["service"])
    app.add_api_route("/healthz", healthz, methods=["HEAD"], response_class=JSONResponse, include_in_schema=False)

    if docs:
        _add_docs(app)
    _add_site_files(app, robots_txt=robots_txt, favicon=favicon or default_favicon())
    if metrics is not None:

        def memory_tier() -> tuple[int, int]:
            stats = thumbnails.memory.stats()
            return stats.bytes, stats.entries

        metrics.memory_tier = memory_tier

        async def exposition() -> Response:
            """Prometheus text exposition, every worker process summed."""
            return metrics.exposition()

        app.add_api_route(metrics_path, exposition, methods=["GET"], tags=["service"],
                          response_class=Response, responses={200: {"content": {"text/plain": {}}}})

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
    _add_image_route(app, ImageRoute, info_prefix + "/{path:path}", image, "info",
                     summary="Facts about an original image",
                     description=(
                         "JSON facts about `{root}/{path}`: `width` and `height` as displayed (after EXIF "
                         "orientation), `format`, `media_type`, `bytes`, `frames`, `animated`, `has_alpha`, "
                         "`orientation` (1-8), the original's `etag` and `last_modified`, `dominant_color` "
                         "(`#rrggbb`) and `blurhash` (4x3 components). With `security.sign_originals`, "
                         "the URL is `{prefix}/{signature}/{path}`."),
                     responses={
                         200: {"content": {"application/json": {"example": INFO_EXAMPLE}}, "description": "The facts."},
                         304: {"description": "Not modified."},
                         403: {"content": _ERROR_CONTENT, "description": "Missing or bad signature."},
                         404: {"content": _ERROR_CONTENT, "description": "No such image."},
                         422: {"content": _ERROR_CONTENT, "description": "The source cannot be decoded."},
                         503: {"content": _ERROR_CONTENT, "description": "Render queue full."},
                     })
    if uploads:
        _add_upload_route(app, ImageRoute, thumbnail_prefix + ("/{signature}/{spec}" if signed else "/{spec}"),
                          images, signed=signed)
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


SITE_FILES_CACHE = "public, max-age=86400"


def default_favicon() -> bytes:
    """A 16x16 grey square as an ICO: browsers navigating to an image ask for /favicon.ico."""
    buffer = io.BytesIO()
    Image.new("RGBA", (16, 16), (96, 96, 96, 255)).save(buffer, "ICO", sizes=[(16, 16)])
    return buffer.getvalue()


def _add_site_files(app: FastAPI, *, robots_txt: str | None, favicon: bytes) -> None:
    """/favicon.ico and /robots.txt: small, cacheable answers instead of a no-store 404 each time."""
    icon_etag = '"' + hashlib.blake2b(favicon, digest_size=8).hexdigest() + '"'

    async def favicon_ico(request: Request) -> Response:
        headers = {"ETag": icon_etag, "Cache-Control": SITE_FILES_CACHE}
        if request.headers.get("if-none-match") == icon_etag:
            return Response(status_code=304, headers=headers)
        return Response(favicon, media_type="image/x-icon", headers=headers)

    async def robots(request: Request) -> Response:
        if robots_txt is None:
            return Response(b'{"detail":"Not Found"}', status_code=404, media_type="application/json",
                            headers={"Cache-Control": SITE_FILES_CACHE})
        return Response(robots_txt, media_type="text/plain", headers={"Cache-Control": SITE_FILES_CACHE})

    for path, endpoint in (("/favicon.ico", favicon_ico), ("/robots.txt", robots)):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)


DOCS_ASSETS = "/docs/assets"
# Swagger UI 5 (fastapi-offline's pinned copy): swagger-ui-bundle's 4.x cannot read OpenAPI 3.1,
# which FastAPI writes ("Unable to render this definition").
SWAGGER_UI_FILES = files("fastapi_offline") / "static"


def _add_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from fastapi-offline's pinned copy (served here), with a
    Content-Security-Policy that lets the page load nothing from anywhere else."""
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        # Swagger UI would otherwise ask validator.swagger.io for a badge.
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = page.body.decode()
    # The page's one inline script (it starts Swagger UI) is allowed by its hash, nothing else.
    inline = html.rsplit("<script>", 1)[1].split("</script>", 1)[0]
    script_hash = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    policy = (
        f"default-src 'none'; script-src 'self' 'sha256-{script_hash}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    headers = {"Content-Security-Policy": policy, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    async def docs() -> HTMLResponse:
        """The API description, browsable."""
        return HTMLResponse(html, headers=headers)

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", docs, methods=["HEAD"], include_in_schema=False)
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(SWAGGER_UI_FILES)), name="docs-assets")


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

    handler = documented if name == "thumbnail" else original  # info shows one parameter, like originals
    handler.__name__ = name
    app.router.routes.append(route_class(path, handler, methods=["GET"], response_class=Response, tags=["images"],
                                         **options))
    app.router.routes.append(route_class(path, handler, methods=["HEAD"], response_class=Response,
                                         include_in_schema=False))


def _error(description: str, example: str) -> dict:
    return {"description": description, "content": {"application/json": {"example": {"detail": example}}}}


def _add_upload_route(app: FastAPI, route_class: type[APIRoute], path: str, images: ImageHandler, *,
                      signed: bool) -> None:
    """`POST {prefix}/{spec}`, documented with both request bodies and the image responses."""

    async def respond(request: Request) -> Response:
        url = images.classify(request.scope)
        return await images.respond(request.scope, NotFound("not an image URL") if url is None else url,
                                    request.receive)

    async def upload(spec: str, request: Request) -> Response:  # the parameters OpenAPI shows
        return await respond(request)

    async def signed_upload(signature: str, spec: str, request: Request) -> Response:
        return await respond(request)

    async def other_post(rest: str, request: Request) -> Response:
        return await respond(request)

    handler = signed_upload if signed else upload
    handler.__name__ = "upload"
    # Any other POST under the prefix (unsigned, a thumbnail URL) gets the same answer as at the
    # front (403, 405…), not the catch-all route's 405.
    prefix = path.partition("/{")[0]
    app.router.routes.append(route_class(prefix + "/{rest:path}", other_post, methods=["POST"],
                                         include_in_schema=False))
    app.router.routes.insert(len(app.router.routes) - 1, route_class(
        path, handler, methods=["POST"], response_class=Response, tags=["images"],
        summary="A thumbnail of an uploaded image",
        description="The image in the body (multipart field `file`, or the raw body with `Content-Type: image/...`) "
                    "made into a thumbnail as `{spec}` describes; nothing is cached (`Cache-Control: no-store`).",
        openapi_extra={"requestBody": _UPLOAD_BODY},
        responses={
            200: {"content": _THUMBNAIL_CONTENT, "description": "The encoded thumbnail."},
            400: _error("Bad spec, or no image in the request.", "Invalid thumbnail spec: unknown modifier 'sepia'"),
            **({403: _error("Bad or missing signature.", "Forbidden")} if signed else {}),
            408: _error("The body did not arrive in time.", "The upload did not arrive within 30 s."),
            413: _error("The upload is larger than uploads.max_bytes.", "The upload is larger than 20971520 bytes."),
            415: _error("Not an image type this server decodes.", "text/plain is not an image type this server decodes; …"),
            422: _error("The image cannot be made into a thumbnail.", "The source is not an image that can be decoded."),
            503: _error("Render queue full or render too slow.", "Too many renders waiting; try again shortly"),
        },
    ))
