"""The ASGI app in process, for tests that need no real server."""

from __future__ import annotations

import httpx

from server.app import create_app
from server.config import Settings


class client_for:
    """`async with client_for(settings) as http:` — an app with its lifespan started and stopped.

    `front=False` sends image URLs through the FastAPI routes instead of the pure-ASGI front.
    """

    def __init__(self, settings: Settings, *, front: bool = True) -> None:
        self.app = create_app(settings, front=front)

    async def __aenter__(self) -> httpx.AsyncClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(*exc_info)
