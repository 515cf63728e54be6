"""The pure-ASGI front and the FastAPI routes are two doors to one implementation: the same
requests through each give the same status, headers and body (hits, misses, 304s, ranges,
negotiation and every error)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.app import client_for

MTIME = 1_700_000_000
WEBP_ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"
BIG = bytes(range(256)) * 2048  # 512 KB: streamed, not read whole

# (method, target, headers) in the order sent; a thumbnail's first GET is a miss, the next a hit.
REQUESTS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("GET", "/photo.jpg", []),
    ("HEAD", "/photo.jpg", []),
    ("GET", "/big.jpg", []),
    ("HEAD", "/big.jpg", []),
    ("GET", "/photo.jpg", [("If-None-Match", '"nope"'), ("If-None-Match", "{etag}")]),
    ("GET", "/photo.jpg", [("If-None-Match", "{etag}"), ("Range", "bytes=0-9")]),
    ("GET", "/photo.jpg", [("Range", "bytes=0-9")]),
    ("GET", "/big.jpg", [("Range", "bytes=100-199")]),
    ("GET", "/big.jpg", [("Range", "bytes=0-9,1000-1009,-5")]),
    ("HEAD", "/big.jpg", [("Range", "bytes=0-9,1000-1009")]),
    ("GET", "/photo.jpg", [("Range", "bytes=0-1"), ("Range", "bytes=5-6")]),
    ("GET", "/photo.jpg", [("Range", "bytes=999999-")]),
    ("GET", "/photo.jpg", [("Range", "bytes=9-0")]),
    ("GET", "/photo.jpg", [("Range", "bytes=0-9"), ("If-Range", '"stale"')]),
    ("GET", "/photo.jpg", [("If-Modified-Since", "Wed, 21 Oct 2037 07:28:00 GMT")]),
    ("GET", "/thumb/64x/photo.jpg", []),
    ("GET", "/thumb/64x/photo.jpg", []),
    ("HEAD", "/thumb/64x/photo.jpg", []),
    ("GET", "/thumb/64x/photo.jpg", [("Accept", WEBP_ACCEPT)]),
    ("GET", "/thumb/64x/photo.jpg", [("Accept", "image/jpeg"), ("Accept", "image/webp")]),
    ("GET", "/thumb/64x/photo.jpg", [("If-None-Match", "{thumb_etag}")]),
    ("GET", "/thumb/32x24,cover,png/photo.jpg", [("If-None-Match", '"x", {thumb_etag}')]),
    ("GET", "/thumb/32x/photo.jpg", [("Range", "bytes=0-9")]),
    ("GET", "/missing.jpg", []),
    ("GET", "/thumb/64x/missing.jpg", []),
    ("GET", "/thumb/bogus/photo.jpg", []),
    ("GET", "/thumb/64x/garbage.jpg", []),
    ("GET", "/thumb/64x/garbage.jpg", []),
    ("GET", "/notes.txt", []),
    ("GET", "/.hidden.jpg", []),
    ("GET", "/sub%2Fphoto.jpg", []),
    ("GET", "/photo.jpg%0A", []),
    ("GET", "/%74humb/64x/photo.jpg", []),
    ("GET", "/thumb/64x", []),
    ("GET", "/", []),
    ("POST", "/photo.jpg", []),
    ("PUT", "/thumb/64x/photo.jpg", []),
    ("DELETE", "/thumb/64x/photo.jpg", []),
    ("GET", "/healthz", []),
    ("HEAD", "/healthz", []),
    ("POST", "/healthz", []),
]

_VOLATILE = {"date"}


def _normalised(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body, with the one random part (a multipart boundary) made equal."""
    body = response.content
    headers = [(k.lower(), v) for k, v in response.headers.multi_items() if k.lower() not in _VOLATILE]
    boundary = re.search(r"boundary=(\w+)", response.headers.get("content-type", ""))
    if boundary:
        body = body.replace(boundary[1].encode(), b"BOUNDARY")
        headers = [(k, v.replace(boundary[1], "BOUNDARY")) for k, v in headers]
    if response.url.path == "/healthz":
        # Counters differ by design (each app counts its own renders): compare the shape.
        body = b""
        headers = [(k, v) for k, v in headers if k != "content-length"]
    return response.status_code, sorted(headers), body


@pytest.fixture
def tree(image_root: Path) -> Path:
    photo = images.write(image_root / "photo.jpg", images.jpeg_bytes((320, 240), image=images.textured((320, 240))))
    (image_root / "big.jpg").write_bytes(BIG)
    (image_root / "garbage.jpg").write_bytes(b"not an image at all")
    (image_root / "notes.txt").write_bytes(b"text")
    (image_root / ".hidden.jpg").write_bytes(photo.read_bytes())
    for path in image_root.iterdir():
        os.utime(path, (MTIME, MTIME))
    return image_root


class TestParity:
    """Every request gets byte-identical answers through the front and through the routes."""

    async def test_same_answers_through_both_doors(self, make_settings, tree: Path) -> None:
        settings = make_settings()
        answers = {}
        for front in (True, False):
            async with client_for(settings, front=front) as http:
                etag = (await http.head("/photo.jpg")).headers["etag"]
                thumb_etag = (await http.head("/thumb/32x24,cover,png/photo.jpg")).headers["etag"]
                results = []
                for method, target, headers in REQUESTS:
                    filled = [(k, v.format(etag=etag, thumb_etag=thumb_etag)) for k, v in headers]
                    request = http.build_request(method, target, headers=filled)
                    results.append(_normalised(await http.send(request)))
                answers[front] = results
        for (method, target, headers), through_front, through_routes in zip(
            REQUESTS, answers[True], answers[False], strict=True
        ):
            assert through_front == through_routes, (method, target, headers)

    async def test_the_requests_cover_every_status(self, make_settings, tree: Path) -> None:
        """The list above exercises what it claims to: each of these statuses occurs."""
        seen = set()
        async with client_for(make_settings(), front=False) as http:
            etag = (await http.head("/photo.jpg")).headers["etag"]
            for method, target, headers in REQUESTS:
                filled = [(k, v.format(etag=etag, thumb_etag='"x"')) for k, v in headers]
                seen.add((await http.send(http.build_request(method, target, headers=filled))).status_code)
        assert {200, 206, 304, 400, 404, 405, 416, 422} <= seen


class TestOneHeaderReader:
    """Several lines of one header are joined (RFC 9110), the same way whichever door answers."""

    @pytest.mark.parametrize("front", [True, False])
    async def test_two_if_none_match_lines_are_one_list(self, make_settings, tree: Path, front: bool) -> None:
        async with client_for(make_settings(), front=front) as http:
            etag = (await http.get("/photo.jpg")).headers["etag"]
            response = await http.get("/photo.jpg", headers=[("If-None-Match", '"a"'), ("If-None-Match", etag),
                                                             ("Range", "bytes=0-1")])
            assert response.status_code == 304

    @pytest.mark.parametrize("front", [True, False])
    async def test_two_accept_lines_are_one_list(self, make_settings, tree: Path, front: bool) -> None:
        async with client_for(make_settings(), front=front) as http:
            cold = await http.get("/thumb/64x/photo.jpg", headers=[("Accept", "image/jpeg"), ("Accept", "image/webp")])
            warm = await http.get("/thumb/64x/photo.jpg", headers=[("Accept", "image/jpeg"), ("Accept", "image/webp")])
            assert cold.headers["content-type"] == warm.headers["content-type"] == "image/webp"


class TestRoutesAreNotShadowed:
    """A route added to the app owns its first path segment: the image front never takes it."""

    async def test_a_route_added_after_create_app(self, make_settings, tree: Path) -> None:
        (tree / "gallery").mkdir()
        images.write(tree / "gallery" / "photo.jpg", images.jpeg_bytes((32, 24)))
        clients = client_for(make_settings())

        @clients.app.get("/gallery/{path:path}")
        async def gallery(path: str) -> dict[str, str]:
            return {"page": path}

        async with clients as http:
            response = await http.get("/gallery/photo.jpg")
            assert response.status_code == 200 and response.json() == {"page": "photo.jpg"}
            assert (await http.get("/photo.jpg")).status_code == 200

    async def test_healthz_takes_head_and_says_allow(self, make_settings, tree: Path) -> None:
        async with client_for(make_settings()) as http:
            assert (await http.head("/healthz")).status_code == 200
            refused = await http.post("/healthz")
            assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
            assert refused.json() == {"detail": "Method Not Allowed"}
