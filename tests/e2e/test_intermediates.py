"""A srcset family of one source, through a real uvicorn: one decode, and the same bytes and ETags
as a server that keeps no intermediates."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.live import LiveServer
from tests.support.metrics import samples, value

SIZE = (2400, 1600)
# 160..300 px wide all cut from the 1/8 decode (300x200), in two formats: six thumbnails.
FAMILY = [f"/thumb/{width}x,{output}/photo.jpg" for width in (160, 200, 300) for output in ("jpeg", "webp")]


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("srcset") / "images"
    images.write(folder / "photo.jpg", images.jpeg_bytes(SIZE, image=images.textured(SIZE)))
    return folder


def fetch_family(server: LiveServer) -> tuple[list[httpx.Response], dict]:
    """The family's responses, and how their renders got their source: {"decoded": n, "reused": m}."""
    with httpx.Client(timeout=30) as client:
        responses = [client.get(server.url + path) for path in FAMILY]
        found = samples(client.get(f"{server.url}/metrics").text)
    return responses, {result: int(value(found, "thumbserver_intermediates_total", result=result))
                       for result in ("decoded", "reused")}


class TestSrcsetFamily:
    """Six sizes and formats of one photo decode it once; the bytes match a server without the tier."""

    def test_one_decode_same_bytes(self, photo_root: Path) -> None:
        env = {"THUMBSERVER_CACHE_SHARED": "none"}
        with LiveServer(None, photo_root, env=env) as keeping:
            kept, health = fetch_family(keeping)
        with LiveServer(None, photo_root, env={**env, "THUMBSERVER_LIMITS_INTERMEDIATE_BYTES": "0"}) as plain:
            fresh, plain_health = fetch_family(plain)
        assert [response.status_code for response in kept + fresh] == [200] * 12
        assert health == {"decoded": 1, "reused": 5}
        assert plain_health == {"decoded": 6, "reused": 0}
        assert [response.content for response in kept] == [response.content for response in fresh]
        assert [response.headers["etag"] for response in kept] == [response.headers["etag"] for response in fresh]
        widths = [int(response.headers["content-disposition"].split("_")[1].split("x")[0]) for response in kept]
        assert widths == [160, 160, 200, 200, 300, 300]


class TestOneDecodePerMachine:
    """With two server processes (each with render processes of its own), the family is still
    decoded once: the second server process's render processes cut from the machine's tier."""

    def test_two_server_processes(self, photo_root: Path, tmp_path: Path) -> None:
        env = {"THUMBSERVER_CACHE_SHARED": "none"}
        with LiveServer(None, photo_root, workers=2, env=env) as server:
            with httpx.Client(timeout=30) as client:
                # New connections: the kernel spreads them over both server processes.
                responses = [httpx.get(server.url + path, timeout=30) for path in FAMILY * 2]
                found = samples(client.get(f"{server.url}/metrics").text)
        assert [response.status_code for response in responses] == [200] * len(FAMILY) * 2
        counts = {result: int(value(found, "thumbserver_intermediates_total", result=result))
                  for result in ("decoded", "reused")}
        # Every request that reached a render (no shared tier: each server process renders what
        # its memory tier lacks) decoded nothing but the first.
        assert counts["decoded"] == 1, counts
        assert counts["reused"] >= len(FAMILY) - 1, counts
