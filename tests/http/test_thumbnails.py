"""GET/HEAD /thumb/{spec}/{path}: pixels, headers, negotiation, caching, 304s and errors."""

from __future__ import annotations

import asyncio
import io
import os
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import images
from tests.support.app import client_for

MTIME = 1_700_000_000
WEBP_ACCEPT = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"


def decode(response: httpx.Response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


@pytest.fixture
def photo(image_root: Path) -> Path:
    path = images.write(image_root / "photo.jpg", images.jpeg_bytes((800, 600), image=images.textured((800, 600))))
    os.utime(path, (MTIME, MTIME))
    return path


@pytest.fixture
def logo(image_root: Path) -> Path:
    return images.write(image_root / "logo.png", images.png_bytes((400, 200), mode="RGBA", color=(0, 0, 255, 0)))


def renders(client_app) -> int:
    return client_app.app.state.thumbnails.renders


class TestResponse:
    """A 200 has the thumbnail's bytes and every header DESIGN.md lists."""

    async def test_contain(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/thumb/320x240/photo.jpg")
        assert response.status_code == 200
        image = decode(response)
        assert (image.format, image.size) == ("JPEG", (320, 240))
        headers = response.headers
        assert headers["content-type"] == "image/jpeg"
        assert headers["content-length"] == str(len(response.content))
        assert headers["etag"].startswith('"') and len(headers["etag"]) > 10
        assert headers["last-modified"] == formatdate(MTIME, usegmt=True)
        assert headers["cache-control"] == "max-age=604800"
        assert headers["content-disposition"] == 'inline; filename="photo_320x240.jpg"'
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["vary"] == "Accept"

    @pytest.mark.parametrize(
        ("spec", "size"),
        [("320x", (320, 240)), ("x120", (160, 120)), ("200x200,cover", (200, 200)), ("200x100,fill", (200, 100)),
         ("100x100@2x", (200, 150)), ("small", (160, 160)), ("4000x4000", (800, 600))],
    )
    async def test_sizes(self, client: httpx.AsyncClient, photo: Path, spec: str, size: tuple[int, int]) -> None:
        response = await client.get(f"/thumb/{spec}/photo.jpg")
        assert response.status_code == 200
        assert decode(response).size == size

    async def test_head_matches_get(self, client: httpx.AsyncClient, photo: Path) -> None:
        get = await client.get("/thumb/320x/photo.jpg")
        head = await client.head("/thumb/320x/photo.jpg")
        assert head.status_code == 200
        assert head.content == b""
        assert {k: v for k, v in head.headers.items() if k != "date"} == {
            k: v for k, v in get.headers.items() if k != "date"
        }

    async def test_explicit_format_has_no_vary(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/thumb/320x,png/photo.jpg", headers={"Accept": WEBP_ACCEPT})
        assert decode(response).format == "PNG"
        assert response.headers["content-type"] == "image/png"
        assert "vary" not in response.headers
        assert response.headers["content-disposition"] == 'inline; filename="photo_320x.png"'

    async def test_png_keeps_alpha(self, client: httpx.AsyncClient, logo: Path) -> None:
        response = await client.get("/thumb/100x/logo.png")
        image = decode(response)
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (100, 50))
        assert image.getpixel((10, 10))[3] == 0

    async def test_jpeg_of_alpha_is_flattened_on_white(self, client: httpx.AsyncClient, logo: Path) -> None:
        image = decode(await client.get("/thumb/100x,jpeg/logo.png"))
        assert image.mode == "RGB"
        assert all(channel > 245 for channel in image.getpixel((50, 25)))


class TestNegotiation:
    """Without a format, the first auto_format that Accept names explicitly; else the source's family."""

    async def test_webp_when_accepted(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/thumb/320x/photo.jpg", headers={"Accept": WEBP_ACCEPT})
        assert decode(response).format == "WEBP"
        assert response.headers["content-type"] == "image/webp"
        assert response.headers["vary"] == "Accept"

    @pytest.mark.parametrize("accept", ["*/*", "image/*", "image/png,image/jpeg", "image/webp;q=0", ""])
    async def test_source_family_otherwise(self, client: httpx.AsyncClient, photo: Path, accept: str) -> None:
        response = await client.get("/thumb/320x/photo.jpg", headers={"Accept": accept})
        assert decode(response).format == "JPEG"
        assert response.headers["vary"] == "Accept"

    async def test_one_entry_per_format_whatever_accept_says(self, client: httpx.AsyncClient, photo: Path) -> None:
        accepts = [WEBP_ACCEPT, "image/webp", "image/webp,*/*", "image/webp;q=0.9", "*/*", "image/*", "text/html"]
        etags = {}
        for accept in accepts:
            response = await client.get("/thumb/320x/photo.jpg", headers={"Accept": accept})
            etags.setdefault(response.headers["content-type"], set()).add(response.headers["etag"])
        assert {k: len(v) for k, v in etags.items()} == {"image/webp": 1, "image/jpeg": 1}
        assert client.app.state.thumbnails.memory.stats().entries == 2

    async def test_negotiation_off(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(thumbnails={"auto_formats": []})) as http:
            response = await http.get("/thumb/320x/photo.jpg", headers={"Accept": WEBP_ACCEPT})
        assert decode(response).format == "JPEG"
        assert "vary" not in response.headers

    async def test_304_carries_vary(self, client: httpx.AsyncClient, photo: Path) -> None:
        etag = (await client.get("/thumb/320x/photo.jpg", headers={"Accept": WEBP_ACCEPT})).headers["etag"]
        response = await client.get("/thumb/320x/photo.jpg", headers={"Accept": WEBP_ACCEPT, "If-None-Match": etag})
        assert response.status_code == 304
        assert response.headers["vary"] == "Accept"


class TestCaching:
    """Equal requests share one entry and ETag; 304s need no render; changes show at once."""

    async def test_equivalent_specs_share_etag_and_render(self, client: httpx.AsyncClient, photo: Path) -> None:
        state = client.app.state.thumbnails
        first = await client.get("/thumb/320x240,webp,cover/photo.jpg")
        second = await client.get("/thumb/320x240,cover,webp/photo.jpg")
        third = await client.get("/thumb/160x120@2x,webp,cover/photo.jpg")
        assert first.headers["etag"] == second.headers["etag"] == third.headers["etag"]
        assert first.content == second.content == third.content
        assert state.renders == 1

    async def test_revalidation_renders_nothing(self, client: httpx.AsyncClient, photo: Path) -> None:
        state = client.app.state.thumbnails
        etag = (await client.head("/thumb/200x/photo.jpg")).headers["etag"]
        state.memory.clear()
        before = state.renders
        for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"x", W/{etag}'},
                        {"If-Modified-Since": formatdate(MTIME + 5, usegmt=True)}):
            for method in ("GET", "HEAD"):
                response = await client.request(method, "/thumb/200x/photo.jpg", headers=headers)
                assert response.status_code == 304
                assert response.content == b""
                assert response.headers["etag"] == etag
                assert response.headers["cache-control"] == "max-age=604800"
                assert response.headers["last-modified"] == formatdate(MTIME, usegmt=True)
        assert state.renders == before

    async def test_304_for_an_unreadable_image_needs_no_decode(self, client: httpx.AsyncClient, image_root: Path) -> None:
        # If a 304 decoded anything, this garbage would give 422.
        images.write(image_root / "garbage.jpg", b"not an image at all")
        etag = (await client.get("/thumb/10x/garbage.jpg")).headers.get("etag")
        assert etag is None
        head = await client.get("/thumb/10x/garbage.jpg", headers={"If-None-Match": "*"})
        assert head.status_code == 304

    async def test_replaced_source_gets_new_etag(self, client: httpx.AsyncClient, photo: Path) -> None:
        first = await client.get("/thumb/200x/photo.jpg")
        photo.write_bytes(images.jpeg_bytes((400, 100), color="red"))
        second = await client.get("/thumb/200x/photo.jpg")
        assert second.headers["etag"] != first.headers["etag"]
        assert decode(second).size == (200, 50)

    async def test_deleted_source_is_404_even_when_cached(self, client: httpx.AsyncClient, photo: Path) -> None:
        assert (await client.get("/thumb/200x/photo.jpg")).status_code == 200
        photo.unlink()
        response = await client.get("/thumb/200x/photo.jpg")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}

    async def test_concurrent_misses_share_one_render(self, client: httpx.AsyncClient, photo: Path) -> None:
        state = client.app.state.thumbnails
        responses = await asyncio.gather(*(client.get("/thumb/300x/photo.jpg") for _ in range(20)))
        assert {r.status_code for r in responses} == {200}
        assert len({r.content for r in responses}) == 1
        assert state.renders == 1
        assert state.memory.stats().coalesced == 19

    async def test_cache_stays_within_its_budget(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(cache={"max_bytes": 30_000})) as http:
            sizes = [f"{w}x" for w in range(100, 400, 20)]
            for spec in sizes:
                assert (await http.get(f"/thumb/{spec}/photo.jpg")).status_code == 200
            stats = http.app.state.thumbnails.memory.stats()
        assert stats.bytes <= 30_000
        assert stats.evictions > 0

    async def test_oversize_thumbnail_is_served_uncached(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(cache={"max_bytes": 100})) as http:
            response = await http.get("/thumb/300x/photo.jpg")
            stats = http.app.state.thumbnails.memory.stats()
        assert response.status_code == 200
        assert decode(response).size == (300, 225)
        assert (stats.entries, stats.oversize) == (0, 1)


class TestErrors:
    """Bad specs are 400, missing images 404, undecodable or oversized sources 422, overload 503."""

    @pytest.mark.parametrize("spec", ["0x0", "320x,cover", "foo", "320x240,webp,webp", "5000x", "320x240@9x"])
    async def test_bad_spec(self, client: httpx.AsyncClient, photo: Path, spec: str) -> None:
        response = await client.get(f"/thumb/{spec}/photo.jpg")
        assert response.status_code == 400
        assert response.json()["detail"].startswith("Invalid thumbnail spec: ")
        assert response.headers["cache-control"] == "no-store"

    async def test_allowed_sizes(self, make_settings, photo: Path) -> None:
        settings = make_settings(thumbnails={"allowed_sizes": ["320x240"], "allowed_dprs": [2]})
        async with client_for(settings) as http:
            assert (await http.get("/thumb/320x240/photo.jpg")).status_code == 200
            assert (await http.get("/thumb/320x240@2x/photo.jpg")).status_code == 200
            assert (await http.get("/thumb/small/photo.jpg")).status_code == 200
            assert (await http.get("/thumb/321x240/photo.jpg")).status_code == 400

    @pytest.mark.parametrize("path", ["missing.jpg", "../photo.jpg", ".hidden.jpg", "notes.txt", "%2e%2e/x.jpg"])
    async def test_not_found(self, client: httpx.AsyncClient, photo: Path, path: str) -> None:
        response = await client.get(f"/thumb/320x/{path}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}

    @pytest.mark.parametrize(
        "content",
        [b"", b"hello world", b"<html><script>alert(1)</script></html>", b"%!PS-Adobe-3.0 EPSF-3.0\n",
         b"8BPS\x00\x01" + bytes(40)],
    )
    async def test_undecodable(self, client: httpx.AsyncClient, image_root: Path, content: bytes) -> None:
        images.write(image_root / "bad.jpg", content)
        response = await client.get("/thumb/320x/bad.jpg")
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
        assert "bad.jpg" not in response.text

    async def test_truncated(self, client: httpx.AsyncClient, image_root: Path) -> None:
        data = images.jpeg_bytes((400, 300), image=images.noise((400, 300)))
        images.write(image_root / "cut.jpg", data[: len(data) // 2])
        assert (await client.get("/thumb/100x/cut.jpg")).status_code == 422

    async def test_too_many_pixels(self, client: httpx.AsyncClient, image_root: Path) -> None:
        images.write(image_root / "bomb.png", images.png_claiming(50000, 50000))
        response = await client.get("/thumb/100x/bomb.png")
        assert response.status_code == 422

    async def test_too_many_bytes(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(limits={"max_source_bytes": 1000})) as http:
            response = await http.get("/thumb/100x/photo.jpg")
        assert response.status_code == 422
        assert response.json() == {"detail": "The source image is too large."}

    async def test_failed_render_is_not_cached(self, client: httpx.AsyncClient, image_root: Path) -> None:
        path = images.write(image_root / "later.jpg", b"garbage")
        os.utime(path, (MTIME, MTIME))
        assert (await client.get("/thumb/100x/later.jpg")).status_code == 422
        assert client.app.state.thumbnails.memory.stats().entries == 0

    async def test_queue_full_is_503(self, make_settings, photo: Path) -> None:
        settings = make_settings(limits={"render_workers": 1, "render_queue": 0})
        async with client_for(settings) as http:
            responses = await asyncio.gather(*(http.get(f"/thumb/{300 + i}x/photo.jpg") for i in range(6)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200
        assert 503 in statuses
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["cache-control"] == "no-store"

    async def test_openapi_documents_image_media_types(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        content = spec["paths"]["/thumb/{spec}/{path}"]["get"]["responses"]["200"]["content"]
        assert set(content) == {"image/jpeg", "image/png", "image/webp", "image/avif", "image/gif"}


class TestResultKeys:
    """The ETag names the bytes: every setting that changes them changes it, on every node alike."""

    async def test_configured_quality_changes_the_etag(self, make_settings, photo: Path) -> None:
        answers = {}
        for quality in (82, 30):
            async with client_for(make_settings(thumbnails={"quality": {"jpeg": quality}})) as http:
                answers[quality] = await http.get("/thumb/400x/photo.jpg")
        assert answers[82].headers["etag"] != answers[30].headers["etag"]
        assert len(answers[30].content) < len(answers[82].content)

    async def test_other_formats_quality_changes_a_source_family_etag(self, make_settings, photo: Path) -> None:
        """Without a format in the URL the output depends on the source: every quality is in the key."""
        etags = set()
        for webp in (80, 50):
            async with client_for(make_settings(thumbnails={"quality": {"webp": webp}, "auto_formats": []})) as http:
                etags.add((await http.get("/thumb/400x/photo.jpg")).headers["etag"])
        assert len(etags) == 2

    async def test_two_servers_agree_on_bytes_and_etag(self, make_settings, photo: Path) -> None:
        answers = []
        for _ in range(2):  # each renders: no shared tier
            async with client_for(make_settings(cache={"shared": "none"})) as http:
                answers.append(await http.get("/thumb/200x150,cover,webp/photo.jpg"))
        assert answers[0].headers["etag"] == answers[1].headers["etag"]
        assert answers[0].content == answers[1].content

    async def test_a_304_after_a_quality_change_is_a_200(self, make_settings, photo: Path) -> None:
        async with client_for(make_settings(thumbnails={"quality": {"jpeg": 82}})) as http:
            etag = (await http.get("/thumb/400x/photo.jpg")).headers["etag"]
            assert (await http.get("/thumb/400x/photo.jpg", headers={"If-None-Match": etag})).status_code == 304
        async with client_for(make_settings(thumbnails={"quality": {"jpeg": 30}})) as http:
            assert (await http.get("/thumb/400x/photo.jpg", headers={"If-None-Match": etag})).status_code == 200


class TestAllowedVariantsEndToEnd:
    """The configuration's allow-lists reach the grammar: a dpr or quality not listed is a 400."""

    async def test_defaults_only(self, make_settings, photo: Path) -> None:
        settings = make_settings(thumbnails={"allowed_sizes": ["320x240"]})
        async with client_for(settings) as http:
            assert (await http.get("/thumb/320x240/photo.jpg")).status_code == 200
            assert (await http.get("/thumb/320x240,q82/photo.jpg")).status_code == 200  # the configured default
            assert (await http.get("/thumb/320x240@2x/photo.jpg")).status_code == 400
            assert (await http.get("/thumb/320x240,q37,webp/photo.jpg")).status_code == 400

    async def test_listed(self, make_settings, photo: Path) -> None:
        settings = make_settings(thumbnails={"allowed_sizes": ["320x240"], "allowed_dprs": [1, 2],
                                             "allowed_qualities": [50]})
        async with client_for(settings) as http:
            assert (await http.get("/thumb/320x240@2x,q50/photo.jpg")).status_code == 200
            assert (await http.get("/thumb/320x240,q82/photo.jpg")).status_code == 400
