"""GET/HEAD /{path}: headers, conditional requests, ranges and errors, through the ASGI app."""

from __future__ import annotations

import os
import time
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from server.http.responses import content_disposition
from tests.support.app import client_for

BODY = bytes(range(256)) * 40  # 10240 bytes
MTIME = 1_700_000_000


@pytest.fixture
def photo(image_root: Path) -> Path:
    path = image_root / "photo.jpg"
    path.write_bytes(BODY)
    os.utime(path, (MTIME, MTIME))
    return path


async def etag_of(client: httpx.AsyncClient, url: str = "/photo.jpg") -> str:
    return (await client.head(url)).headers["etag"]


class TestHeaders:
    """A 200 carries every header of DESIGN.md §HTTP, and HEAD the same without a body."""

    async def test_get(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg")
        assert response.status_code == 200
        assert response.content == BODY
        headers = response.headers
        assert headers["content-type"] == "image/jpeg"
        assert headers["content-length"] == str(len(BODY))
        assert headers["etag"].startswith('"') and not headers["etag"].startswith("W/")
        assert headers["last-modified"] == formatdate(MTIME, usegmt=True)
        assert headers["cache-control"] == "max-age=86400"
        assert headers["content-disposition"] == 'inline; filename="photo.jpg"'
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["accept-ranges"] == "bytes"

    async def test_head_matches_get(self, client: httpx.AsyncClient, photo: Path) -> None:
        get = await client.get("/photo.jpg")
        head = await client.head("/photo.jpg")
        assert head.status_code == 200
        assert head.content == b""
        drop = {"date"}
        assert {k: v for k, v in head.headers.items() if k not in drop} == {
            k: v for k, v in get.headers.items() if k not in drop
        }

    @pytest.mark.parametrize(
        ("name", "media_type"),
        [("a.png", "image/png"), ("a.webp", "image/webp"), ("a.gif", "image/gif"), ("a.avif", "image/avif"),
         ("a.TIFF", "image/tiff"), ("a.bmp", "image/bmp"), ("a.jpeg", "image/jpeg")],
    )
    async def test_media_types(self, client: httpx.AsyncClient, image_root: Path, name: str, media_type: str) -> None:
        (image_root / name).write_bytes(b"x")
        assert (await client.get(f"/{name}")).headers["content-type"] == media_type

    async def test_changed_file_gets_new_etag(self, client: httpx.AsyncClient, photo: Path) -> None:
        before = await etag_of(client)
        photo.write_bytes(BODY + b"!")
        assert await etag_of(client) != before

    async def test_nested_and_percent_encoded_path(self, client: httpx.AsyncClient, image_root: Path) -> None:
        (image_root / "a b").mkdir()
        (image_root / "a b" / "c%d.png").write_bytes(b"png")
        response = await client.get("/a%20b/c%25d.png")
        assert response.status_code == 200
        assert response.content == b"png"


DISPOSITIONS = [
    ("plain.jpg", 'inline; filename="plain.jpg"'),
    ("été.jpg", "inline; filename=\"_t_.jpg\"; filename*=UTF-8''%C3%A9t%C3%A9.jpg"),
    ('quo"te.jpg', "inline; filename=\"quo_te.jpg\"; filename*=UTF-8''quo%22te.jpg"),
    ("semi;colon.jpg", "inline; filename=\"semi_colon.jpg\"; filename*=UTF-8''semi%3Bcolon.jpg"),
]


class TestContentDisposition:
    """The file name never breaks the header: quoted ASCII fallback plus filename* (RFC 6266)."""

    @pytest.mark.parametrize(("name", "expected"), DISPOSITIONS)
    async def test_names(self, client: httpx.AsyncClient, image_root: Path, name: str, expected: str) -> None:
        (image_root / name).write_bytes(b"x")
        response = await client.get("/" + quote(name))
        assert response.status_code == 200
        assert response.headers["content-disposition"] == expected

    def test_control_characters_never_reach_the_header(self) -> None:
        expected = "inline; filename=\"cr_tab_.jpg\"; filename*=UTF-8''cr%0Dtab%09.jpg"
        assert content_disposition("cr\rtab\t.jpg") == expected

    @pytest.mark.parametrize("name", ["cr\rtab\t.jpg", "line\n.jpg", "del\x7f.jpg"])
    async def test_names_with_control_characters_are_not_served(
        self, client: httpx.AsyncClient, image_root: Path, name: str
    ) -> None:
        """One URL per resource: a control character never names a file (an edge may strip it)."""
        (image_root / name).write_bytes(b"x")
        response = await client.get("/" + quote(name))
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}


class TestConditional:
    """If-None-Match (lists, *, weak) wins over If-Modified-Since; 304s carry the validators."""

    @pytest.mark.parametrize(
        "if_none_match",
        ["{etag}", "W/{etag}", '"other", {etag}', "*", ' "a" ,W/{etag} '],
    )
    async def test_if_none_match_hits(self, client: httpx.AsyncClient, photo: Path, if_none_match: str) -> None:
        etag = await etag_of(client)
        for method in ("GET", "HEAD"):
            response = await client.request(method, "/photo.jpg", headers={"If-None-Match": if_none_match.format(etag=etag)})
            assert response.status_code == 304
            assert response.content == b""
            assert response.headers["etag"] == etag
            assert response.headers["cache-control"] == "max-age=86400"
            assert response.headers["last-modified"] == formatdate(MTIME, usegmt=True)
            assert "content-length" not in response.headers or response.headers["content-length"] == "0"

    async def test_if_none_match_miss(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"If-None-Match": '"nope", W/"other"'})
        assert response.status_code == 200
        assert response.content == BODY

    async def test_if_none_match_takes_precedence(self, client: httpx.AsyncClient, photo: Path) -> None:
        later = formatdate(MTIME + 3600, usegmt=True)
        response = await client.get("/photo.jpg", headers={"If-None-Match": '"nope"', "If-Modified-Since": later})
        assert response.status_code == 200

    @pytest.mark.parametrize(
        ("since", "status"),
        [(MTIME, 304), (MTIME + 10, 304), (MTIME - 10, 200)],
    )
    async def test_if_modified_since(self, client: httpx.AsyncClient, photo: Path, since: int, status: int) -> None:
        response = await client.get("/photo.jpg", headers={"If-Modified-Since": formatdate(since, usegmt=True)})
        assert response.status_code == status

    @pytest.mark.parametrize("garbage", ["yesterday", "", "Sun, 99 Foo 1994 08:49:37 GMT"])
    async def test_bad_date_is_ignored(self, client: httpx.AsyncClient, photo: Path, garbage: str) -> None:
        response = await client.get("/photo.jpg", headers={"If-Modified-Since": garbage})
        assert response.status_code == 200


class TestRanges:
    """Range and If-Range: 206, multipart, 416, and malformed headers ignored as nginx does."""

    async def test_single_range(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=10-19"})
        assert response.status_code == 206
        assert response.content == BODY[10:20]
        assert response.headers["content-range"] == f"bytes 10-19/{len(BODY)}"
        assert response.headers["content-length"] == "10"

    @pytest.mark.parametrize(
        ("header", "expected"),
        [("bytes=-5", BODY[-5:]), ("bytes=10230-", BODY[10230:]), ("bytes=10230-99999", BODY[10230:])],
    )
    async def test_suffix_and_open_ranges(self, client: httpx.AsyncClient, photo: Path, header: str, expected: bytes) -> None:
        response = await client.get("/photo.jpg", headers={"Range": header})
        assert response.status_code == 206
        assert response.content == expected

    async def test_multiple_ranges_are_multipart(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=0-1,100-102"})
        assert response.status_code == 206
        content_type = response.headers["content-type"]
        assert content_type.startswith("multipart/byteranges; boundary=")
        boundary = content_type.split("boundary=")[1].encode()
        assert response.content.count(b"--" + boundary) == 3
        assert f"Content-Range: bytes 100-102/{len(BODY)}".encode() in response.content
        assert int(response.headers["content-length"]) == len(response.content)

    async def test_overlapping_ranges_merge(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=0-9,5-19"})
        assert response.status_code == 206
        assert response.content == BODY[0:20]

    async def test_unsatisfiable(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=99999-"})
        assert response.status_code == 416
        assert response.headers["content-range"] == f"bytes */{len(BODY)}"
        assert response.headers["cache-control"] == "no-store"
        assert response.json() == {"detail": "Range Not Satisfiable"}

    @pytest.mark.parametrize("header", ["bytes=9-1", "bytes=abc", "items=0-1", "bytes=", "bytes=1-2-3", "bytes=--1"])
    async def test_malformed_range_is_ignored(self, client: httpx.AsyncClient, photo: Path, header: str) -> None:
        response = await client.get("/photo.jpg", headers={"Range": header})
        assert response.status_code == 200
        assert response.content == BODY

    async def test_range_flood_is_fast(self, client: httpx.AsyncClient, photo: Path) -> None:
        header = "bytes=" + ",".join(f"{i}-{i}" for i in range(1000))
        started = time.monotonic()
        response = await client.get("/photo.jpg", headers={"Range": header})
        assert response.status_code == 200  # over 100 ranges: ignored, whole file
        assert response.content == BODY
        assert time.monotonic() - started < 2

    async def test_if_range_with_current_etag(self, client: httpx.AsyncClient, photo: Path) -> None:
        etag = await etag_of(client)
        response = await client.get("/photo.jpg", headers={"Range": "bytes=0-3", "If-Range": etag})
        assert response.status_code == 206
        assert response.content == BODY[:4]

    @pytest.mark.parametrize("if_range", ['"stale"', 'W/"weak"', "Mon, 01 Jan 2001 00:00:00 GMT"])
    async def test_if_range_stale_gives_whole_file(self, client: httpx.AsyncClient, photo: Path, if_range: str) -> None:
        response = await client.get("/photo.jpg", headers={"Range": "bytes=0-3", "If-Range": if_range})
        assert response.status_code == 200
        assert response.content == BODY

    async def test_if_range_with_date(self, client: httpx.AsyncClient, photo: Path) -> None:
        response = await client.get(
            "/photo.jpg", headers={"Range": "bytes=0-3", "If-Range": formatdate(MTIME, usegmt=True)}
        )
        assert response.status_code == 206


class TestErrors:
    """Refused and missing paths are one 404 naming nothing; other methods are 405."""

    @pytest.mark.parametrize(
        "url",
        ["/missing.jpg", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/secret.jpg", "/.env.jpg", "/notes.txt",
         "/sub", "/a%00.jpg", "/a%5cb.jpg", "/sub/", "/%252e%252e/secret.jpg"],
    )
    async def test_not_found(self, client: httpx.AsyncClient, image_root: Path, url: str) -> None:
        (image_root / ".env.jpg").write_bytes(b"secret")
        (image_root / "notes.txt").write_bytes(b"notes")
        (image_root / "sub").mkdir()
        (image_root.parent / "secret.jpg").write_bytes(b"secret")
        response = await client.get(url)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-type"] == "application/json"

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    async def test_method_not_allowed(self, client: httpx.AsyncClient, photo: Path, method: str) -> None:
        response = await client.request(method, "/photo.jpg")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"
        assert response.headers["cache-control"] == "no-store"
        assert response.json() == {"detail": "Method Not Allowed"}

    async def test_healthz(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        # Liveness only: cache and render counters are on /metrics, not on a public endpoint.
        assert response.json() == {"status": "ok"}

    async def test_openapi_documents_image_media_types(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        content = spec["paths"]["/{path}"]["get"]["responses"]["200"]["content"]
        assert "image/jpeg" in content
        assert "application/json" not in content


class TestDocs:
    """/docs is Swagger UI from pinned assets served here, under a CSP that allows nothing else."""

    async def test_page_loads_only_its_own_assets(self, client: httpx.AsyncClient) -> None:
        page = await client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self' 'sha256-" in policy
        assert "https://" not in page.text and "http://" not in page.text
        for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
            assert asset in page.text
            served = await client.get(asset)
            assert served.status_code == 200 and len(served.content) > 10_000

    async def test_the_inline_script_matches_its_hash(self, client: httpx.AsyncClient) -> None:
        import base64
        import hashlib

        page = await client.get("/docs")
        inline = page.text.rsplit("<script>", 1)[1].split("</script>", 1)[0]
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in page.headers["content-security-policy"]
        assert "validatorUrl" in inline

    async def test_no_redoc_from_a_cdn(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/redoc")).status_code == 404


class TestSiteFiles:
    """Browsers navigating to an image ask for /favicon.ico; crawlers for /robots.txt."""

    async def test_builtin_favicon_is_cacheable(self, client: httpx.AsyncClient) -> None:
        icon = await client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
        assert "max-age" in icon.headers["cache-control"]
        again = await client.get("/favicon.ico", headers={"If-None-Match": icon.headers["etag"]})
        assert again.status_code == 304

    async def test_the_roots_own_favicon_wins(self, make_settings, image_root: Path) -> None:
        (image_root / "favicon.ico").write_bytes(b"\x00\x00\x01\x00own icon")
        async with client_for(make_settings()) as http:
            assert (await http.get("/favicon.ico")).content == b"\x00\x00\x01\x00own icon"

    async def test_robots(self, make_settings) -> None:
        async with client_for(make_settings()) as http:
            robots = await http.get("/robots.txt")
            assert robots.status_code == 200 and robots.text.startswith("User-agent: *")
        async with client_for(make_settings(http={"robots_txt": None})) as http:
            assert (await http.get("/robots.txt")).status_code == 404
