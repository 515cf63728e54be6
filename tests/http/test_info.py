"""GET/HEAD /info/{path}: an original's facts as JSON, with its own ETag, the originals' path
rules and signing, and kept in the memory and shared tiers like a thumbnail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.app import client_for

KEY, SALT = "943b421c9eb07c83", "520f986b998545b4"
FIELDS = ["width", "height", "format", "media_type", "bytes", "frames", "animated", "has_alpha", "orientation",
          "etag", "last_modified", "dominant_color", "blurhash"]


def signed(rest: str) -> str:
    """imgproxy's signature, written from DESIGN.md §Signed URLs."""
    digest = hmac.new(bytes.fromhex(KEY), bytes.fromhex(SALT) + b"/" + rest.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@pytest.fixture
def photo(image_root: Path) -> Path:
    path = images.write(image_root / "photo.jpg", images.jpeg_bytes((640, 480), color=(30, 60, 200)))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


class TestFacts:
    """The body names the original's true facts."""

    async def test_fields(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/info/photo.jpg")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert list(body) == FIELDS
        assert (body["width"], body["height"], body["format"], body["media_type"]) == (640, 480, "jpeg", "image/jpeg")
        assert body["bytes"] == photo.stat().st_size
        assert (body["frames"], body["animated"], body["has_alpha"], body["orientation"]) == (1, False, False, 1)
        assert len(body["blurhash"]) == 28 and body["blurhash"][0] == "L"  # 4x3 components
        red, green, blue = (int(body["dominant_color"][i : i + 2], 16) for i in (1, 3, 5))
        assert body["dominant_color"].startswith("#") and abs(red - 30) + abs(green - 60) + abs(blue - 200) <= 12

    async def test_original_validators(self, client: httpx.AsyncClient, photo: Path) -> None:
        original = await client.head("/photo.jpg")
        body = (await client.get("/info/photo.jpg")).json()
        assert body["etag"] == original.headers["etag"]
        assert body["last_modified"] == original.headers["last-modified"]

    @pytest.mark.parametrize("orientation", range(1, 9))
    async def test_every_orientation_true_size(self, client: httpx.AsyncClient, image_root: Path,
                                               orientation: int) -> None:
        images.write(image_root / f"o{orientation}.jpg", images.jpeg_bytes((90, 30), orientation=orientation))
        body = (await client.get(f"/info/o{orientation}.jpg")).json()
        assert body["orientation"] == orientation
        assert (body["width"], body["height"]) == ((30, 90) if orientation >= 5 else (90, 30))

    async def test_solid_colour_and_blurhash(self, client: httpx.AsyncClient, image_root: Path) -> None:
        images.write(image_root / "solid.png", images.png_bytes((64, 48), mode="RGB", color=(18, 52, 86)))
        body = (await client.get("/info/solid.png")).json()
        assert body["dominant_color"] == "#123456"
        assert body["blurhash"][2:6] == "27F4"  # the DC: 0x123456 in four base-83 digits
        assert body["has_alpha"] is False and body["format"] == "png"

    async def test_animation_and_alpha(self, client: httpx.AsyncClient, image_root: Path) -> None:
        images.write(image_root / "anim.gif", images.gif_bytes(("red", "lime", "blue", "red"), transparent=True))
        body = (await client.get("/info/anim.gif")).json()
        assert (body["frames"], body["animated"], body["has_alpha"], body["format"]) == (4, True, True, "gif")


class TestHttp:
    """Its own strong ETag, 304s, HEAD and the originals' Cache-Control."""

    async def test_etag_and_304(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/info/photo.jpg")
        etag = response.headers["etag"]
        assert etag.startswith('"') and etag != (await client.head("/photo.jpg")).headers["etag"]
        assert response.headers["cache-control"] == "max-age=86400"
        again = await client.get("/info/photo.jpg", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag

    async def test_304_without_decoding(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings()) as first:
            etag = (await first.get("/info/photo.jpg")).headers["etag"]
        async with client_for(make_settings(cache={"shared": "none"})) as fresh:
            response = await fresh.get("/info/photo.jpg", headers={"if-none-match": etag})
            assert response.status_code == 304
            assert fresh.app.state.info.decodes == 0

    async def test_head(self, client: httpx.AsyncClient, photo: Path) -> None:
        get = await client.get("/info/photo.jpg")
        head = await client.head("/info/photo.jpg")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
        assert head.headers["etag"] == get.headers["etag"]

    async def test_new_version_new_etag(self, client: httpx.AsyncClient, photo: Path) -> None:
        before = await client.get("/info/photo.jpg")
        photo.write_bytes(images.jpeg_bytes((100, 50)))
        after = await client.get("/info/photo.jpg")
        assert after.headers["etag"] != before.headers["etag"]
        assert (after.json()["width"], after.json()["height"]) == (100, 50)

    async def test_openapi(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert "application/json" in paths["/info/{path}"]["get"]["responses"]["200"]["content"]


class TestTiers:
    """Facts are decoded once, then served from the memory tier and, across processes, the shared tier."""

    async def test_memory_tier(self, client: httpx.AsyncClient, photo: Path) -> None:
        first = await client.get("/info/photo.jpg")
        second = await client.get("/info/photo.jpg")
        assert first.content == second.content
        assert client.app.state.info.decodes == 1

    async def test_shared_tier(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings()) as one:
            body = (await one.get("/info/photo.jpg")).content
            assert one.app.state.info.decodes == 1
        async with client_for(make_settings()) as other:  # another process: same disk tier
            assert (await other.get("/info/photo.jpg")).content == body
            assert other.app.state.info.decodes == 0


class TestErrors:
    """The originals' path rules (404), the source limits (422), and JSON errors."""

    @pytest.mark.parametrize("path", ["/info/missing.jpg", "/info/.hidden.jpg", "/info/sub/%2E%2E/photo.jpg",
                                      "/info/sub", "/info/notes.txt", "/info/", "/info/%2e%2e/photo.jpg"])
    async def test_not_found(self, client: httpx.AsyncClient, image_root: Path, photo: Path, path: str) -> None:
        (image_root / "sub").mkdir()
        (image_root / "notes.txt").write_text("hello")
        images.write(image_root / ".hidden.jpg", images.jpeg_bytes())
        response = await client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}
        assert response.headers["cache-control"] == "no-store"

    async def test_undecodable(self, client: httpx.AsyncClient, image_root: Path) -> None:
        (image_root / "page.jpg").write_bytes(images.html_bytes())
        response = await client.get("/info/page.jpg")
        assert response.status_code == 422
        assert "detail" in response.json()

    async def test_too_many_pixels(self, make_settings, image_root: Path) -> None:
        images.write(image_root / "big.png", images.png_bytes((200, 200)))
        async with client_for(make_settings(limits={"max_source_pixels": 1000})) as client:
            response = await client.get("/info/big.png")
            assert response.status_code == 422
            assert client.app.state.info.decodes == 1  # refused from the header, in a render process


    async def test_memory_budget(self, make_settings, image_root: Path) -> None:
        """A decode whose announced peak alone exceeds limits.render_memory_bytes is refused (422);
        a JPEG is announced at its 1/8 draft scale, so a large one still fits."""
        images.write(image_root / "wide.png", images.png_bytes((400, 300), mode="RGB"))
        images.write(image_root / "big.jpg", images.jpeg_bytes((1600, 1200)))
        async with client_for(make_settings(limits={"render_memory_bytes": 500_000})) as client:
            assert (await client.get("/info/wide.png")).status_code == 422  # 400 x 300 x 4 x 3 > 500,000
            response = await client.get("/info/big.jpg")  # decoded at 200 x 150
            assert response.status_code == 200 and response.json()["width"] == 1600


class TestSigned:
    """With security.sign_originals, info URLs are {prefix}/{signature}/{path}."""

    @pytest.fixture
    async def secure(self, make_settings):
        settings = make_settings(security={"keys": [KEY], "salts": [SALT], "sign_originals": True})
        async with client_for(settings) as client:
            yield client

    async def test_signed(self, secure: httpx.AsyncClient, image_root: Path) -> None:
        images.write(image_root / "a b.jpg", images.jpeg_bytes((64, 32)))
        response = await secure.get(f"/info/{signed('a%20b.jpg')}/a%20b.jpg")
        assert response.status_code == 200
        assert response.json()["width"] == 64

    @pytest.mark.parametrize("url", ["/info/a.jpg", "/info/AAAA/a.jpg", "/info/" + "x" * 43 + "/a.jpg"])
    async def test_unsigned_or_bad(self, secure: httpx.AsyncClient, image_root: Path, url: str) -> None:
        images.write(image_root / "a.jpg", images.jpeg_bytes())
        response = await secure.get(url)
        assert response.status_code == 403
        assert response.json() == {"detail": "Forbidden"}


class TestParity:
    """The FastAPI route and the pure-ASGI front give the same answer."""

    async def test_same_answer(self, make_settings, photo: Path) -> None:
        answers = []
        for front in (True, False):
            async with client_for(make_settings(), front=front) as client:
                response = await client.get("/info/photo.jpg")
                answers.append((response.status_code, response.content, response.headers["etag"]))
        assert answers[0] == answers[1]


class TestSignCommand:
    """`thumbserver sign /info/...` prints the URL the server accepts."""

    async def test_sign_info(self, tmp_path: Path, make_settings, image_root: Path) -> None:
        import subprocess
        import sys

        config = tmp_path / "config.yaml"
        config.write_text(f"storage: {{root: {image_root}}}\nsecurity: {{keys: [{KEY}], salts: [{SALT}], "
                          "sign_originals: true}\n")
        printed = subprocess.run([sys.executable, "-m", "server", "sign", "--config", str(config), "/info/a b.jpg"],
                                 capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
        assert printed == f"/info/{signed('a%20b.jpg')}/a%20b.jpg"
        images.write(image_root / "a b.jpg", images.jpeg_bytes((10, 10)))
        settings = make_settings(security={"keys": [KEY], "salts": [SALT], "sign_originals": True})
        async with client_for(settings) as client:
            assert (await client.get(printed)).status_code == 200
