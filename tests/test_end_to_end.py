"""A real `thumbserver serve` process on 127.0.0.1, fetched with a real HTTP client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from live import LiveServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("images")
    (root / "landscape.jpg").write_bytes((REPO / "examples" / "images" / "landscape.jpg").read_bytes())
    with LiveServer(REPO / "config.yaml", root) as live:
        yield live


class TestOriginalsOverHttp:
    """Originals over a real socket: bytes, headers, 304 and ranges."""

    def test_get_original(self, server: LiveServer) -> None:
        expected = (REPO / "examples" / "images" / "landscape.jpg").read_bytes()
        response = httpx.get(f"{server.url}/landscape.jpg")
        assert response.status_code == 200
        assert response.content == expected
        for header in ("etag", "last-modified", "cache-control", "content-disposition", "x-content-type-options",
                       "accept-ranges"):
            assert header in response.headers
        assert response.headers["content-length"] == str(len(expected))

    def test_revalidate_and_range(self, server: LiveServer) -> None:
        etag = httpx.head(f"{server.url}/landscape.jpg").headers["etag"]
        assert httpx.get(f"{server.url}/landscape.jpg", headers={"If-None-Match": etag}).status_code == 304
        partial = httpx.get(f"{server.url}/landscape.jpg", headers={"Range": "bytes=0-1"})
        assert (partial.status_code, partial.content) == (206, b"\xff\xd8")

    def test_raw_traversal_is_refused(self, server: LiveServer) -> None:
        # Sent without client-side normalisation of the dot segments.
        with httpx.Client() as client:
            request = client.build_request("GET", f"{server.url}/x")
            request.url = request.url.copy_with(raw_path=b"/../../etc/passwd")
            response = client.send(request)
        assert response.status_code == 404
