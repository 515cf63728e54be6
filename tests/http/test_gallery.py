"""The gallery (browse.enabled): folder pages, image pages, redirects, pagination, escaping of
hostile names, conditional requests and HEAD; and nothing at all when browsing is off."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.support import images
from tests.support.app import client_for
from tests.support.metrics import samples, value

HOSTILE = ["<img src=x onerror=alert(1)>.jpg", '"quotes".png', "naïve café.jpg", "a#b?c.jpg"]
KEY, SALT = "943b421c9eb07c83", "520f986b998545b4"


class Page(HTMLParser):
    """The elements of a page that matter here: every tag with its attributes, texts, scripts."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self._in: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        current = self._in[-1] if self._in else ""
        if current == "script":
            self.scripts.append(data)
        elif current == "style":
            self.styles.append(data)
        else:
            self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def grid_names(self) -> list[str]:
        return [attrs["alt"] for attrs in self.all("img")]


def jpeg(path: Path, size: tuple[int, int] = (48, 32)) -> Path:
    return images.write(path, images.jpeg_bytes(size, image=images.gradient(size)))


@pytest.fixture
def tree(image_root: Path) -> Path:
    jpeg(image_root / "photo.jpg", (120, 80))
    jpeg(image_root / "sub" / "deeper" / "inner.jpg")
    for name in HOSTILE:
        jpeg(image_root / "hostile" / name)
    return image_root


@pytest.fixture
async def browse(make_settings, tree: Path):
    async with client_for(make_settings(browse={"enabled": True, "page_size": 3})) as client:
        yield client


class TestOff:
    """With browse off (the default), folders stay 404 and nothing changes."""

    @pytest.mark.parametrize("url", ["/", "/sub/", "/sub", "/view/photo.jpg", "/hostile/"])
    async def test_not_found(self, client: httpx.AsyncClient, tree: Path, url: str) -> None:
        response = await client.get(url)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}

    async def test_originals_unchanged(self, client: httpx.AsyncClient, tree: Path) -> None:
        assert (await client.get("/photo.jpg")).status_code == 200


class TestFolderPage:
    """`/` and `/{folder}/`: breadcrumbs, subfolders, then a grid of square thumbnails."""

    async def test_root(self, browse: httpx.AsyncClient) -> None:
        response = await browse.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        page = Page(response.text)
        folders = [a["href"] for a in page.all("a") if a["href"].endswith("/") and a["href"] != "/"]
        assert folders == ["/hostile/", "/sub/"]
        assert page.grid_names() == ["photo.jpg"]
        img = page.all("img")[0]
        assert (img["width"], img["height"], img["loading"]) == ("200", "200", "lazy")
        assert img["src"] == "/thumb/200x200,cover/photo.jpg"
        assert img["srcset"] == "/thumb/200x200,cover/photo.jpg 1x, /thumb/200x200@2x,cover/photo.jpg 2x"

    async def test_thumbnails_and_links_resolve(self, browse: httpx.AsyncClient) -> None:
        page = Page((await browse.get("/")).text)
        for img in page.all("img"):
            for candidate in img["srcset"].split(", "):
                url = candidate.split(" ")[0]
                thumbnail = await browse.get(url)
                assert thumbnail.status_code == 200 and thumbnail.headers["content-type"].startswith("image/")
        for a in page.all("a"):
            assert (await browse.get(a["href"])).status_code == 200, a["href"]

    async def test_nested_breadcrumbs(self, browse: httpx.AsyncClient) -> None:
        page = Page((await browse.get("/sub/deeper/")).text)
        crumbs = [a["href"] for a in page.all("a")][:3]
        assert crumbs == ["/", "/sub/", "/sub/deeper/"]
        assert page.grid_names() == ["inner.jpg"]
        assert page.all("img")[0]["src"] == "/thumb/200x200,cover/sub/deeper/inner.jpg"

    async def test_headers(self, browse: httpx.AsyncClient) -> None:
        response = await browse.get("/")
        headers = response.headers
        assert headers["cache-control"] == "no-cache"
        assert headers["etag"].startswith('"') and not headers["etag"].startswith("W/")
        assert headers["x-content-type-options"] == "nosniff"
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "img-src 'self'" in policy
        assert "unsafe-inline" not in policy and "http" not in policy
        page = Page(response.text)
        for style in page.styles:  # every inline style is allowed by its hash, and nothing else is
            digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy

    async def test_no_external_resources(self, browse: httpx.AsyncClient) -> None:
        for url in ("/", "/view/photo.jpg"):
            page = Page((await browse.get(url)).text)
            for tag, attrs in page.tags:
                for name in ("src", "href", "srcset"):
                    for part in attrs.get(name, "").split(","):
                        assert not urlsplit(part.strip()).netloc, (tag, attrs)


class TestEscaping:
    """Hostile names show as text and link to exactly their files."""

    async def test_hostile_names(self, browse: httpx.AsyncClient) -> None:
        response = await browse.get("/hostile/?page=1")
        html = response.text
        assert "<img src=x" not in html and 'onerror=alert' not in html.replace("onerror=alert(1)&gt;", "")
        page = Page(html)
        assert all("onerror" not in attrs for _, attrs in page.tags)
        shown = []
        for p in (1, 2):
            shown += Page((await browse.get(f"/hostile/?page={p}")).text).grid_names()
        assert sorted(shown) == sorted(HOSTILE)
        for name in HOSTILE:
            assert any(name in text for text in Page((await browse.get("/hostile/?page=1")).text).text +
                       Page((await browse.get("/hostile/?page=2")).text).text)

    async def test_links_lead_to_the_files(self, browse: httpx.AsyncClient, tree: Path) -> None:
        for p in (1, 2):
            page = Page((await browse.get(f"/hostile/?page={p}")).text)
            for a in page.all("a"):
                href = a["href"]
                if not href.startswith("/view/"):
                    continue
                assert "#" not in href and "?" not in href and " " not in href and '"' not in href
                name = unquote(href.rsplit("/", 1)[1])
                assert name in HOSTILE
                view = await browse.get(href)
                assert view.status_code == 200
                original = Page(view.text).all("a")
                link = next(x["href"] for x in original if x["href"].startswith("/hostile/") and x["href"] != "/hostile/")
                body = (await browse.get(link)).content
                assert body == (tree / "hostile" / name).read_bytes()


class TestPagination:
    """browse.page_size images a page, in natural order; ?page=N beyond the last is a 400."""

    @pytest.fixture
    def many(self, image_root: Path) -> Path:
        for n in (10, 2, 1, 9, 3, 20, 11):
            jpeg(image_root / "many" / f"img{n}.jpg", (8, 8))
        return image_root

    async def test_pages(self, browse: httpx.AsyncClient, many: Path) -> None:
        seen = []
        for p in (1, 2, 3):
            page = Page((await browse.get(f"/many/?page={p}")).text)
            seen.append(page.grid_names())
        assert seen == [["img1.jpg", "img2.jpg", "img3.jpg"], ["img9.jpg", "img10.jpg", "img11.jpg"], ["img20.jpg"]]

    async def test_prev_next(self, browse: httpx.AsyncClient, many: Path) -> None:
        page = Page((await browse.get("/many/?page=2")).text)
        rels = {a.get("rel"): a["href"] for a in page.all("a") if a.get("rel")}
        assert rels == {"prev": "/many/?page=1", "next": "/many/?page=3"}
        assert "Page 2 of 3" in "".join(page.text)

    @pytest.mark.parametrize("query", ["page=4", "page=0", "page=abc", "page=-1"])
    async def test_bad_page(self, browse: httpx.AsyncClient, many: Path, query: str) -> None:
        response = await browse.get(f"/many/?{query}")
        assert response.status_code == 400
        assert response.json() == {"detail": "page must be a whole number from 1 to 3"}


class TestRedirects:
    """/{folder} (a real folder) goes to /{folder}/; anything else is what it was."""

    @pytest.mark.parametrize(("url", "location"), [("/sub", "/sub/"), ("/sub/deeper", "/sub/deeper/"),
                                                   ("/sub?page=1", "/sub/?page=1")])
    async def test_folder(self, browse: httpx.AsyncClient, url: str, location: str) -> None:
        response = await browse.get(url)
        assert response.status_code == 308
        assert response.headers["location"] == location

    @pytest.mark.parametrize("url", ["/missing", "/missing/", "/photo.jpg/", "/.git/", "/sub/.x/", "/%2e%2e/",
                                     "/.git", "/%2e%2e", "/sub%2Fdeeper", "/thumb/200x/sub", "/info/sub"])
    async def test_not_folders(self, browse: httpx.AsyncClient, image_root: Path, url: str) -> None:
        (image_root / ".git").mkdir()
        response = await browse.get(url)
        assert response.status_code == 404

    async def test_original_still_served(self, browse: httpx.AsyncClient, tree: Path) -> None:
        response = await browse.get("/photo.jpg")
        assert response.status_code == 200
        assert response.content == (tree / "photo.jpg").read_bytes()


class TestConditional:
    """ETag from the listing, 304, HEAD."""

    async def test_304_and_change(self, browse: httpx.AsyncClient, tree: Path) -> None:
        etag = (await browse.get("/sub/deeper/")).headers["etag"]
        again = await browse.get("/sub/deeper/", headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        jpeg(tree / "sub" / "deeper" / "added.jpg")
        changed = await browse.get("/sub/deeper/", headers={"if-none-match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert Page(changed.text).grid_names() == ["added.jpg", "inner.jpg"]

    @pytest.mark.parametrize("url", ["/", "/sub/", "/view/photo.jpg"])
    async def test_head(self, browse: httpx.AsyncClient, url: str) -> None:
        get = await browse.get(url)
        head = await browse.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(get.content))
        assert head.headers["etag"] == get.headers["etag"]

    async def test_image_page_304(self, browse: httpx.AsyncClient) -> None:
        etag = (await browse.get("/view/photo.jpg")).headers["etag"]
        assert (await browse.get("/view/photo.jpg", headers={"if-none-match": etag})).status_code == 304


class TestListingRules:
    """Exactly what resolve would serve: no dot-files, allowed extensions, no symlink out of the root."""

    async def test_rules(self, make_settings, image_root: Path, tmp_path: Path) -> None:
        jpeg(image_root / "ok.jpg")
        jpeg(image_root / ".hidden.jpg")
        (image_root / "notes.txt").write_text("x")
        (image_root / ".secret").mkdir()
        outside = jpeg(tmp_path / "outside.jpg")
        (image_root / "escape.jpg").symlink_to(outside)
        (image_root / "alias.jpg").symlink_to(image_root / "ok.jpg")
        (image_root / "out").symlink_to(tmp_path)
        async with client_for(make_settings(browse={"enabled": True})) as client:
            page = Page((await client.get("/")).text)
            assert page.grid_names() == ["alias.jpg", "ok.jpg"]
            assert not [a for a in page.all("a") if a["href"] in ("/out/", "/.secret/")]
            assert (await client.get("/out/")).status_code == 404


class TestImagePage:
    """/view/{path}: the image, its facts and URLs ready to copy."""

    async def test_facts_and_urls(self, browse: httpx.AsyncClient) -> None:
        response = await browse.get("/view/photo.jpg")
        assert response.status_code == 200
        page = Page(response.text)
        text = " ".join(page.text)
        assert "120 × 80 px" in text and "jpeg" in text
        img = page.all("img")[0]
        assert (img["width"], img["height"], img["alt"]) == ("120", "80", "photo.jpg")
        assert img["srcset"] == "/thumb/120x/photo.jpg 120w"
        values = [i["value"] for i in page.all("input")]
        assert "http://testserver/photo.jpg" in values and "http://testserver/info/photo.jpg" in values
        textarea = response.text.split('<textarea id="u-srcset"', 1)[1]
        assert "srcset=&quot;http://testserver/thumb/120x/photo.jpg 120w&quot;" in textarea
        for value_ in values:
            assert (await browse.get(value_.removeprefix("http://testserver"))).status_code == 200

    async def test_widths_not_above_the_image(self, browse: httpx.AsyncClient, image_root: Path) -> None:
        jpeg(image_root / "wide.jpg", (1000, 500))
        img = Page((await browse.get("/view/wide.jpg")).text).all("img")[0]
        assert img["srcset"] == ("/thumb/320x/wide.jpg 320w, /thumb/640x/wide.jpg 640w, "
                                 "/thumb/960x/wide.jpg 960w, /thumb/1000x/wide.jpg 1000w")
        assert (img["width"], img["height"]) == ("1000", "500")

    async def test_script_allowed_by_hash(self, browse: httpx.AsyncClient) -> None:
        response = await browse.get("/view/photo.jpg")
        page = Page(response.text)
        assert len(page.scripts) == 1
        digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
        assert f"script-src 'sha256-{digest}'" in response.headers["content-security-policy"]
        assert all(not name.startswith("on") for _, attrs in page.tags for name in attrs)

    @pytest.mark.parametrize("url", ["/view/missing.jpg", "/view/notes.txt", "/view/.x.jpg", "/view/sub"])
    async def test_not_found(self, browse: httpx.AsyncClient, url: str) -> None:
        assert (await browse.get(url)).status_code == 404

    async def test_undecodable(self, browse: httpx.AsyncClient, image_root: Path) -> None:
        (image_root / "broken.jpg").write_bytes(images.html_bytes())
        response = await browse.get("/view/broken.jpg")
        assert response.status_code == 200
        assert "cannot be decoded" in response.text


class TestSigned:
    """With keys set, every thumbnail URL on the pages is signed (and originals and info with
    sign_originals), and the server accepts them."""

    async def test_signed_urls_work(self, make_settings, tree: Path) -> None:
        settings = make_settings(browse={"enabled": True},
                                 security={"keys": [KEY], "salts": [SALT], "sign_originals": True})
        async with client_for(settings) as client:
            root = Page((await client.get("/")).text)
            src = root.all("img")[0]["src"]
            assert re.fullmatch(r"/thumb/[A-Za-z0-9_-]{43}/200x200,cover/photo\.jpg", src)
            assert (await client.get(src)).status_code == 200
            assert (await client.get("/thumb/200x200,cover/photo.jpg")).status_code == 403
            view = Page((await client.get("/view/photo.jpg")).text)
            for value_ in (i["value"] for i in view.all("input")):
                path = value_.removeprefix("http://testserver")
                assert (await client.get(path)).status_code == 200, path
            assert (await client.get("/photo.jpg")).status_code == 403


class TestMetrics:
    """Gallery pages count as kind "browse", info as "info"."""

    async def test_kinds(self, make_settings, tree: Path) -> None:
        async with client_for(make_settings(browse={"enabled": True})) as client:
            await client.get("/")
            await client.get("/view/photo.jpg")
            await client.get("/info/photo.jpg")
            found = samples((await client.get("/metrics")).text)
            assert value(found, "thumbserver_requests_total", kind="browse", status="200") == 2
            assert value(found, "thumbserver_requests_total", kind="info", status="200") == 1


class TestParity:
    """The pure-ASGI front and the FastAPI routes give the same pages."""

    async def test_same_answers(self, make_settings, tree: Path) -> None:
        answers = []
        for front in (True, False):
            async with client_for(make_settings(browse={"enabled": True}), front=front) as client:
                found = []
                for url in ("/", "/sub/", "/sub", "/view/photo.jpg", "/missing/", "/?page=9"):
                    response = await client.get(url)
                    found.append((url, response.status_code, response.headers.get("etag"),
                                  response.headers.get("location"), response.content))
                answers.append(found)
        assert answers[0] == answers[1]


# --- sizes in the grid ----------------------------------------------------------------------------

CELL = re.compile(r'<span class="name">([^<]*)</span>(?:<span class="size">(\d+) × (\d+)</span>)?')


def grid_sizes(html: str) -> dict[str, tuple[int, int] | None]:
    """Each grid cell's name and the size shown under it (None: no size shown)."""
    from html import unescape

    return {unescape(name): (int(w), int(h)) if w else None for name, w, h in CELL.findall(html)}


def true_size(data: bytes) -> tuple[int, int]:
    """The size a viewer shows: fully decoded, then turned by its EXIF orientation."""
    from io import BytesIO

    from PIL import Image, ImageOps

    with Image.open(BytesIO(data)) as image:
        image.load()
        return ImageOps.exif_transpose(image).size


def png_exif_after_image(data: bytes) -> bytes:
    """The PNG `data` with its eXIf chunk moved after the image data (just before IEND)."""
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos : pos + 12 + length])
        pos += 12 + length
    exif = [c for c in chunks if c[4:8] == b"eXIf"]
    assert len(exif) == 1
    rest = [c for c in chunks if c[4:8] != b"eXIf"]
    return data[:8] + b"".join(rest[:-1]) + exif[0] + rest[-1]


def jpeg_frame_far(size: tuple[int, int]) -> bytes:
    """A valid JPEG whose frame header lies past the first 256 KiB (five 60 KB APP15 segments)."""
    data = images.jpeg_bytes(size)
    padding = b"".join(b"\xff\xef" + (60_002).to_bytes(2, "big") + bytes(60_000) for _ in range(5))
    return data[:2] + padding + data[2:]


@pytest.fixture
def sized(image_root: Path) -> dict[str, bytes]:
    """A folder of every orientation and of PNG, GIF and WebP files, small and past the prefix."""
    files: dict[str, bytes] = {}
    for orientation in range(1, 9):
        files[f"jpeg-{orientation}.jpg"] = images.jpeg_bytes((120, 80), orientation=orientation,
                                                             image=images.gradient((120, 80)))
    files["png-6.png"] = images.png_bytes((90, 40), orientation=6)
    big_png = images.png_bytes((700, 500), mode="RGB", orientation=5, image=images.noise((700, 500)))
    assert len(big_png) > 600_000
    files["png-late-exif-5.png"] = png_exif_after_image(big_png)
    files["png-late-exif-8-small.png"] = png_exif_after_image(images.png_bytes((70, 30), orientation=8))
    files["png-plain.png"] = images.png_bytes((33, 21))
    files["gif-animated.gif"] = images.gif_bytes(size=(50, 30))
    files["webp-6.webp"] = images.webp_bytes((64, 48), orientation=6)
    files["webp-animated.webp"] = images.webp_bytes((40, 24), frames=("red", "blue"))
    files["webp-lossless.webp"] = images.webp_bytes((77, 55), lossless=True)
    files["webp-large-6.webp"] = images.webp_bytes((700, 500), orientation=6, lossless=True, image=images.noise((700, 500)))
    assert len(files["webp-large-6.webp"]) > 600_000
    for name, data in files.items():
        images.write(image_root / "sized" / name, data)
    return files


class TestSizes:
    """Each grid cell shows its image's displayed size, found in a render process from the
    file's first bytes, once per version of the file."""

    async def test_true_displayed_sizes(self, browse: httpx.AsyncClient, sized: dict[str, bytes]) -> None:
        # page_size 3 in `browse`: walk every page of the folder.
        shown: dict[str, tuple[int, int] | None] = {}
        page = 1
        while True:
            response = await browse.get(f"/sized/?page={page}")
            if response.status_code == 400:
                break
            assert response.status_code == 200
            shown.update(grid_sizes(response.text))
            page += 1
        assert shown == {name: true_size(data) for name, data in sized.items()}
        assert shown["jpeg-6.jpg"] == (80, 120) and shown["jpeg-1.jpg"] == (120, 80)
        assert shown["png-late-exif-5.png"] == (500, 700)  # its eXIf lies past the bytes read at first
        assert shown["webp-large-6.webp"] == (500, 700)  # its EXIF chunk too

    async def test_second_view_runs_no_job(self, make_settings, sized: dict[str, bytes]) -> None:
        async with client_for(make_settings(browse={"enabled": True})) as client:
            gallery = client.app.state.gallery
            first = await client.get("/sized/")
            assert gallery.size_jobs == 1
            again = await client.get("/sized/")
            assert gallery.size_jobs == 1
            assert again.text == first.text and again.headers["etag"] == first.headers["etag"]
            assert (await client.get("/sized/", headers={"if-none-match": first.headers["etag"]})).status_code == 304
            assert gallery.size_jobs == 1
            assert all(size is not None for size in grid_sizes(again.text).values())

    async def test_changed_file_is_measured_again(self, make_settings, image_root: Path) -> None:
        path = images.write(image_root / "one" / "a.jpg", images.jpeg_bytes((40, 30)))
        async with client_for(make_settings(browse={"enabled": True})) as client:
            first = await client.get("/one/")
            assert grid_sizes(first.text) == {"a.jpg": (40, 30)}
            images.write(path, images.jpeg_bytes((64, 20), orientation=8))
            os.utime(path, ns=(1, 1_000_000_000))  # another mtime, whatever the clock's resolution
            second = await client.get("/one/")
            assert grid_sizes(second.text) == {"a.jpg": (20, 64)}
            assert second.headers["etag"] != first.headers["etag"]
            assert client.app.state.gallery.size_jobs == 2

    async def test_unknown_sizes(self, make_settings, image_root: Path) -> None:
        images.write(image_root / "odd" / "broken.jpg", b"not an image at all")
        images.write(image_root / "odd" / "psd.png", images.psd_bytes((64, 48)))  # a decoder not allowed
        images.write(image_root / "odd" / "far.jpg", jpeg_frame_far((50, 40)))
        images.write(image_root / "odd" / "fine.gif", images.gif_bytes(size=(12, 34)))
        assert true_size((image_root / "odd" / "far.jpg").read_bytes()) == (50, 40)
        async with client_for(make_settings(browse={"enabled": True})) as client:
            response = await client.get("/odd/")
            assert response.status_code == 200
            # The frame header past the prefix: unknown rather than reading the whole file.
            assert grid_sizes(response.text) == {"broken.jpg": None, "far.jpg": None, "fine.gif": (12, 34),
                                                 "psd.png": None}
            await client.get("/odd/")
            assert client.app.state.gallery.size_jobs == 1  # "unknown" is remembered too

    async def test_pool_refusing_leaves_the_page(self, make_settings, sized: dict[str, bytes]) -> None:
        # A render-memory budget below what a sizes job announces: the pool refuses every job.
        settings = make_settings(browse={"enabled": True}, limits={"render_memory_bytes": 1_000_000})
        async with client_for(settings) as client:
            response = await client.get("/sized/")
            assert response.status_code == 200
            assert grid_sizes(response.text) == {name: None for name in sized}
            await client.get("/sized/")
            assert client.app.state.gallery.size_jobs == 2  # not remembered: tried again

    async def test_hostile_names_with_sizes(self, browse: httpx.AsyncClient) -> None:
        found: dict[str, tuple[int, int] | None] = {}
        for page in (1, 2):
            found.update(grid_sizes((await browse.get(f"/hostile/?page={page}")).text))
        assert found == {name: (48, 32) for name in HOSTILE}

    async def test_header_bombs(self, make_settings, image_root: Path) -> None:
        """Files built to make header parsing costly show their names alone, beside a good one."""
        bombs = {"claims.jpg": images.jpeg_claiming(20_000, 20_000), "claims.gif": images.gif_claiming(65_535, 65_535),
                 "text-bomb.png": images.png_text_bomb(), "strips.tif": images.tiff_strip_bomb()}
        for name, data in bombs.items():
            images.write(image_root / "bombs" / name, data)
        images.write(image_root / "bombs" / "good.jpg", images.jpeg_bytes((31, 17)))
        async with client_for(make_settings(browse={"enabled": True})) as client:
            response = await client.get("/bombs/")
            assert response.status_code == 200
            assert grid_sizes(response.text) == {**dict.fromkeys(bombs), "good.jpg": (31, 17)}
