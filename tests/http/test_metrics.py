"""/metrics in one process: the outer layer counts every request, whichever door answered it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import images
from tests.support.app import client_for
from tests.support.metrics import samples, value


@pytest.fixture
def photo(image_root: Path) -> Path:
    return images.write(image_root / "photo.jpg", images.jpeg_bytes((200, 150)))


class TestMetrics:
    """Hits, misses, 304s and errors are all counted, with the lookups and renders behind them."""

    @pytest.mark.parametrize("front", [True, False])
    async def test_known_traffic(self, make_settings, photo: Path, front: bool) -> None:
        async with client_for(make_settings(cache={"shared": "none"}), front=front) as http:
            first = await http.get("/thumb/64x/photo.jpg")
            await http.get("/thumb/64x/photo.jpg")
            await http.get("/thumb/64x/photo.jpg", headers={"If-None-Match": first.headers["etag"]})
            await http.get("/photo.jpg")
            await http.get("/thumb/bad/photo.jpg")
            exposition = await http.get("/metrics")
        assert exposition.status_code == 200 and exposition.headers["content-type"].startswith("text/plain")
        found = samples(exposition.text)

        def count(name: str, **labels: str) -> float:
            return value(found, name, **labels)

        assert count("thumbserver_requests_total", kind="thumbnail", status="200") == 2
        assert count("thumbserver_requests_total", kind="thumbnail", status="304") == 1
        assert count("thumbserver_requests_total", kind="thumbnail", status="400") == 1
        assert count("thumbserver_requests_total", kind="original", status="200") == 1
        assert count("thumbserver_renders_total", format="jpeg") == 1
        assert count("thumbserver_cache_lookups_total", tier="memory", result="hit") == 2
        assert count("thumbserver_cache_lookups_total", tier="memory", result="miss") == 1
        assert count("thumbserver_cache_bytes", tier="memory") > 0

    async def test_off(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(metrics={"enabled": False})) as http:
            assert (await http.get("/metrics")).status_code == 404
