"""The ASGI app in process, for tests that need no real server."""

from __future__ import annotations

import httpx

from server.app import create_app
from server.config import Settings


class AppClient(httpx.AsyncClient):
    """An httpx client on one in-process app, which tests may inspect (`client.app.state`)."""

    def __init__(self, app, **options) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), **options)
        self.app = app


class client_for:
    """`async with client_for(settings) as http:` — an app with its lifespan started and stopped.

    `front=False` sends image URLs through the FastAPI routes instead of the pure-ASGI front.
    """

    def __init__(self, settings: Settings, *, front: bool = True) -> None:
        self.app = create_app(settings, front=front)

    async def __aenter__(self) -> AppClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        self._client = AppClient(self.app, base_url="http://testserver")
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(*exc_info)
