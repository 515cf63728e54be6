"""Shared fixtures: an image root in tmp_path, settings for it, and an httpx client on the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.config import Settings, load_settings
from tests.support.app import client_for


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """An empty image root; tests write the files they need into it."""
    root = tmp_path / "images"
    root.mkdir()
    return root.resolve()


@pytest.fixture
def make_settings(image_root: Path, tmp_path: Path) -> Callable[..., Settings]:
    """`make_settings(limits={"render_workers": 1})`: settings for `image_root` with overrides.

    The shared tier is the default (disk), in a folder of the test's own: never the user's cache.
    """

    def build(**sections: dict[str, Any]) -> Settings:
        overrides = {k: dict(v) for k, v in sections.items()}
        overrides["storage"] = {"root": str(image_root), **sections.get("storage", {})}
        overrides["cache"] = {"disk_path": str(tmp_path / "results"), **sections.get("cache", {})}
        overrides["limits"] = {"host_intermediate_path": str(tmp_path / "host-intermediates"),
                               **sections.get("limits", {})}
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


@pytest.fixture(autouse=True, scope="session")
def _session_host_intermediates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Servers that fixtures wider than a test start keep theirs in the session's folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THUMBSERVER_LIMITS_HOST_INTERMEDIATE_PATH", str(tmp_path_factory.mktemp("host-intermediates")))
        yield


@pytest.fixture(autouse=True)
def _own_host_intermediates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started by a test keep the machine's intermediates in a folder of the test's own:
    never /dev/shm, where one test's decodes would be another's (or a user's server's)."""
    monkeypatch.setenv("THUMBSERVER_LIMITS_HOST_INTERMEDIATE_PATH", str(tmp_path / "host-intermediates"))
