"""The pure-ASGI image front: owns image URLs end to end, in front of FastAPI.

FastAPI's per-request machinery (routing, dependency solving, request objects, the middleware
stack) costs as much as the rest of a cache hit. Image URLs — every method, hits, misses,
304s, ranges and errors — are answered here by the one `ImageHandler`; everything else
(`/healthz`, `/docs`, `/openapi.json`, later `/metrics`…) goes on to FastAPI, whose routes
for images call the same handler, so both doors give the same answers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from server.http.images import ImageHandler


class ImageFront:
    def __init__(self, app: ASGIApp, *, images: ImageHandler) -> None:
        self.app = app
        self._images = images

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        url = self._images.classify(scope)
        if url is None:
            return await self.app(scope, receive, send)
        response = await self._images.respond(scope, url, receive)
        await response(scope, receive, send)
