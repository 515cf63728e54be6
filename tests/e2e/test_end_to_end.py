"""A real `thumbserver serve` process on 127.0.0.1, fetched with a real HTTP client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.metrics import samples
from tests.support.live import LiveServer

REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="module")
def thumb_server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("thumbs")
    for name in ("landscape.jpg", "portrait.jpg", "logo.png"):
        (root / name).write_bytes((REPO / "examples" / "images" / name).read_bytes())
    with LiveServer(REPO / "config.yaml", root) as live:
        yield live


class TestThumbnailsOverHttp:
    """Thumbnails over a real socket, as an <img src> and a CDN revalidation would fetch them."""

    def test_cover_thumbnail_and_revalidation(self, thumb_server: LiveServer) -> None:
        import io

        from PIL import Image

        url = f"{thumb_server.url}/thumb/320x240,cover/landscape.jpg"
        with httpx.Client() as client:
            response = client.get(url, headers={"Accept": "image/avif,image/webp,*/*"})
            assert response.status_code == 200
            image = Image.open(io.BytesIO(response.content))
            assert (image.format, image.size) == ("WEBP", (320, 240))
            assert response.headers["vary"] == "Accept"
            assert response.headers["content-length"] == str(len(response.content))
            again = client.get(url, headers={"Accept": "image/webp", "If-None-Match": response.headers["etag"]})
            assert again.status_code == 304
            found = samples(client.get(f"{thumb_server.url}/metrics").text)
            assert sum(v for (name, _), v in found.items() if name == "thumbserver_renders_total") == 1

    def test_exif_portrait_is_upright(self, thumb_server: LiveServer) -> None:
        import io

        from PIL import Image

        response = httpx.get(f"{thumb_server.url}/thumb/x200,jpeg/portrait.jpg")
        image = Image.open(io.BytesIO(response.content))
        assert image.height == 200 and image.width < image.height
