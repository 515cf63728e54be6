"""The CDN recipes of docs/cdn/, run for real: nginx and Varnish (Debian packages) on free
127.0.0.1 ports in front of a live server.

* Many browsers' Accept strings for one thumbnail cost one origin fetch per output format (at most
  three: avif, webp, the source's family), one after another or all at once, and each browser gets
  a format it asked for.
* An expired entry is revalidated: the origin answers 304, the client still gets a 200 with the body.
* A source replaced at the origin is served once max-age has passed.
* Errors are not cached: a 404, then the file appears, then a 200.
* Range requests for originals reach the origin and come back as 206s; ranges of thumbnails are
  cut from the proxy's cached copy.

Origin fetches are counted from the server's JSON access log (`server.access_log: json`): one line
per request the proxy made. The tests skip, with the reason, where nginx or varnishd is not
installed or cannot start; a recipe the proxy's own checker rejects fails them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from server.thumbnails.negotiation import negotiate_format
from tests.support import images
from tests.support.probe import LoggedServer, RawResponse, exchange, raw_request, write_config
from tests.support.proxies import NginxProxy, ProxyUnavailable, VarnishProxy

AUTO_FORMATS = ("avif", "webp")
THUMB = "/thumb/64x/photo.jpg"

# (who sends it, Accept or None for no header at all, the format the origin should answer).
BROWSERS = [
    ("Chrome 85+, Edge", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "avif"),
    ("Firefox 128+", "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", "avif"),
    ("Firefox 93-127", "image/avif,image/webp,*/*", "avif"),
    ("Firefox 65-92", "image/webp,*/*", "webp"),
    ("Safari 16+", "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
                   "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", "avif"),
    ("Safari 14-15", "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5", "webp"),
    ("Safari 13 and older", "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5", "jpeg"),
    ("Chrome 32-84, Opera", "image/webp,image/apng,image/*,*/*;q=0.8", "webp"),
    ("curl", "*/*", "jpeg"),
    ("no Accept header", None, "jpeg"),
    ("AVIF refused", "image/avif;q=0,image/webp;q=0.9,*/*;q=0.1", "webp"),
    ("WebP refused", "image/webp;q=0, image/*;q=0.8", "jpeg"),
    ("zeros spelt out", "image/avif;q=0.000,image/webp;level=1;q=0.", "jpeg"),
    ("odd case and spaces", "IMAGE/AVIF ; Q=0.5 , */*", "avif"),
    ("look-alike types", "image/avif-sequence,image/webpx;q=1,text/html", "jpeg"),
    ("another parameter first", "image/webp;foo=0;q=0.5,image/avif;fooq=0;q=0.001", "avif"),
]
PILLOW_FORMATS = {"avif": "AVIF", "webp": "WEBP", "jpeg": "JPEG"}

PROXIES = {"nginx": NginxProxy, "varnish": VarnishProxy}


# --- helpers ----------------------------------------------------------------------------------


def photo(seed: int) -> bytes:
    return images.jpeg_bytes((320, 240), image=images.textured((320, 240), seed=seed))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    images.write(folder / "photo.jpg", photo(seed=1))
    return folder


def origin(tmp_path: Path, root: Path, *, max_age: int) -> LoggedServer:
    config = write_config(
        tmp_path / "origin.yaml",
        server={"access_log": "json"},
        cache={"shared": "none"},
        thumbnails={"auto_formats": list(AUTO_FORMATS)},
        http={"cache_control_thumbnails": f"max-age={max_age}", "cache_control_originals": f"max-age={max_age}"},
    )
    return LoggedServer(config, root, log=tmp_path / "origin.log")


@contextmanager
def edge(kind: str, live: LoggedServer, tmp_path: Path) -> Iterator[NginxProxy | VarnishProxy]:
    """The recipe of docs/cdn/ for `kind`, started in front of `live`; skips where it cannot run."""
    proxy = PROXIES[kind](origin=f"127.0.0.1:{live.port}", workdir=tmp_path / kind)
    try:
        proxy.start()
    except ProxyUnavailable as error:
        pytest.skip(f"{kind} cannot run here: {error}")
    try:
        yield proxy
    finally:
        proxy.stop()


def get(port: int, path: str, headers: dict[str, str | None] | None = None) -> RawResponse:
    """GET on a fresh connection with exactly these headers (None: the header is not sent)."""
    sent = [(name.encode(), value.encode()) for name, value in (headers or {}).items() if value is not None]
    response = exchange(port, raw_request(path.encode(), headers=sent), timeout=30)
    assert response is not None and response.complete, f"no complete answer for {path}"
    return response


def origin_log(live: LoggedServer, path: str, *, at_least: int = 0, timeout: float = 5.0) -> list[dict]:
    """The origin's access-log records of `path`, once there are `at_least` of them (bounded wait).

    A record is written just after the response is sent, so the proxy may have its answer a moment
    before the line is in the file.
    """
    deadline = time.monotonic() + timeout
    while True:
        records = []
        for line in live.log_text().splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("path") == path:
                records.append(record)
        if len(records) >= at_least or time.monotonic() >= deadline:
            return records
        time.sleep(0.05)


def settled_origin_log(live: LoggedServer, path: str, *, at_least: int) -> list[dict]:
    """As `origin_log`, then a short pause so that a stray extra fetch would show too."""
    origin_log(live, path, at_least=at_least)
    time.sleep(0.3)
    return origin_log(live, path)


def image_format(body: bytes) -> str:
    with Image.open(BytesIO(body)) as image:
        image.load()
        return image.format


def past_max_age(max_age: int) -> None:
    # nginx counts freshness in whole seconds: max-age + 1 s is the earliest it surely has expired.
    time.sleep(max_age + 1.5)


# --- the tests --------------------------------------------------------------------------------


def test_the_browser_table_matches_the_origin() -> None:
    """The expectations below are the origin's own negotiation, so the proxies are held to it."""
    for who, accept, expected in BROWSERS:
        assert (negotiate_format(accept, AUTO_FORMATS) or "jpeg") == expected, who


@pytest.mark.parametrize("kind", PROXIES)
class TestCdnRecipes:
    def test_one_origin_fetch_per_output_format(self, kind: str, tmp_path: Path, root: Path) -> None:
        with origin(tmp_path, root, max_age=600) as live, edge(kind, live, tmp_path) as proxy:
            for round_ in (1, 2):
                for who, accept, expected in BROWSERS:
                    response = get(proxy.port, THUMB, {"Accept": accept})
                    assert response.status == 200, (round_, who, response.status, response.body[:200])
                    assert response.headers["content-type"] == f"image/{expected}", (round_, who)
                    assert image_format(response.body) == PILLOW_FORMATS[expected], (round_, who)
                    # Caches behind the proxy (browsers') must still know the answer depends on Accept.
                    assert "accept" in response.headers.get("vary", "").lower(), (round_, who)
            fetches = settled_origin_log(live, THUMB, at_least=3)
            # One fetch per output format, whatever the 16 Accept strings (32 requests) were.
            assert len(fetches) == len({expected for _, _, expected in BROWSERS}) == 3, fetches
            assert {record["status"] for record in fetches} == {200}

            # URLs that do not depend on Accept are cached once, whatever Accept says.
            for path in ("/thumb/64x,webp/photo.jpg", "/photo.jpg"):
                for _, accept, _ in BROWSERS:
                    response = get(proxy.port, path, {"Accept": accept})
                    assert response.status == 200, (path, accept)
                assert len(settled_origin_log(live, path, at_least=1)) == 1, path

    def test_a_burst_costs_one_fetch_per_output_format(self, kind: str, tmp_path: Path, root: Path) -> None:
        # A larger source: renders take long enough for the requests to overlap at the proxy.
        images.write(root / "big.jpg", images.jpeg_bytes((2000, 1500), image=images.textured((2000, 1500))))
        path = "/thumb/300x/big.jpg"
        with origin(tmp_path, root, max_age=600) as live, edge(kind, live, tmp_path) as proxy:
            with ThreadPoolExecutor(max_workers=len(BROWSERS) * 3) as pool:
                answers = list(pool.map(lambda browser: (browser, get(proxy.port, path, {"Accept": browser[1]})),
                                        BROWSERS * 3))
            for (who, _, expected), response in answers:
                assert (response.status, response.headers["content-type"]) == (200, f"image/{expected}"), who
            assert len(settled_origin_log(live, path, at_least=3)) == 3

    def test_expired_entries_are_revalidated(self, kind: str, tmp_path: Path, root: Path) -> None:
        max_age = 2
        chrome = BROWSERS[0][1]
        with origin(tmp_path, root, max_age=max_age) as live, edge(kind, live, tmp_path) as proxy:
            first = {path: get(proxy.port, path, {"Accept": chrome}) for path in (THUMB, "/photo.jpg")}
            past_max_age(max_age)
            for path, before in first.items():
                after = get(proxy.port, path, {"Accept": chrome})
                # The client did not ask conditionally: it gets the whole body, from the revalidated entry.
                assert after.status == 200, (path, after.status)
                assert after.body == before.body and after.headers["etag"] == before.headers["etag"], path
                # The proxy did: If-None-Match with the stored ETag, answered 304 without a body.
                statuses = [record["status"] for record in settled_origin_log(live, path, at_least=2)]
                assert statuses == [200, 304], (path, statuses)
            assert [r["cache"] for r in origin_log(live, THUMB)][-1] == "304"

    def test_a_replaced_source_is_served_after_max_age(self, kind: str, tmp_path: Path, root: Path) -> None:
        max_age = 2
        webp = {"Accept": "image/webp,*/*"}
        with origin(tmp_path, root, max_age=max_age) as live, edge(kind, live, tmp_path) as proxy:
            old_thumb, old_original = get(proxy.port, THUMB, webp), get(proxy.port, "/photo.jpg")
            source = root / "photo.jpg"
            new_bytes = photo(seed=2)
            assert new_bytes != source.read_bytes()
            source.write_bytes(new_bytes)
            later = source.stat().st_mtime + 10
            os.utime(source, (later, later))
            # Within max-age the proxy still serves what it has: that is what max-age means.
            assert get(proxy.port, THUMB, webp).body == old_thumb.body
            past_max_age(max_age)
            new_thumb, new_original = get(proxy.port, THUMB, webp), get(proxy.port, "/photo.jpg")
            assert new_original.status == 200 and new_original.body == new_bytes
            assert new_thumb.status == 200 and image_format(new_thumb.body) == "WEBP"
            assert new_thumb.body != old_thumb.body
            assert new_thumb.headers["etag"] != old_thumb.headers["etag"]
            assert new_original.headers["etag"] != old_original.headers["etag"]
            # Exactly what the origin itself now answers for this variant.
            direct = get(live.port, THUMB, {"Accept": "image/webp"})
            assert (direct.body, direct.headers["etag"]) == (new_thumb.body, new_thumb.headers["etag"])
            statuses = [record["status"] for record in settled_origin_log(live, THUMB, at_least=3)]
            assert statuses == [200, 200, 200], statuses  # fetch, re-fetch (not a 304), direct

    def test_errors_are_not_cached(self, kind: str, tmp_path: Path, root: Path) -> None:
        with origin(tmp_path, root, max_age=600) as live, edge(kind, live, tmp_path) as proxy:
            paths = ["/later.jpg", "/thumb/64x/later.jpg", "/thumb/64x,webp/later.jpg"]
            for path in paths:
                for _ in range(2):
                    missing = get(proxy.port, path, {"Accept": "image/webp"})
                    assert missing.status == 404, (path, missing.status)
                    assert "no-store" in missing.headers.get("cache-control", ""), path
            images.write(root / "later.jpg", photo(seed=3))
            for path in paths:
                found = get(proxy.port, path, {"Accept": "image/webp"})
                assert found.status == 200, (path, found.status)
                statuses = [record["status"] for record in settled_origin_log(live, path, at_least=3)]
                assert statuses == [404, 404, 200], (path, statuses)  # every 404 went to the origin

    def test_ranges(self, kind: str, tmp_path: Path, root: Path) -> None:
        data = (root / "photo.jpg").read_bytes()
        with origin(tmp_path, root, max_age=600) as live, edge(kind, live, tmp_path) as proxy:
            first = get(proxy.port, "/photo.jpg", {"Range": "bytes=0-9"})
            assert first.status == 206, first.status
            assert first.body == data[:10]
            assert first.headers["content-range"] == f"bytes 0-9/{len(data)}"

            whole = get(proxy.port, "/photo.jpg")  # the 206 was not stored as the whole file
            assert (whole.status, whole.body) == (200, data)
            etag = whole.headers["etag"]

            tail = get(proxy.port, "/photo.jpg", {"Range": "bytes=-5", "If-Range": etag})
            assert (tail.status, tail.body) == (206, data[-5:])
            changed = get(proxy.port, "/photo.jpg", {"Range": "bytes=0-9", "If-Range": '"not-the-etag"'})
            assert (changed.status, changed.body) == (200, data)  # If-Range reached the origin
            unsatisfiable = get(proxy.port, "/photo.jpg", {"Range": f"bytes={len(data) + 10}-"})
            assert unsatisfiable.status == 416

            statuses = [record["status"] for record in settled_origin_log(live, "/photo.jpg", at_least=5)]
            # Every Range request went to the origin as a Range request; the plain GET once.
            assert sorted(statuses) == sorted([206, 200, 206, 200, 416]), statuses

            # Thumbnails are small: the proxy fetches one whole, caches it, and cuts ranges itself.
            webp = {"Accept": "image/webp"}
            part = get(proxy.port, THUMB, {**webp, "Range": "bytes=0-9"})
            thumb = get(proxy.port, THUMB, webp)
            assert (part.status, thumb.status) == (206, 200)
            assert part.body == thumb.body[:10]
            assert [record["status"] for record in settled_origin_log(live, THUMB, at_least=1)] == [200]
