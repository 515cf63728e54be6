"""Shared fixtures: an image root in tmp_path, settings for it, and an httpx client on the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.config import Settings, load_settings


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """An empty image root; tests write the files they need into it."""
    root = tmp_path / "images"
    root.mkdir()
    return root.resolve()


@pytest.fixture
def make_settings(image_root: Path) -> Callable[..., Settings]:
    """`make_settings(limits={"render_workers": 1})`: settings for `image_root` with overrides."""

    def build(**sections: dict[str, Any]) -> Settings:
        overrides = {"storage": {"root": str(image_root)}} | {k: dict(v) for k, v in sections.items()}
        if "storage" in sections:
            overrides["storage"] = {"root": str(image_root), **sections["storage"]}
        return load_settings(None, environ={}, overrides=overrides)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the ASGI app in process (lifespan run around it)."""
    async with client_for(settings) as http:
        yield http


class client_for:
    """`async with client_for(settings) as http:` — an app with its lifespan started and stopped."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)

    async def __aenter__(self) -> httpx.AsyncClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return self._client

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(*exc_info)
